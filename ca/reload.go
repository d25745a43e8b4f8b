package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
)

// Updater is a Store that applies a change to the current state
// atomically: read, mutate, write with a precondition that nothing wrote
// in between (retrying on conflict). Stores shared by several CA
// processes (the Kubernetes Secret) implement it, so a replica's
// reservation and the leader's rotation never undo each other. mutate may
// return an error to abandon the write; Update returns it unwrapped.
type Updater interface {
	Update(ctx context.Context, mutate func(*State) error) (*State, error)
}

var (
	// errUnchanged from a mutation means there is nothing to write.
	errUnchanged = errors.New("ca state unchanged")
	// errSignerChanged means the stored state no longer has this
	// process's signer as the signing root: another replica rotated.
	errSignerChanged = errors.New("the signing root changed in the stored state")
)

// update applies mutate to the freshest state and persists it: through
// the store's Updater when it has one, else to a copy of c.state (this
// process is the only writer). stateMu must be held.
func (c *CA) update(ctx context.Context, mutate func(*State) error) (*State, error) {
	if u, ok := c.cfg.Store.(Updater); ok {
		return u.Update(ctx, mutate)
	}
	next := c.cloneState()
	if err := mutate(next); err != nil {
		return nil, err
	}
	if err := c.cfg.Store.Save(ctx, next); err != nil {
		return nil, err
	}
	return next, nil
}

// apply updates the state with mutate, checking the result builds a valid
// authority before it is written, then publishes it. stateMu must be held.
func (c *CA) apply(ctx context.Context, mutate func(*State) error) error {
	var a *authority
	next, err := c.update(ctx, func(s *State) error {
		if err := mutate(s); err != nil {
			return err
		}
		var err error
		a, err = authorityFromState(c.td, c.clock.Now(), s)
		return err
	})
	if err != nil {
		return err
	}
	c.state = next
	c.publish(a)
	return nil
}

// Reload reads the state from the store and, when it differs from the
// one in use, publishes it: a rotation or reservation written by another
// replica takes effect here. In Kubernetes mode every replica calls it on
// each change of the state Secret. Plug-in mode has nothing to reload
// (Run watches cacerts).
func (c *CA) Reload(ctx context.Context) error {
	c.stateMu.Lock()
	plugin := c.state == nil
	c.stateMu.Unlock()
	if plugin {
		return nil
	}
	c.mu.Lock() // no signing while the signer changes
	defer c.mu.Unlock()
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.reloadLocked(ctx)
}

// reloadLocked needs stateMu held.
func (c *CA) reloadLocked(ctx context.Context) error {
	s, err := c.cfg.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("reload ca state: %w", err)
	}
	if s == nil {
		return errors.New("reload ca state: the store holds no state")
	}
	if sameState(c.state, s) {
		return nil
	}
	a, err := authorityFromState(c.td, c.clock.Now(), s)
	if err != nil {
		return fmt.Errorf("reload ca state: %w", err)
	}
	rotated := !sameRoots(c.state, s)
	c.state = s
	c.publish(a)
	if rotated {
		c.log.Info("reloaded ca state", "phase", c.phase(), "roots", len(s.Roots))
	}
	return nil
}

// sameState compares two states by their stored form.
func sameState(a, b *State) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// sameRoots reports whether a and b have the same roots in the same roles
// and phases, ignoring reservations.
func sameRoots(a, b *State) bool {
	if len(a.Roots) != len(b.Roots) {
		return false
	}
	for i := range a.Roots {
		x, y := a.Roots[i], b.Roots[i]
		if x.CertPEM != y.CertPEM || x.Signing != y.Signing || !x.SwitchAt.Equal(y.SwitchAt) || !x.DropAt.Equal(y.DropAt) {
			return false
		}
	}
	return true
}

// signingIndex is the index of the root in s that is signer and signs,
// or -1.
func signingIndex(s *State, signer *x509.Certificate) int {
	for i, r := range s.Roots {
		if !r.Signing {
			continue
		}
		if certs, err := parseCertsPEM([]byte(r.CertPEM)); err == nil && certs[0].Equal(signer) {
			return i
		}
	}
	return -1
}
