package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/wardmesh/ward/ca"
)

// readOnlyStore loads CA state and refuses every write, so auditing never
// creates or changes a root.
type readOnlyStore struct{ ca.Store }

var _ ca.Store = readOnlyStore{}

var errReadOnly = errors.New("audit: ca state is read-only")

func (s readOnlyStore) Load(ctx context.Context) (*ca.State, error) {
	st, err := s.Store.Load(ctx)
	if err == nil && st == nil {
		return nil, fmt.Errorf("load ca state: %w", ErrNoCAState)
	}
	return st, err
}

func (readOnlyStore) Save(context.Context, *ca.State) error { return errReadOnly }

// ErrNoCAState is returned when the store holds no CA state yet.
var ErrNoCAState = errors.New("no ca state")

// LoadCA reads a file-mode CA state dir (the one `ward serve --state`
// keeps) through the ca package and returns its status: roots, signer,
// expiry and rotation phase, with the issuance records of issued.jsonl
// attached (all of them: the audit drops those expired at Input.Now). A
// state dir without issued.jsonl has issued nothing yet. It never writes.
func LoadCA(stateDir, trustDomain string) (*ca.Status, error) {
	st, err := StoreCA(ca.FileStore{Path: filepath.Join(stateDir, "ca", "ca.json")}, stateDir, trustDomain)
	if err != nil {
		return nil, fmt.Errorf("audit ca state %s: %w", stateDir, err)
	}
	recs, err := ca.ReadIssuedLog(ca.IssuedLogPath(stateDir), time.Time{})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit ca state %s: %w", stateDir, err)
	}
	st.Issued = &ca.IssuedReport{Scope: ca.ScopeState, Count: len(recs), Certificates: recs}
	if st.Issued.Certificates == nil {
		st.Issued.Certificates = []ca.IssuedCert{}
	}
	return st, nil
}

// StoreCA reads CA state from any store (e.g. the Kubernetes Secret store)
// through the ca package, never writing to it. stateDir is only where a CA
// would keep join tokens; nothing is written there either. No issuance
// records are attached: outside file mode they live in the memory of each
// control-plane process (read them with FetchServer).
func StoreCA(store ca.Store, stateDir, trustDomain string) (*ca.Status, error) {
	c, err := ca.New(ca.Config{StateDir: stateDir, TrustDomain: trustDomain, Store: readOnlyStore{store}})
	if err != nil {
		return nil, fmt.Errorf("audit ca: %w", err)
	}
	st := c.Status()
	return &st, nil
}
