package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/recommend"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// verifyRecommendation decides every recorded allowed call against the
// config plus the enforced recommendation with Ward's engine, as `ward
// authz check` would, and fails when one would be denied or a
// recommended policy is invalid.
func verifyRecommendation(cmd *cobra.Command, snap *mesh.Snapshot, res recommend.Result, calls []recommend.Call) error {
	combined, err := withRecommendation(snap, res)
	if err != nil {
		return err
	}
	eng, err := authz.NewEngine(combined, authz.EngineConfig{Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("authz recommend: verify: %w", err)
	}
	for k, err := range eng.Invalid() {
		if strings.HasPrefix(k.Name, "ward-recommended") {
			return fmt.Errorf("authz recommend: verify: recommended %s is invalid (a Ward bug): %w", k, err)
		}
	}
	v := verifier{eng: eng, snap: combined}
	for _, c := range calls {
		if c.Denied || c.Destination == "" {
			continue // a denial, or a client-side record: nothing recommended for it
		}
		if err := v.check(cmd.Context(), c); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "verified with Ward's engine: %d recorded allowed calls allowed by --config plus the enforced recommendation; %d not verifiable (no workload of their service account in --config)\n", v.allowed, v.unknown)
	if len(v.denied) > 0 {
		for _, d := range v.denied {
			fmt.Fprintf(cmd.ErrOrStderr(), "would deny a recorded call: %s\n", d)
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("authz recommend: the recommendation would deny %d recorded allowed calls", len(v.denied))}
	}
	return nil
}

// withRecommendation is snap plus the enforced recommended policies.
func withRecommendation(snap *mesh.Snapshot, res recommend.Result) (*mesh.Snapshot, error) {
	data, err := res.YAML(false)
	if err != nil {
		return nil, err
	}
	recs, _, err := schema.DecodeAll(data, mesh.Source{File: "recommended.yaml"})
	if err != nil {
		return nil, fmt.Errorf("authz recommend: verify: decode the recommendation (a Ward bug): %w", err)
	}
	var cfgs []*mesh.Config
	for _, k := range mesh.Kinds() {
		cfgs = append(cfgs, snap.All(k)...)
	}
	return mesh.NewSnapshot(snap.Mesh(), append(cfgs, recs...)), nil
}

type verifier struct {
	eng     *authz.Engine
	snap    *mesh.Snapshot
	allowed int
	unknown int
	denied  []string
}

// check decides c for every workload of its destination's service
// account (it may have reached any of them).
func (v *verifier) check(ctx context.Context, c recommend.Call) error {
	ns, sa, ok := spiffeParts(c.Destination)
	found := false
	for _, w := range v.snap.WorkloadsInNamespace(ns) {
		if !ok || w.ServiceAccount != sa {
			continue
		}
		found = true
		p, err := v.eng.For(ctx, ns, w.Labels)
		if err != nil {
			return fmt.Errorf("authz recommend: verify: %w", err)
		}
		d, err := p.Decide(ctx, recordedRequest(c, w))
		why := ""
		switch {
		case err != nil:
			why = err.Error()
		case !d.Allowed:
			why = d.Explain()
		}
		if why != "" {
			v.denied = append(v.denied, fmt.Sprintf("%s → %s/%s port %d %s %s %s: %s", orPlain(c), ns, w.Name, c.Port, c.Protocol, c.Method, c.Path, why))
			return nil
		}
	}
	if found {
		v.allowed++
	} else {
		v.unknown++
	}
	return nil
}

func recordedRequest(c recommend.Call, w *mesh.Workload) *authz.Request {
	src := c.SourceAddress
	if src == "" {
		src = "0.0.0.0"
	}
	req := &authz.Request{
		Source:      authz.Peer{IP: src, Port: 40000, Principal: c.Source},
		Destination: authz.Peer{IP: workloadIP(w), Port: c.Port},
	}
	if c.Protocol != "tcp" {
		req.HTTP = &authz.HTTPRequest{Method: c.Method, Path: c.Path, Host: w.Name, Headers: map[string]string{}}
	}
	return req
}

func orPlain(c recommend.Call) string {
	if c.Source != "" {
		return c.Source
	}
	return "plaintext " + c.SourceAddress
}

// spiffeParts splits spiffe://<td>/ns/<ns>/sa/<sa>.
func spiffeParts(id string) (ns, sa string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id, "spiffe://"), "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", false
	}
	return parts[2], parts[4], true
}
