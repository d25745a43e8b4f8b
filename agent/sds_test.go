package agent

import (
	"context"
	"net"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wardmesh/ward/sds"
)

// TestSDSPushOnRotation: an Envoy-like SDS client on the agent's socket
// gets the first certificate, then the rotated one on the same stream.
func TestSDSPushOnRotation(t *testing.T) {
	clk := newFakeClock(time.Now().Truncate(time.Second))
	tc := startCA(t, clk, nil)
	srv, err := sds.NewServer(sds.Config{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := sds.ListenUnix(t.TempDir() + "/sds.sock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, lis)
	cfg := tc.agentConfig(t, clk, "shop", "cart")
	cfg.SDS = srv
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)

	st := sdsStream(t, ctx, lis)
	names := []string{sds.SecretDefault, sds.SecretRootCA}
	send := func(r *discovery.DiscoveryResponse) {
		req := &discovery.DiscoveryRequest{Node: &core.Node{Id: "sidecar~1.2.3.4~cart.shop~shop.svc.cluster.local"},
			TypeUrl: resourcev3.SecretType, ResourceNames: names}
		if r != nil {
			req.VersionInfo, req.ResponseNonce = r.VersionInfo, r.Nonce
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	send(nil)
	chain := func() string {
		for {
			r, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			send(r)
			for _, res := range r.Resources {
				var s tlsv3.Secret
				if res.UnmarshalTo(&s) == nil && s.Name == sds.SecretDefault {
					return string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
				}
			}
		}
	}
	first := chain()
	if cur := a.Current(); cur == nil || string(cur.ChainPEM) != first {
		t.Fatal("SDS served something other than the agent's certificate")
	}
	clk.waitForWaiter(t)
	clk.AdvanceTo(a.Current().RenewAt)
	second := chain()
	if second == first || string(a.Current().ChainPEM) != second {
		t.Fatal("rotation was not pushed on the open stream")
	}
}

func sdsStream(t *testing.T, ctx context.Context, lis net.Listener) secretservice.SecretDiscoveryService_StreamSecretsClient {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(cancel)
	st, err := secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
