package demo

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/wardmesh/ward/authz/grpcauthz"
)

// extAuthzInterceptor enforces AuthorizationPolicy (JWT included) for a
// server workload through Ward's ext_authz, as `ward agent --authz
// ext-authz` declared to Ward. The workload's namespace and labels come
// from the agent's bootstrap, so the check names the same workload Ward
// generated the listener for. The channel is plaintext on loopback; see
// docs/authz.md for production.
func extAuthzInterceptor(c WorkloadConfig) (grpc.UnaryServerInterceptor, func(), error) {
	w, err := grpcauthz.ReadBootstrap(c.Bootstrap)
	if err != nil {
		return nil, nil, fmt.Errorf("demo %s: %w", c.Role, err)
	}
	if w.Authz != grpcauthz.AuthzExtAuthz {
		return nil, nil, fmt.Errorf("demo %s: the bootstrap declares authz %q; the agent must run with --authz %s", c.Role, w.Authz, grpcauthz.AuthzExtAuthz)
	}
	a, err := grpcauthz.New(grpcauthz.Config{Target: c.ExtAuthz, DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Namespace: w.Namespace, Name: w.Name, Labels: w.Labels, Log: c.Log})
	if err != nil {
		return nil, nil, err
	}
	return a.UnaryServerInterceptor(), func() { a.Close() }, nil
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
