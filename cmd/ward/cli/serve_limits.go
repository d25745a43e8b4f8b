package cli

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/mesh/schema"
)

// limitOptions are the flags of `ward serve` that bound what callers of
// the CA and the config directory may cost, and which identities the CA
// keeps for the control plane.
type limitOptions struct {
	ca            ca.Limits
	allowReserved []string
	config        file.Limits
}

func (l *limitOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Float64Var(&l.ca.CSRMaxPerSecond, "ca-csr-max-per-second", ca.DefaultCSRMaxPerSecond, "CSRs per second the CA admits before parsing or authenticating them; more get RESOURCE_EXHAUSTED (negative: unlimited)")
	f.IntVar(&l.ca.CSRMaxConcurrent, "ca-csr-max-concurrent", ca.DefaultCSRMaxConcurrent, "CSRs processed at once; more get RESOURCE_EXHAUSTED at once (negative: unlimited)")
	f.Float64Var(&l.ca.UnauthenticatedShare, "ca-csr-unauthenticated-share", ca.DefaultUnauthenticatedShare, "share of --ca-csr-max-per-second open to callers without a mesh certificate; the rest is reserved for renewals over mTLS")
	f.Float64Var(&l.ca.IdentityPerSecond, "ca-identity-per-second", ca.DefaultIdentityPerSecond, "certificates per second one SPIFFE ID may obtain (negative: unlimited)")
	f.IntVar(&l.ca.IdentityBurst, "ca-identity-burst", ca.DefaultIdentityBurst, "burst of --ca-identity-per-second (e.g. replicas of one service account starting together)")
	f.Float64Var(&l.ca.FailuresPerSecond, "ca-auth-failures-per-second", ca.DefaultFailuresPerSecond, "failed authentications per second allowed per source address and join-token id; beyond, the source is refused before any work")
	f.IntVar(&l.ca.FailureBurst, "ca-auth-failure-burst", ca.DefaultFailureBurst, "burst of --ca-auth-failures-per-second")
	f.Float64Var(&l.ca.NodePerSecond, "ca-node-per-second", ca.DefaultNodePerSecond, "certificates per second one node proxy may obtain, its workloads' and its own (negative: unlimited)")
	f.IntVar(&l.ca.NodeBurst, "ca-node-burst", ca.DefaultNodeBurst, "burst of --ca-node-per-second (a full node enrolling its workloads at start)")
	f.StringSliceVar(&l.allowReserved, "ca-allow-reserved", nil, "namespace/serviceaccount identities in the control plane's namespace (ward-system, or --kube-namespace) the CA may still issue; the control plane's own identity never is")
	f.Int64Var(&l.config.MaxTreeBytes, "config-max-bytes", file.DefaultMaxTreeBytes, "total size of the config tree; a larger tree is refused whole and the last good config keeps serving")
	f.Int64Var(&l.config.MaxFileBytes, "config-max-file-bytes", file.DefaultMaxFileBytes, "size of one config file; a larger file is rejected")
	f.IntVar(&l.config.YAML.MaxDocumentBytes, "config-max-document-bytes", schema.DefaultMaxDocumentBytes, "size of one YAML document, checked before parsing")
	f.IntVar(&l.config.YAML.MaxNodes, "config-max-nodes", schema.DefaultMaxNodes, "YAML nodes in one document")
}

// applyCA sets the CA's limits and reserved-identity exceptions.
func (l *limitOptions) applyCA(cfg *ca.Config) {
	cfg.Limits = l.ca
	cfg.AllowReserved = l.allowReserved
}

// readyz is /readyz: ready once the first snapshot is served, and not
// while config reloads are stuck (a reload running, or a change waiting
// for one, for longer than the source's stuck threshold).
func readyz(ready func() bool, reloads func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "waiting for the first config snapshot", http.StatusServiceUnavailable)
			return
		}
		if reloads != nil {
			if err := reloads(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	}
}
