package ca

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Rotation phases, as shown in /debug/ca and the ward_ca_rotation_phase
// metric.
const (
	PhaseStable   = "stable"   // one root, signing
	PhaseStaged   = "staged"   // a new root is in the bundle; the old one still signs
	PhaseRetiring = "retiring" // the new root signs; the old one stays trusted until its leaves expire
	PhasePlugin   = "plugin"   // plug-in CA: rotation is done by replacing cacerts
)

// reservationSlack is how far beyond a leaf's expiry a reservation reaches,
// so the state is saved about once per slack period, not per signature.
const reservationSlack = time.Hour

// ErrRotationUnsupported is returned by Rotate in plug-in mode.
var ErrRotationUnsupported = errors.New("root rotation is managed outside Ward in plug-in mode (replace cacerts)")

// ErrRotationInProgress is returned by Rotate when a rotation has not
// finished yet.
var ErrRotationInProgress = errors.New("a root rotation is already in progress")

func (c *CA) loadOrCreate(ctx context.Context) error {
	s, err := c.cfg.Store.Load(ctx)
	if err != nil {
		return err
	}
	if s == nil {
		root, err := newRoot(c.cfg.TrustDomain, c.cfg.RootKey, c.clock.Now(), c.cfg.RootTTL)
		if err != nil {
			return err
		}
		root.Signing = true
		s = &State{Roots: []RootState{root}}
		if err := c.cfg.Store.Save(ctx, s); err != nil {
			return err
		}
		c.log.Info("created root CA", "trust_domain", c.cfg.TrustDomain, "key", c.cfg.RootKey)
	} else {
		c.log.Info("loaded root CA", "trust_domain", c.cfg.TrustDomain, "roots", len(s.Roots))
	}
	a, err := authorityFromState(c.td, c.clock.Now(), s)
	if err != nil {
		return err
	}
	c.state = s
	c.publish(a)
	c.reportPendingRotation()
	return nil
}

// reportPendingRotation logs a rotation request found at startup: Run's
// first reconcile applies it (or removes it when the state shows a
// previous run already did).
func (c *CA) reportPendingRotation() {
	req, err := pendingRotation(c.cfg.StateDir)
	switch {
	case err != nil:
		c.log.Error("rotation request unreadable; fix or remove it", "err", err)
	case req != nil && req.id() == c.state.RotationRequest:
		c.log.Info("rotation request was applied before the last stop; it is removed at the first reconcile", "request", req.id())
	case req != nil:
		c.log.Warn("pending root rotation request found at startup (not yet applied, or interrupted by a stop); applying it at the first reconcile",
			"request", req.id(), "requested", req.Requested)
	}
}

// Phase returns the current rotation phase.
func (c *CA) Phase() string {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.phase()
}

// phase needs stateMu held (or a not yet shared CA).
func (c *CA) phase() string {
	if c.state == nil {
		return PhasePlugin
	}
	return phaseOf(c.state)
}

// phaseOf is the rotation phase s is in.
func phaseOf(s *State) string {
	for _, r := range s.Roots {
		if !r.SwitchAt.IsZero() {
			return PhaseStaged
		}
		if !r.DropAt.IsZero() {
			return PhaseRetiring
		}
	}
	return PhaseStable
}

// errRequestApplied means the state already carries a rotation request.
var errRequestApplied = errors.New("rotation request already applied")

// Rotate stages a new root: it is published in the bundle now and starts
// signing after overlap (0 = Config.RotationOverlap).
func (c *CA) Rotate(ctx context.Context, overlap time.Duration) error {
	return c.rotate(ctx, overlap, "")
}

