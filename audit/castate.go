package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/wardmesh/ward/ca"
)

// readOnlyStore loads a CA state file and refuses every write, so
// auditing a state dir never creates or changes a root.
type readOnlyStore struct{ ca.FileStore }

var _ ca.Store = readOnlyStore{}

var errReadOnly = errors.New("audit: ca state is read-only")

func (s readOnlyStore) Load(ctx context.Context) (*ca.State, error) {
	st, err := s.FileStore.Load(ctx)
	if err == nil && st == nil {
		return nil, fmt.Errorf("load ca state %s: %w", s.Path, errNoState)
	}
	return st, err
}

func (readOnlyStore) Save(context.Context, *ca.State) error { return errReadOnly }

var errNoState = errors.New("no ca state")

// LoadCA reads a file-mode CA state dir (the one `ward serve --state`
// keeps) through the ca package and returns its status: roots, signer,
// expiry and rotation phase. It never writes.
func LoadCA(stateDir, trustDomain string) (*ca.Status, error) {
	store := readOnlyStore{ca.FileStore{Path: filepath.Join(stateDir, "ca", "ca.json")}}
	c, err := ca.New(ca.Config{StateDir: stateDir, TrustDomain: trustDomain, Store: store})
	if err != nil {
		return nil, fmt.Errorf("audit ca state %s: %w", stateDir, err)
	}
	st := c.Status()
	return &st, nil
}
