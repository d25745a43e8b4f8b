package als

import (
	"fmt"
	"io"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func benchEntry() *datav3.HTTPAccessLogEntry {
	md, _ := structpb.NewStruct(map[string]any{"ward_policy": "shop/allow-cart", "ward_rule": "0", "ward_decision_id": "0f3c9a", "ward_allowed": true})
	return &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{
			StartTime:       timestamppb.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)),
			UpstreamCluster: "inbound|8080||",
			TlsProperties: &datav3.TLSProperties{PeerCertificateProperties: &datav3.TLSProperties_CertificateProperties{
				SubjectAltName: []*datav3.TLSProperties_CertificateProperties_SubjectAltName{{San: &datav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: "spiffe://cluster.local/ns/shop/sa/cart"}}}}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{nsHTTPExtAuthz: md}},
		},
		Request:  &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: "/api/items?page=2", Authority: "web.shop.svc.cluster.local"},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseCodeDetails: "via_upstream"},
	}
}

// BenchmarkIngest is the control plane's cost per call: one Envoy HTTP
// entry converted to a record and added to a full store (ring overwrite,
// existing edge).
func BenchmarkIngest(b *testing.B) {
	s := NewStore(StoreConfig{MaxRecords: 1024})
	e := benchEntry()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.Add(fromHTTP(e, "spiffe://cluster.local/ns/shop/sa/web", now))
	}
}

// BenchmarkStoreAddNewEdges adds records of ever new edges until the
// edge table is full, then past it (counted as dropped).
func BenchmarkStoreAddNewEdges(b *testing.B) {
	s := NewStore(StoreConfig{MaxRecords: 1024, MaxEdges: 100000})
	srcs := make([]string, 4096)
	for i := range srcs {
		srcs[i] = fmt.Sprintf("spiffe://cluster.local/ns/n%d/sa/s", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Add(Record{Source: srcs[i%len(srcs)], Destination: fmt.Sprint(i / len(srcs)), Protocol: "http"})
		i++
	}
}

// BenchmarkIngestWithSink is BenchmarkIngest with every record also
// encoded as a JSON line for the record file (written once per message).
func BenchmarkIngestWithSink(b *testing.B) {
	s := NewStore(StoreConfig{MaxRecords: 1024, Sink: io.Discard})
	e := benchEntry()
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Add(fromHTTP(e, "spiffe://cluster.local/ns/shop/sa/web", now))
		if i++; i%100 == 0 { // Envoy batches entries; the server flushes per message
			s.Flush()
		}
	}
}

// BenchmarkIngestWithMetrics is BenchmarkIngest with the record also
// counted in Istio's standard metrics (an existing series).
func BenchmarkIngestWithMetrics(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry(), 0)
	if err != nil {
		b.Fatal(err)
	}
	s := NewStore(StoreConfig{MaxRecords: 1024, Metrics: m})
	e := benchEntry()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.Add(fromHTTP(e, "spiffe://cluster.local/ns/shop/sa/web", now))
	}
}
