package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wardmesh/ward/internal/atomicfile"
)

// State is the CA's persisted root material. In file mode it is one JSON
// file with mode 0600; the Kubernetes source keeps the same document in a
// Secret.
type State struct {
	Roots []RootState `json:"roots"`
	// RotationRequest is the ID of the last `ward ca rotate` request
	// applied, saved with the rotation it caused; the request file is
	// removed only after that save.
	RotationRequest string `json:"rotationRequest,omitempty"`
}

// RootState is one root CA and its place in a rotation.
type RootState struct {
	CertPEM string `json:"cert"`
	KeyPEM  string `json:"key"`
	// Signing marks the root that signs new leaves; exactly one has it.
	Signing bool `json:"signing"`
	// SwitchAt is set on a staged root: when it starts signing.
	SwitchAt time.Time `json:"switchAt,omitzero"`
	// DropAt is set on a retiring root: when it leaves the bundle (the
	// expiry of the last leaf it signed).
	DropAt time.Time `json:"dropAt,omitzero"`
	// IssuedUntil is a reservation: no leaf signed by this root expires
	// after it. It is persisted before a leaf could exceed it, so a
	// restart never forgets how long an old root must stay trusted.
	IssuedUntil time.Time `json:"issuedUntil,omitzero"`
}

// Store loads and saves the CA State. Load returns (nil, nil) when no state
// exists yet.
type Store interface {
	Load(ctx context.Context) (*State, error)
	Save(ctx context.Context, s *State) error
}

// FileStore keeps the State in one file, written atomically with mode 0600
// in a 0700 directory.
type FileStore struct{ Path string }

var _ Store = FileStore{}

// Load reads the state file. It refuses a file readable by group or others.
func (f FileStore) Load(context.Context) (*State, error) {
	fi, err := os.Stat(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load ca state %s: %w", f.Path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load ca state %s: mode %v is too open, want 0600", f.Path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("load ca state %s: %w", f.Path, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("load ca state %s: %w", f.Path, err)
	}
	return &s, nil
}

// Save writes the state file atomically (write to a temp file, rename).
func (f FileStore) Save(_ context.Context, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save ca state: %w", err)
	}
	if err := writeFileAtomic(f.Path, b, 0o600); err != nil {
		return fmt.Errorf("save ca state %s: %w", f.Path, err)
	}
	return nil
}

// writeFileAtomic writes CA state (directories 0700).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(path, b, mode, 0o700)
}

// LoadBundle reads the trust bundle from a file-mode state dir without
// starting a CA (for `ward ca bundle`).
func LoadBundle(stateDir string) ([]byte, error) {
	s, err := FileStore{Path: filepath.Join(stateDir, "ca", "ca.json")}.Load(context.Background())
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("load bundle: no ca state in %s", stateDir)
	}
	var out []byte
	for _, r := range s.Roots {
		out = append(out, r.CertPEM...)
	}
	return out, nil
}
