package simulate

import (
	"errors"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Checker answers ext_authz checks (the authorization server behind an
// ext_authz filter). The simulator never calls a network.
type Checker interface {
	Check(CheckRequest) (CheckResponse, error)
}

// CheckRequest is what an ext_authz filter sends.
type CheckRequest struct {
	// Filter is the ext_authz filter's name; Cluster the gRPC cluster it
	// calls.
	Filter  string
	Cluster string
	// Network is true for the network (TCP) filter: no HTTP attributes.
	Network bool
	Request *Request
	// Path is the :path after normalisation; Headers are lower-case.
	Path    string
	Headers map[string]string
	// ContextExtensions come from the route's ExtAuthzPerRoute.
	ContextExtensions map[string]string
	// Metadata holds the dynamic-metadata namespaces the filter forwards
	// (metadata_context_namespaces).
	Metadata map[string]map[string]any
	// InitialMetadata is the gRPC service's initial_metadata (what the
	// filter's gRPC call carries as request metadata).
	InitialMetadata map[string]string
}

// CheckResponse is the authorization server's answer.
type CheckResponse struct {
	Allowed bool
	// Status is the HTTP status of a denial (default 403).
	Status int
}

// errNoChecker is the failure when no Checker is configured.
var errNoChecker = errors.New("no ext_authz checker configured")

// extAuthzCall is one ext_authz decision in filter terms.
type extAuthzCall struct {
	filter        string
	enabledBy     *matcher.MetadataMatcher
	denyAtDisable bool
	failOpen      bool
	errorStatus   *typev3.HttpStatus
}

// gate applies filter_enabled_metadata: the filter runs only when the
// dynamic metadata matches.
func (c extAuthzCall) gate(a *attrs, res *Result) bool {
	if c.enabledBy == nil || metadataMatches(c.enabledBy, a.meta) {
		return true
	}
	res.tracef("%s: filter_enabled_metadata %s%v does not match: filter skipped", c.filter, c.enabledBy.GetFilter(), c.enabledBy.GetPath())
	return false
}

// decide calls the checker and applies failure_mode_allow; it returns
// whether the request is allowed and the denial status.
func (c extAuthzCall) decide(s *Simulator, cr CheckRequest, res *Result) (bool, int) {
	var resp CheckResponse
	err := errNoChecker
	if s.checker != nil {
		resp, err = s.checker.Check(cr)
	}
	if err != nil {
		res.tracef("%s: check failed (%v); failure_mode_allow=%v", c.filter, err, c.failOpen)
		return c.failOpen, errorStatus(c.errorStatus)
	}
	res.tracef("%s: authorization server says allowed=%v", c.filter, resp.Allowed)
	if resp.Status == 0 {
		resp.Status = 403
	}
	return resp.Allowed, resp.Status
}

func errorStatus(s *typev3.HttpStatus) int {
	if s == nil || s.GetCode() == 0 {
		return 403
	}
	return int(s.GetCode())
}

func initialMetadata(g *core.GrpcService) map[string]string {
	out := map[string]string{}
	for _, h := range g.GetInitialMetadata() {
		out[strings.ToLower(h.GetKey())] = h.GetValue()
	}
	return out
}

func copyMeta(md metadata, namespaces []string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, ns := range namespaces {
		if v, ok := md[ns]; ok {
			out[ns] = v
		}
	}
	return out
}
