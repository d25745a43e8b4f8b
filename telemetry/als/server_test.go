package als_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/telemetry/als"
	"github.com/wardmesh/ward/xds"
)

// fixture is the secure port as ward serve assembles it: the CA's server
// TLS config and the ALS server authenticating with the CA.
type fixture struct {
	ca    *ca.CA
	addr  string
	store *als.Store
}

var start = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func startServer(t *testing.T, maxEntries int) *fixture {
	t.Helper()
	authority, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: authority, store: als.NewStore(als.StoreConfig{})}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(authority.ServerTLSConfig())))
	als.New(als.Config{Auth: xds.AuthenticatorFunc(authority.PeerIdentity), Store: f.store, MaxEntries: maxEntries,
		Now: func() time.Time { return start }}).Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return f
}

// client dials the secure port; with a non-empty id it presents a
// certificate the CA issued for it.
func (f *fixture) client(t *testing.T, id string) alsv3.AccessLogServiceClient {
	t.Helper()
	bundle := x509bundle.FromX509Authorities(f.ca.TrustDomain(), f.ca.Roots())
	tc := tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(f.ca.ServerID()))
	if id != "" {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		issued, err := f.ca.Sign(ca.Params{ID: spiffeid.RequireFromString(id), PublicKey: key.Public()})
		if err != nil {
			t.Fatal(err)
		}
		svid := &x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: []*x509.Certificate{issued.Leaf}, PrivateKey: key}
		tc = tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(f.ca.ServerID()))
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return alsv3.NewAccessLogServiceClient(conn)
}

// send streams msgs as Envoy does and returns the status of the close.
func send(t *testing.T, c alsv3.AccessLogServiceClient, msgs ...*alsv3.StreamAccessLogsMessage) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the server ended the stream; CloseAndRecv reports why
		}
	}
	_, err = stream.CloseAndRecv()
	return status.Code(err)
}

const (
	webID   = "spiffe://cluster.local/ns/shop/sa/web"
	cartID  = "spiffe://cluster.local/ns/shop/sa/cart"
	webNode = "sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local"
)

func identifier(nodeID string) *alsv3.StreamAccessLogsMessage_Identifier {
	return &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: nodeID}, LogName: "http_envoy_accesslog"}
}

func httpMsg(id *alsv3.StreamAccessLogsMessage_Identifier, entries ...*datav3.HTTPAccessLogEntry) *alsv3.StreamAccessLogsMessage {
	return &alsv3.StreamAccessLogsMessage{Identifier: id, LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
}

func tcpMsg(id *alsv3.StreamAccessLogsMessage_Identifier, entries ...*datav3.TCPAccessLogEntry) *alsv3.StreamAccessLogsMessage {
	return &alsv3.StreamAccessLogsMessage{Identifier: id, LogEntries: &alsv3.StreamAccessLogsMessage_TcpLogs{
		TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: entries}}}
}

// common is what Envoy's inbound listener of web reports for a call from
// cart over mTLS.
func common(cluster string, md map[string]any) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{
		StartTime:       timestamppb.New(start.Add(time.Minute)),
		UpstreamCluster: cluster,
		DownstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "10.0.0.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 41000}}}},
		TlsProperties: &datav3.TLSProperties{PeerCertificateProperties: &datav3.TLSProperties_CertificateProperties{
			SubjectAltName: []*datav3.TLSProperties_CertificateProperties_SubjectAltName{{San: &datav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: cartID}}}}},
	}
	if md != nil {
		st, _ := structpb.NewStruct(md)
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.ext_authz": st}}
	}
	return c
}

func httpEntry(path string, code uint32, details string, md map[string]any) *datav3.HTTPAccessLogEntry {
	return &datav3.HTTPAccessLogEntry{
		CommonProperties: common("inbound|8080||", md),
		Request: &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: path, Authority: "web.shop.svc.cluster.local",
			RequestHeaders: map[string]string{"authorization": "Bearer secret"}},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(code), ResponseCodeDetails: details},
	}
}

