package sds

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// startSDS serves s on a Unix socket and returns a connected SDS client.
func startSDS(t *testing.T, s *Server) secretservice.SecretDiscoveryServiceClient {
	t.Helper()
	lis, err := ListenUnix(filepath.Join(t.TempDir(), "sds.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return secretservice.NewSecretDiscoveryServiceClient(cc)
}

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer(Config{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var node = &core.Node{Id: "sidecar~127.0.0.1~a.ns~ns.svc.cluster.local"}

// recv waits at most 10s for the next message.
func recv[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() { v, err := f(); ch <- res{v, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.v
	case <-time.After(10 * time.Second):
		t.Fatal("no SDS response within 10s")
	}
	var zero T
	return zero
}

func secrets(t *testing.T, as []*anypb.Any) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, a := range as {
		var s tlsv3.Secret
		if err := a.UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		out[s.Name] = &s
	}
	return out
}

func chainOf(s *tlsv3.Secret) string {
	return string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
}

func bundleOf(s *tlsv3.Secret) string {
	return string(s.GetValidationContext().GetTrustedCa().GetInlineBytes())
}

func TestSotW(t *testing.T) {
	s := newServer(t)
	mustOK(t, s.SetIdentity([]byte("chain-1"), []byte("key-1")))
	mustOK(t, s.SetBundle([]byte("root-a root-b")))
	cl := startSDS(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := cl.StreamSecrets(ctx)
	mustOK(t, err)
	names := []string{SecretDefault, SecretRootCA, "spiffe://example.org"}
	mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: names}))

	got := map[string]*tlsv3.Secret{}
	var last *discovery.DiscoveryResponse
	for len(got) < len(names) {
		last = recv(t, st.Recv)
		for n, sec := range secrets(t, last.Resources) {
			got[n] = sec
		}
		ack(t, st, names, last)
	}
	if chainOf(got[SecretDefault]) != "chain-1" || string(got[SecretDefault].GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "key-1" {
		t.Errorf("initial default = %v", got[SecretDefault])
	}
	if bundleOf(got[SecretRootCA]) != "root-a root-b" || bundleOf(got["spiffe://example.org"]) != "root-a root-b" {
		t.Errorf("initial bundles = %v / %v", got[SecretRootCA], got["spiffe://example.org"])
	}

	mustOK(t, s.SetIdentity([]byte("chain-2"), []byte("key-2")))
	r := recv(t, st.Recv)
	if sec := secrets(t, r.Resources)[SecretDefault]; chainOf(sec) != "chain-2" {
		t.Fatalf("push on rotation: %v", r.Resources)
	}
	ack(t, st, names, r)

	mustOK(t, s.SetBundle([]byte("root-b")))
	r = recv(t, st.Recv)
	if sec := secrets(t, r.Resources)[SecretRootCA]; bundleOf(sec) != "root-b" {
		t.Fatalf("push on root removal: %v", r.Resources)
	}
}

func ack(t *testing.T, st secretservice.SecretDiscoveryService_StreamSecretsClient, names []string, r *discovery.DiscoveryResponse) {
	t.Helper()
	mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: names,
		VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce}))
}

func TestDelta(t *testing.T) {
	s := newServer(t)
	cl := startSDS(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := cl.DeltaSecrets(ctx)
	mustOK(t, err)
	names := []string{SecretDefault, SecretRootCA, "spiffe://example.org", SecretAll}
	mustOK(t, st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNamesSubscribe: names}))
	// Nothing is published yet: the first response comes with the secrets.
	mustOK(t, s.SetIdentity([]byte("chain-1"), []byte("key-1")))
	mustOK(t, s.SetBundle([]byte("root-a")))

	got := map[string]*tlsv3.Secret{}
	for len(got) < len(names) {
		r := recv(t, st.Recv)
		for _, res := range r.Resources {
			got[res.Name] = secrets(t, []*anypb.Any{res.Resource})[res.Name]
		}
		mustOK(t, st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResponseNonce: r.Nonce}))
	}
	if chainOf(got[SecretDefault]) != "chain-1" || bundleOf(got[SecretRootCA]) != "root-a" {
		t.Errorf("initial: %v", got)
	}
	var td []string
	var cfg tlsv3.SPIFFECertValidatorConfig
	mustOK(t, got[SecretAll].GetValidationContext().GetCustomValidatorConfig().GetTypedConfig().UnmarshalTo(&cfg))
	for _, d := range cfg.TrustDomains {
		td = append(td, d.Name+"="+string(d.TrustBundle.GetInlineBytes()))
	}
	if len(td) != 1 || td[0] != "example.org=root-a" {
		t.Errorf("ALL trust domains %v", td)
	}

	mustOK(t, s.SetIdentity([]byte("chain-2"), []byte("key-2")))
	r := recv(t, st.Recv)
	if len(r.Resources) != 1 || r.Resources[0].Name != SecretDefault {
		t.Fatalf("delta push on rotation carried %v, want only default", resNames(r))
	}
	if chainOf(secrets(t, []*anypb.Any{r.Resources[0].Resource})[SecretDefault]) != "chain-2" {
		t.Error("delta push has the old chain")
	}
	mustOK(t, st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResponseNonce: r.Nonce}))

	mustOK(t, s.SetBundle([]byte("root-a root-b")))
	r = recv(t, st.Recv)
	if n := resNames(r); len(n) != 3 || n[0] != SecretAll || n[1] != SecretRootCA {
		t.Fatalf("delta push on bundle change carried %v", n)
	}
}

func resNames(r *discovery.DeltaDiscoveryResponse) []string {
	var n []string
	for _, x := range r.Resources {
		n = append(n, x.Name)
	}
	sort.Strings(n)
	return n
}

func TestRejectsEmpty(t *testing.T) {
	s := newServer(t)
	if err := s.SetBundle(nil); err == nil {
		t.Error("empty bundle accepted")
	}
	if err := s.SetIdentity(nil, nil); err == nil {
		t.Error("empty identity accepted")
	}
	if _, err := NewServer(Config{TrustDomain: "not a domain"}); err == nil {
		t.Error("bad trust domain accepted")
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A NACKed version is not sent again; a later version is, and a stale
// answer (to a superseded response) is ignored.
func TestSotWNackAndStale(t *testing.T) {
	s := newServer(t)
	mustOK(t, s.SetIdentity([]byte("chain-1"), []byte("key-1")))
	cl := startSDS(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := cl.StreamSecrets(ctx)
	mustOK(t, err)
	names := []string{SecretDefault}
	mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: names}))
	r := recv(t, st.Recv)
	// NACK it, then send a stale ACK: neither may bring a response.
	mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: names,
		ResponseNonce: r.Nonce, ErrorDetail: &rpcstatus.Status{Message: "bad"}}))
	mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: names,
		VersionInfo: "old", ResponseNonce: "stale"}))
	mustOK(t, s.SetIdentity([]byte("chain-2"), []byte("key-2")))
	r2 := recv(t, st.Recv)
	if chainOf(secrets(t, r2.Resources)[SecretDefault]) != "chain-2" || r2.VersionInfo == r.VersionInfo {
		t.Fatalf("after a NACK the next response must be the new version, got %s %v", r2.VersionInfo, r2.Resources)
	}
	// A wrong type URL ends the stream.
	mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResponseNonce: r2.Nonce}))
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("wrong type URL: %v, want InvalidArgument", err)
	}
}

func TestSecretTypeURL(t *testing.T) {
	if SecretType != resourcev3.SecretType {
		t.Fatalf("SecretType %q, go-control-plane's %q", SecretType, resourcev3.SecretType)
	}
}
