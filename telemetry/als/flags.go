package als

import (
	"strings"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
)

// responseFlags are Envoy's short codes (%RESPONSE_FLAGS%) for the flags
// an access log entry carries, in Envoy's order.
var responseFlags = []struct {
	code string
	set  func(*datav3.ResponseFlags) bool
}{
	{"LH", (*datav3.ResponseFlags).GetFailedLocalHealthcheck},
	{"UH", (*datav3.ResponseFlags).GetNoHealthyUpstream},
	{"UT", (*datav3.ResponseFlags).GetUpstreamRequestTimeout},
	{"LR", (*datav3.ResponseFlags).GetLocalReset},
	{"UR", (*datav3.ResponseFlags).GetUpstreamRemoteReset},
	{"UF", (*datav3.ResponseFlags).GetUpstreamConnectionFailure},
	{"UC", (*datav3.ResponseFlags).GetUpstreamConnectionTermination},
	{"UO", (*datav3.ResponseFlags).GetUpstreamOverflow},
	{"NR", (*datav3.ResponseFlags).GetNoRouteFound},
	{"DI", (*datav3.ResponseFlags).GetDelayInjected},
	{"FI", (*datav3.ResponseFlags).GetFaultInjected},
	{"RL", (*datav3.ResponseFlags).GetRateLimited},
	{"UAEX", func(f *datav3.ResponseFlags) bool { return f.GetUnauthorizedDetails() != nil }},
	{"RLSE", (*datav3.ResponseFlags).GetRateLimitServiceError},
	{"DC", (*datav3.ResponseFlags).GetDownstreamConnectionTermination},
	{"URX", (*datav3.ResponseFlags).GetUpstreamRetryLimitExceeded},
	{"SI", (*datav3.ResponseFlags).GetStreamIdleTimeout},
	{"IH", (*datav3.ResponseFlags).GetInvalidEnvoyRequestHeaders},
	{"DPE", (*datav3.ResponseFlags).GetDownstreamProtocolError},
	{"UMSDR", (*datav3.ResponseFlags).GetUpstreamMaxStreamDurationReached},
	{"NFCF", (*datav3.ResponseFlags).GetNoFilterConfigFound},
	{"DT", (*datav3.ResponseFlags).GetDurationTimeout},
	{"UPE", (*datav3.ResponseFlags).GetUpstreamProtocolError},
	{"NC", (*datav3.ResponseFlags).GetNoClusterFound},
	{"OM", (*datav3.ResponseFlags).GetOverloadManager},
	{"DF", (*datav3.ResponseFlags).GetDnsResolutionFailure},
	{"DR", (*datav3.ResponseFlags).GetDownstreamRemoteReset},
}

// flagCodes is the entry's flags as Envoy prints them ("UH,UF"), or ""
// when none is set. An entry without flags costs no allocation.
func flagCodes(f *datav3.ResponseFlags) string {
	if f == nil {
		return ""
	}
	var codes []string
	for _, rf := range responseFlags {
		if rf.set(f) {
			codes = append(codes, rf.code)
		}
	}
	return strings.Join(codes, ",")
}
