package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/sds"
)

// BenchmarkCASDSPush is the time from a rotated certificate being handed
// to the SDS server to an SDS client (SotW, over the Unix socket) holding
// it; each iteration is one rotation, pushed and ACKed.
func BenchmarkCASDSPush(b *testing.B) {
	srv, err := sds.NewServer(sds.Config{TrustDomain: "example.org"})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := sds.ListenUnix(filepath.Join(b.TempDir(), "sds.sock"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, lis)
	cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	st, err := secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	if err != nil {
		b.Fatal(err)
	}
	node := &core.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"}
	req := func(r *discovery.DiscoveryResponse) {
		q := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{sds.SecretDefault}}
		if r != nil {
			q.VersionInfo, q.ResponseNonce = r.VersionInfo, r.Nonce
		}
		if err := st.Send(q); err != nil {
			b.Fatal(err)
		}
	}
	key := []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n")
	if err := srv.SetIdentity([]byte("chain-0"), key); err != nil {
		b.Fatal(err)
	}
	req(nil)
	r, err := st.Recv()
	if err != nil {
		b.Fatal(err)
	}
	req(r)
	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := srv.SetIdentity(fmt.Appendf(nil, "chain-%d", i+1), key); err != nil {
			b.Fatal(err)
		}
		if r, err = st.Recv(); err != nil {
			b.Fatal(err)
		}
		worst = max(worst, time.Since(start))
		req(r)
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}

// BenchmarkCAAgentRSS runs the real agent for one workload (enrolment by
// join token, SDS on a Unix socket, proxyless files) against an
// in-process CA and reports its resident memory once it holds a
// certificate: "ward-agent" is the slim binary (cmd/ward-agent), "ward"
// the `ward agent` subcommand of the full binary.
func BenchmarkCAAgentRSS(b *testing.B) {
	for _, bin := range []struct{ name, pkg string }{{"ward-agent", "cmd/ward-agent"}, {"ward", "cmd/ward"}} {
		b.Run(bin.name, func(b *testing.B) { benchAgentRSS(b, bin.pkg) })
	}
}

func benchAgentRSS(b *testing.B, pkg string) {
	bin := filepath.Join(b.TempDir(), "agent")
	build := exec.Command("go", "build", "-o", bin, "github.com/wardmesh/ward/"+pkg)
	if pkg == "cmd/ward-agent" {
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build: static, no libc pages
	}
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	var args []string
	if pkg == "cmd/ward" {
		args = []string{"agent"}
	}
	c := benchCA(b)
	addr := serveBenchCA(b, c)
	dir := b.TempDir()
	tok, err := c.Tokens().Create("shop", "cart", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "out")
	var rssKB, anonKB, fileKB int
	for b.Loop() {
		cmd := exec.Command(bin, append(args, "--ca-addr", addr, "--trust-domain", "example.org",
			"--ca-root", write("root.pem", c.BundlePEM()), "--join-token-file", write("token", []byte(tok.String())),
			"--state", dir, "--output-dir", out, "--xds-addr", "127.0.0.1:15010", "--xds-insecure", "--log-level", "warn")...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitFile(b, filepath.Join(out, agent.FileBootstrap))
		time.Sleep(200 * time.Millisecond) // let the agent settle after enrolment; measurement, not synchronisation
		pid := cmd.Process.Pid
		rssKB, anonKB, fileKB = procStatus(b, pid, "VmRSS:"), procStatus(b, pid, "RssAnon:"), procStatus(b, pid, "RssFile:")
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if tok, err = c.Tokens().Create("shop", "cart", time.Hour); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
	}
	// VmRSS counts the touched pages of the binary (file-backed, shared
	// with other processes mapping it: RssFile) and the agent's own memory
	// (RssAnon).
	b.ReportMetric(float64(rssKB)/1024, "RSS-MB")
	b.ReportMetric(float64(anonKB)/1024, "RssAnon-MB")
	b.ReportMetric(float64(fileKB)/1024, "RssFile-MB")
}

func waitFile(b *testing.B, p string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling interval of a bounded wait on another process
	}
	b.Fatalf("%s not written within 20s", p)
}

func procStatus(b *testing.B, pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
