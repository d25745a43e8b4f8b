package als

import (
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
)

// TestResponseFlags: an entry's flags become Envoy's short codes in
// Envoy's order; none is "".
func TestResponseFlags(t *testing.T) {
	for _, tc := range []struct {
		flags *datav3.ResponseFlags
		want  string
	}{
		{nil, ""},
		{&datav3.ResponseFlags{}, ""},
		{&datav3.ResponseFlags{NoHealthyUpstream: true}, "UH"},
		{&datav3.ResponseFlags{UpstreamConnectionFailure: true, NoHealthyUpstream: true, DownstreamRemoteReset: true}, "UH,UF,DR"},
		{&datav3.ResponseFlags{UnauthorizedDetails: &datav3.ResponseFlags_Unauthorized{}}, "UAEX"},
	} {
		e := &datav3.HTTPAccessLogEntry{CommonProperties: &datav3.AccessLogCommon{ResponseFlags: tc.flags}}
		if got := fromHTTP(e, "spiffe://cluster.local/ns/shop/sa/web", time.Time{}).ResponseFlags; got != tc.want {
			t.Errorf("%v: response flags %q, want %q", tc.flags, got, tc.want)
		}
	}
}