// TestStreamRecordsCalls: an Envoy sidecar of shop streams HTTP and TCP
// entries for its own node; every entry becomes a record with the
// certificate's identity as reporter, no query string or header, and the
// records fold into edges.
func TestStreamRecordsCalls(t *testing.T) {
	f := startServer(t, 0)
	c := f.client(t, webID)
	allowed := httpEntry("/api/items?token=secret", 200, "via_upstream", map[string]any{"ward_policy": "shop/allow-cart", "ward_rule": "0", "ward_decision_id": "d-1", "ward_allowed": true})
	denied := httpEntry("/admin", 403, "rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]]", nil)
	tcp := &datav3.TCPAccessLogEntry{CommonProperties: common("inbound|5432||", nil)}
	if code := send(t, c, httpMsg(identifier(webNode), allowed, denied, &datav3.HTTPAccessLogEntry{}), tcpMsg(nil, tcp)); code != codes.OK {
		t.Fatalf("stream ended with %v", code)
	}
	recs := f.store.Records()
	if len(recs) != 3 {
		t.Fatalf("stored %d records, want 3: %+v", len(recs), recs)
	}
	a, d, p := recs[0], recs[1], recs[2]
	if a.Reporter != webID || a.Side != "server" || a.Source != cartID || a.Destination != webID || !a.MTLS || a.Denied ||
		a.Path != "/api/items" || a.Method != "GET" || a.Policy != "shop/allow-cart" || a.DecisionID != "d-1" || !a.Time.Equal(start.Add(time.Minute)) {
		t.Errorf("allowed record = %+v", a)
	}
	if !d.Denied || d.Policy != "ns[shop]-policy[deny-admin]-rule[0]" || d.ResponseCode != 403 {
		t.Errorf("denied record = %+v", d)
	}
	if p.Protocol != "tcp" || p.Source != cartID || p.Cluster != "inbound|5432||" {
		t.Errorf("tcp record = %+v", p)
	}
	for _, r := range recs {
		if strings.Contains(r.Path, "secret") || strings.Contains(r.Authority, "secret") {
			t.Errorf("record keeps a secret: %+v", r)
		}
	}
	edges := f.store.Edges()
	if len(edges) != 2 || edges[0].Protocol != "http" || edges[0].Allowed != 1 || edges[0].Denied != 1 || edges[1].Protocol != "tcp" {
		t.Errorf("edges = %+v", edges)
	}
}

// TestStreamAuthBinding: a caller without a certificate, or reporting for
// a node of another namespace, is refused and nothing is stored.
func TestStreamAuthBinding(t *testing.T) {
	f := startServer(t, 0)
	entry := httpEntry("/", 200, "via_upstream", nil)
	for _, tc := range []struct {
		name, caller, node string
		want               codes.Code
	}{
		{"no certificate", "", webNode, codes.Unauthenticated},
		{"node of another namespace", webID, "sidecar~10.0.0.9~pay-1.payments~payments.svc.cluster.local", codes.PermissionDenied},
	} {
		if code := send(t, f.client(t, tc.caller), httpMsg(identifier(tc.node), entry)); code != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, code, tc.want)
		}
	}
	// A stream that switches to a foreign node mid-way is cut there.
	foreign := identifier("sidecar~10.0.0.9~pay-1.payments~payments.svc.cluster.local")
	if code := send(t, f.client(t, webID), httpMsg(identifier(webNode), entry), httpMsg(foreign, entry)); code != codes.PermissionDenied {
		t.Errorf("switch to a foreign node: code %v", code)
	}
	if n := len(f.store.Records()); n != 1 {
		t.Errorf("stored %d records, want only the one before the switch", n)
	}
}

