package demo

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/wardmesh/ward/authz/grpcauthz"
	"github.com/wardmesh/ward/mesh"
)

// extAuthzInterceptor enforces AuthorizationPolicy (JWT included) for a
// server workload through Ward's ext_authz, as `ward agent --authz
// ext-authz` declared to Ward. The workload's namespace and labels come
// from the agent's bootstrap, so the check names the same workload Ward
// generated the listener for.
func extAuthzInterceptor(c WorkloadConfig) (grpc.UnaryServerInterceptor, func(), error) {
	w, err := grpcauthz.ReadBootstrap(c.Bootstrap)
	if err != nil {
		return nil, nil, fmt.Errorf("demo %s: %w", c.Role, err)
	}
	if w.Authz != grpcauthz.AuthzExtAuthz {
		return nil, nil, fmt.Errorf("demo %s: the bootstrap declares authz %q; the agent must run with --authz %s", c.Role, w.Authz, grpcauthz.AuthzExtAuthz)
	}
	// mTLS with the agent's files (next to the bootstrap), pinned to the
	// control plane's identity: ext_authz binds the check to this caller.
	sid, err := mesh.ControlPlaneIdentity(TrustDomain).SPIFFEID()
	if err != nil {
		return nil, nil, err
	}
	creds, err := grpcauthz.MTLSFromDir(filepath.Dir(c.Bootstrap), sid)
	if err != nil {
		return nil, nil, fmt.Errorf("demo %s: %w", c.Role, err)
	}
	calls, stopCalls, err := callLog(c, w, creds)
	if err != nil {
		return nil, nil, err
	}
	a, err := grpcauthz.New(grpcauthz.Config{Target: c.ExtAuthz, DialOptions: []grpc.DialOption{creds},
		Namespace: w.Namespace, Name: w.Name, Labels: w.Labels, Log: c.Log, CallLog: calls})
	if err != nil {
		stopCalls()
		return nil, nil, err
	}
	return a.UnaryServerInterceptor(), func() { a.Close(); stopCalls() }, nil
}

// callLog reports every call the interceptor decides to Ward's access-log
// service, on the same secure port as ext_authz and with the same
// certificate (the service binds the records to it).
func callLog(c WorkloadConfig, w grpcauthz.Workload, creds grpc.DialOption) (*grpcauthz.ALSClient, func(), error) {
	node := w.Name
	if node == "" {
		node = c.Role
	}
	alsc, err := grpcauthz.NewALSClient(grpcauthz.ALSConfig{Target: c.ExtAuthz, DialOptions: []grpc.DialOption{creds},
		NodeID: node + "." + w.Namespace, Namespace: w.Namespace, Log: c.Log})
	if err != nil {
		return nil, nil, fmt.Errorf("demo %s: %w", c.Role, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = alsc.Run(ctx)
	}()
	return alsc, func() { cancel(); <-done; alsc.Close() }, nil
}

// allowedBy is the rule Ward's ext_authz named for an allowed call.
func allowedBy(hdr, trl metadata.MD) string {
	for _, md := range []metadata.MD{hdr, trl} {
		if v := md.Get(grpcauthz.DefaultReasonHeader); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
