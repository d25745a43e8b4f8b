package als

import (
	"testing"
	"unicode/utf8"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
)

// FuzzStreamMessage feeds arbitrary bytes, decoded as a
// StreamAccessLogsMessage, through the conversion: it must not panic and
// every record must stay within its bounds.
func FuzzStreamMessage(f *testing.F) {
	seed, _ := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*datav3.HTTPAccessLogEntry{{
			CommonProperties: &datav3.AccessLogCommon{UpstreamCluster: "inbound|80||", ConnectionTerminationDetails: rbacDenied + "x]"},
			Request:          &datav3.HTTPRequestProperties{Path: "/a?b"},
		}}}}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var msg alsv3.StreamAccessLogsMessage
		if proto.Unmarshal(b, &msg) != nil {
			return
		}
		s := NewStore(StoreConfig{MaxRecords: 4, MaxEdges: 4})
		srv := New(Config{Store: s, MaxEntries: 50})
		if err := srv.store(&msg, "spiffe://cluster.local/ns/a/sa/b"); err != nil {
			return
		}
		for _, r := range s.Records() {
			for _, v := range []string{r.Method, r.Authority, r.Details, r.Policy, r.Rule, r.DecisionID, r.Cluster, r.Source, r.SourceAddress} {
				if len(v) > maxField || !utf8.ValidString(v) {
					t.Fatalf("field out of bounds: %q", v)
				}
			}
			if len(r.Path) > maxPath || !utf8.ValidString(r.Path) {
				t.Fatalf("path out of bounds: %q", r.Path)
			}
		}
	})
}