// TestStreamMalformed: a first message without identifier, an identifier
// without node and an oversized message end the stream with
// InvalidArgument.
func TestStreamMalformed(t *testing.T) {
	f := startServer(t, 2)
	c := f.client(t, webID)
	entry := httpEntry("/", 200, "via_upstream", nil)
	for _, tc := range []struct {
		name string
		msg  *alsv3.StreamAccessLogsMessage
	}{
		{"no identifier", httpMsg(nil, entry)},
		{"identifier without node", httpMsg(&alsv3.StreamAccessLogsMessage_Identifier{LogName: "x"}, entry)},
		{"too many entries", httpMsg(identifier(webNode), entry, entry, entry)},
	} {
		if code := send(t, c, tc.msg); code != codes.InvalidArgument {
			t.Errorf("%s: code %v, want InvalidArgument", tc.name, code)
		}
	}
	if n := len(f.store.Records()); n != 0 {
		t.Errorf("stored %d records from malformed messages", n)
	}
}

func TestRecordFieldsBounded(t *testing.T) {
	f := startServer(t, 0)
	long := "/" + strings.Repeat("é", 2000)
	entry := httpEntry(long, 200, strings.Repeat("x", 5000), nil)
	entry.Request.Authority = strings.Repeat("a", 300)
	if code := send(t, f.client(t, webID), httpMsg(identifier(webNode), entry)); code != codes.OK {
		t.Fatalf("code %v", code)
	}
	r := f.store.Records()[0]
	if len(r.Path) > 1024 || len(r.Details) > 256 || len(r.Authority) != 256 || !utf8.ValidString(r.Path) {
		t.Errorf("unbounded record: path %d bytes, details %d bytes, authority %q", len(r.Path), len(r.Details), r.Authority)
	}
}

func TestStoreBounds(t *testing.T) {
	s := als.NewStore(als.StoreConfig{MaxRecords: 3, MaxEdges: 2})
	for i, src := range []string{"a", "b", "c", "a", "d"} {
		s.Add(als.Record{Time: start.Add(time.Duration(i) * time.Second), Source: src, Destination: "x", Protocol: "http", Path: src})
	}
	var kept []string
	for _, r := range s.Records() {
		kept = append(kept, r.Path)
	}
	if strings.Join(kept, ",") != "c,a,d" {
		t.Errorf("kept %v, want the last three oldest first", kept)
	}
	st := s.Stats()
	if st.Records != 5 || st.Kept != 3 || st.Edges != 2 || st.DroppedEdges != 2 {
		t.Errorf("stats = %+v", st)
	}
	e := s.Edges()
	if e[0].Source != "a" || e[0].Allowed != 2 || !e[0].FirstSeen.Equal(start) || !e[0].LastSeen.Equal(start.Add(3*time.Second)) {
		t.Errorf("edge a = %+v", e[0])
	}
}

// TestStoreSink: records reach the sink as JSON lines when flushed (the
// server flushes once per message), and decode back unchanged.
func TestStoreSink(t *testing.T) {
	var sink bytes.Buffer
	s := als.NewStore(als.StoreConfig{Sink: &sink})
	in := []als.Record{
		{Time: start, Reporter: webID, Side: "server", Protocol: "http", Source: cartID, Destination: webID, Path: "/a", MTLS: true},
		{Time: start.Add(time.Second), Reporter: webID, Side: "client", Protocol: "tcp", Source: webID, Cluster: "outbound|5432||db", Denied: true},
	}
	for _, r := range in {
		s.Add(r)
	}
	if sink.Len() != 0 {
		t.Errorf("written before Flush: %q", sink.String())
	}
	s.Flush()
	var out []als.Record
	dec := json.NewDecoder(&sink)
	for dec.More() {
		var r als.Record
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if len(out) != 2 || !out[0].Time.Equal(in[0].Time) || out[0].Source != cartID || !out[1].Denied || out[1].Cluster != in[1].Cluster {
		t.Errorf("sink records = %+v", out)
	}
	if strings.Count(strings.TrimSpace(sink.String()), "\n") != 0 {
		t.Errorf("sink not drained by decoding")
	}
}