// rotate stages a new root; a non-empty request is recorded in the same
// save, and a state that already records it is left alone.
func (c *CA) rotate(ctx context.Context, overlap time.Duration, request string) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.state == nil {
		return ErrRotationUnsupported
	}
	now := c.clock.Now()
	root, err := newRoot(c.cfg.TrustDomain, c.cfg.RootKey, now, c.cfg.RootTTL)
	if err != nil {
		return err
	}
	if overlap <= 0 {
		overlap = c.cfg.RotationOverlap
	}
	root.SwitchAt = now.Add(overlap)
	err = c.apply(ctx, func(s *State) error {
		if request != "" && s.RotationRequest == request {
			return errRequestApplied
		}
		if phaseOf(s) != PhaseStable {
			return ErrRotationInProgress
		}
		s.Roots = append(s.Roots, root)
		if request != "" {
			s.RotationRequest = request
		}
		return nil
	})
	if errors.Is(err, ErrRotationInProgress) || errors.Is(err, errRequestApplied) {
		return err
	}
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	c.log.Info("root rotation staged", "switch_at", root.SwitchAt)
	return nil
}

// Reconcile applies a pending rotation request and any phase transition
// that is due on the CA clock. Run calls it periodically; tests call it
// after moving their clock.
func (c *CA) Reconcile(ctx context.Context) error {
	c.stateMu.Lock()
	selfSigned := c.state != nil
	c.stateMu.Unlock()
	if !selfSigned {
		return nil
	}
	if err := c.takeRotationRequest(ctx); err != nil {
		return err
	}
	c.mu.Lock() // no signing while the signer or the drop time changes
	defer c.mu.Unlock()
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	now := c.clock.Now()
	err := c.apply(ctx, func(s *State) error {
		if !advance(s, now, c.cfg.MaxTTL) {
			return errUnchanged
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reconcile rotation: %w", err)
	}
	c.log.Info("root rotation phase", "phase", c.phase())
	return nil
}

// advance performs at most one due transition on s and reports whether it
// did: a staged root whose switch time passed starts signing (the old root
// gets its drop time); a retiring root whose drop time passed is removed.
func advance(s *State, now time.Time, maxTTL time.Duration) bool {
	for i := range s.Roots {
		r := &s.Roots[i]
		if !r.SwitchAt.IsZero() && !now.Before(r.SwitchAt) {
			for j := range s.Roots {
				if s.Roots[j].Signing {
					s.Roots[j].Signing = false
					s.Roots[j].DropAt = laterOf(s.Roots[j].IssuedUntil, now)
				}
			}
			r.Signing, r.SwitchAt = true, time.Time{}
			return true
		}
		if !r.DropAt.IsZero() && !now.Before(r.DropAt) {
			s.Roots = append(s.Roots[:i], s.Roots[i+1:]...)
			return true
		}
	}
	return false
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// cloneState needs stateMu held.
func (c *CA) cloneState() *State {
	return &State{Roots: append([]RootState(nil), c.state.Roots...), RotationRequest: c.state.RotationRequest}
}

// reserve extends the signing root's IssuedUntil reservation to cover a
// leaf expiring at notAfter, persisting it before the leaf exists.
// The slack is a quarter of the leaf's lifetime, at most reservationSlack,
// so short-lived leaves do not keep an old root for an hour.
func (c *CA) reserve(a *authority, now, notAfter time.Time) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if notAfter.Unix() <= a.reserved.Load() {
		return nil
	}
	until := notAfter.Add(min(reservationSlack, notAfter.Sub(now)/4))
	if until.After(a.notAfter) {
		until = a.notAfter
	}
	next, err := c.update(context.Background(), func(s *State) error {
		i := signingIndex(s, a.signer)
		if i < 0 {
			return errSignerChanged
		}
		if s.Roots[i].IssuedUntil.Before(until) {
			s.Roots[i].IssuedUntil = until
		}
		return nil
	})
	if errors.Is(err, errSignerChanged) {
		// Another replica rotated: take its state, so the retry signs
		// with the current root.
		if rerr := c.reloadLocked(context.Background()); rerr != nil {
			return fmt.Errorf("reserve issuance window: %w", rerr)
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("reserve issuance window: %w", err)
	}
	if sameRoots(c.state, next) {
		c.state = next
		a.reserved.Store(until.Unix())
		return nil
	}
	// The store held changes made elsewhere (read-modify-write): publish
	// them.
	na, err := authorityFromState(c.td, c.clock.Now(), next)
	if err != nil {
		return fmt.Errorf("reserve issuance window: %w", err)
	}
	c.state = next
	c.publish(na)
	return nil
}

// rotationRequestPath is where `ward ca rotate` asks a running CA to rotate.
func rotationRequestPath(stateDir string) string {
	return filepath.Join(stateDir, "ca", "rotate-request")
}

// rotationRequest is the content of the request file. The file stays on
// disk until the state that applies it is saved (the state records the
// request's ID), so a CA killed in between applies it on restart instead
// of losing it, and a CA killed after saving does not apply it twice.
type rotationRequest struct {
	ID        string    `json:"id,omitempty"`
	Requested time.Time `json:"requested"`
	// Overlap overrides Config.RotationOverlap when set (a Go duration).
	Overlap string `json:"overlap,omitempty"`
}

// id names the request; files written before IDs existed are named by
// their time.
func (r rotationRequest) id() string {
	if r.ID != "" {
		return r.ID
	}
	return r.Requested.UTC().Format(time.RFC3339Nano)
}

// RequestRotation asks the CA using stateDir to stage a new root at its
// next reconcile (the CLI's `ward ca rotate`), with the given overlap
// (0 = the CA's configured one). Only the CA writes its state.
func RequestRotation(stateDir string, overlap time.Duration) error {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("request rotation: %w", err)
	}
	req := rotationRequest{ID: hex.EncodeToString(id[:]), Requested: time.Now().UTC()}
	if overlap > 0 {
		req.Overlap = overlap.String()
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("request rotation: %w", err)
	}
	if err := writeFileAtomic(rotationRequestPath(stateDir), b, 0o600); err != nil {
		return fmt.Errorf("request rotation: %w", err)
	}
	return nil
}

// pendingRotation reads the request file; nil when there is none.
func pendingRotation(stateDir string) (*rotationRequest, error) {
	b, err := os.ReadFile(rotationRequestPath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rotation request: %w", err)
	}
	var req rotationRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("read rotation request %s: %w", rotationRequestPath(stateDir), err)
	}
	return &req, nil
}

// Rotation request crash points, for tests: hooks run there and a hook's
// error stops the take as a crash would.
const (
	hookRotationPicked = "rotation-picked" // request read, state not saved
	hookRotationSaved  = "rotation-saved"  // state saved, request not removed
)

// takeRotationRequest applies a pending request: stage a new root and save
// the state marked with the request's ID, and only then remove the
// request. A request whose ID the state already carries was applied by a
// run that stopped before removing it.
func (c *CA) takeRotationRequest(ctx context.Context) error {
	req, err := pendingRotation(c.cfg.StateDir)
	if err != nil || req == nil {
		return err
	}
	if err := c.hook(hookRotationPicked); err != nil {
		return err
	}
	var overlap time.Duration
	if req.Overlap != "" {
		if overlap, err = time.ParseDuration(req.Overlap); err != nil || overlap <= 0 {
			return fmt.Errorf("take rotation request: overlap %q: %v", req.Overlap, err)
		}
	}
	err = c.rotate(ctx, overlap, req.id())
	switch {
	case errors.Is(err, errRequestApplied):
		c.log.Info("rotation request already applied before a restart; removing it", "request", req.id())
	case errors.Is(err, ErrRotationInProgress):
		c.log.Warn("rotation request ignored", "request", req.id(), "reason", err)
	case err != nil:
		return err
	}
	if err := c.hook(hookRotationSaved); err != nil {
		return err
	}
	if err := os.Remove(rotationRequestPath(c.cfg.StateDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("take rotation request: %w", err)
	}
	return nil
}

// hook runs the test hook for point, if any.
func (c *CA) hook(point string) error {
	if c.testHook == nil {
		return nil
	}
	return c.testHook(point)
}
