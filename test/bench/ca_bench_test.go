package bench

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wardmesh/ward/ca"
)

// CA benchmarks. BenchmarkCASign is in-process. The service benchmarks run
// the CA (certificate service over TLS) in a child process — this test
// binary re-executed in server mode — so its CPU is measured apart from
// the load generator's: the machine's 2 cores are shared with the
// generator (and other jobs), so wall-clock rates understate what the CA
// does on 2 cores of its own. Each reports the observed rate, the CA's
// CPU per request and the capacity that implies on 2 cores.

const (
	caAgents       = 64
	caServerEnv    = "WARD_CA_LOAD_SERVER_DIR"
	benchTD        = "example.org"
	benchServerID  = "spiffe://example.org/ns/ward-system/sa/ward"
	clockTicksPerS = 100 // USER_HZ on Linux
)

func benchCA(b *testing.B) *ca.CA {
	b.Helper()
	c, err := ca.New(ca.Config{StateDir: b.TempDir(), TrustDomain: benchTD})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func serveBenchCA(b *testing.B, c *ca.CA) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(s)
	go s.Serve(lis)
	b.Cleanup(s.Stop)
	return lis.Addr().String()
}

// TestCALoadServerProcess is the child's entry point; it is skipped in a
// normal test run.
func TestCALoadServerProcess(t *testing.T) {
	dir := os.Getenv(caServerEnv)
	if dir == "" {
		t.Skip("server process of the CA benchmarks")
	}
	c, err := ca.New(ca.Config{StateDir: dir, TrustDomain: benchTD})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(s)
	go s.Serve(lis)
	if prof := os.Getenv("WARD_CA_LOAD_CPUPROFILE"); prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // parent gone → exit
	s.Stop()
}

// caProcess is a CA running in a child process.
type caProcess struct {
	addr   string
	dir    string
	pid    int
	bundle *x509bundle.Bundle
	tokens *ca.TokenStore
}

func startCAProcess(b *testing.B) *caProcess {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCALoadServerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), caServerEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	p := &caProcess{dir: dir, pid: cmd.Process.Pid, tokens: ca.NewTokenStore(ca.TokenDir(dir), nil)}
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			p.addr = a
			break
		}
	}
	if p.addr == "" {
		b.Fatal("CA process did not start")
	}
	go io.Copy(io.Discard, stdout)
	pemb, err := ca.LoadBundle(dir)
	if err != nil {
		b.Fatal(err)
	}
	if p.bundle, err = x509bundle.Parse(spiffeid.RequireTrustDomainFromString(benchTD), pemb); err != nil {
		b.Fatal(err)
	}
	return p
}

// cpu is the child's user+system CPU time.
func (p *caProcess) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / clockTicksPerS
}

func (p *caProcess) dial(b *testing.B, cert *tls.Certificate, token string) *ca.Client {
	cl, err := ca.Dial(ca.ClientConfig{
		Addr: p.addr, ServerID: spiffeid.RequireFromString(benchServerID), Certificate: cert, Token: token,
		Bundle: func() *x509bundle.Bundle { return p.bundle },
	})
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// report adds the CA's CPU per op and the implied 2-core capacity.
func (p *caProcess) report(b *testing.B, start time.Time, cpu0 time.Duration, unit string) {
	el := time.Since(start)
	per := (p.cpu(b) - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(b.N)/el.Seconds(), unit+"/s")
	b.ReportMetric(float64(per.Microseconds()), "ca-cpu-µs/"+unit)
	if per > 0 {
		b.ReportMetric(2*float64(time.Second)/float64(per), unit+"/s-on-2-ca-cores")
	}
}

func benchKey(b *testing.B) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func benchCSR(b *testing.B, k crypto.Signer) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// BenchmarkCASign is the in-process cost of one workload certificate:
// template, ECDSA P-256 signature (plus the verification
// x509.CreateCertificate does of it), parse and self-validation.
func BenchmarkCASign(b *testing.B) {
	c := benchCA(b)
	id := spiffeid.RequireFromString("spiffe://example.org/ns/shop/sa/cart")
	pub := benchKey(b).Public()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Sign(ca.Params{ID: id, PublicKey: pub}); err != nil {
			b.Fatal(err)
		}
	}
}

// enrol gets a certificate for a new workload by join token.
func (p *caProcess) enrol(b *testing.B, ns, sa string) *tls.Certificate {
	tok, err := p.tokens.Create(ns, sa, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	k := benchKey(b)
	cl := p.dial(b, nil, tok.String())
	defer cl.Close()
	chain, err := cl.CreateCertificate(context.Background(), benchCSR(b, k), 0)
	if err != nil {
		b.Fatal(err)
	}
	certs, _, err := ca.SplitChain(chain)
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: k, Leaf: certs[0]}
}

// BenchmarkCAServiceRenewal64 is CSR → signed chain over gRPC+TLS with 64
// enrolled agents renewing concurrently on their mTLS connections.
func BenchmarkCAServiceRenewal64(b *testing.B) {
	p := startCAProcess(b)
	csr := benchCSR(b, benchKey(b))
	clients := make([]*ca.Client, caAgents)
	for i := range clients {
		clients[i] = p.dial(b, p.enrol(b, "load", fmt.Sprintf("agent-%d", i)), "")
		defer clients[i].Close()
		if _, err := clients[i].CreateCertificate(context.Background(), csr, 0); err != nil { // connect
			b.Fatal(err)
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	start, cpu0 := time.Now(), p.cpu(b)
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := cl.CreateCertificate(context.Background(), csr, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	p.report(b, start, cpu0, "signs")
}

// BenchmarkCAColdEnrol enrols b.N distinct workloads from cold: each one a
// new TLS connection with its own join token (checked and consumed on
// disk) and its own key, 64 at a time. Keys, CSRs and tokens are made
// before the timer starts (agent-side work). Run with -benchtime 10000x.
func BenchmarkCAColdEnrol(b *testing.B) {
	p := startCAProcess(b)
	type work struct {
		csr   []byte
		token string
	}
	jobs := make([]work, b.N)
	for i := range jobs {
		tok, err := p.tokens.Create("load", fmt.Sprintf("w-%d", i), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		jobs[i] = work{benchCSR(b, benchKey(b)), tok.String()}
	}
	var next atomic.Int64
	b.ResetTimer()
	start, cpu0 := time.Now(), p.cpu(b)
	var wg sync.WaitGroup
	for range caAgents {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) {
					return
				}
				cl := p.dial(b, nil, jobs[i].token)
				_, err := cl.CreateCertificate(context.Background(), jobs[i].csr, 0)
				cl.Close()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(time.Since(start).Seconds(), "s-total")
	p.report(b, start, cpu0, "enrols")
}

// BenchmarkCAAgentKeyAndCSR is the agent-side cost of one enrolment
// request: a P-256 key and a signed CSR.
func BenchmarkCAAgentKeyAndCSR(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchCSR(b, benchKey(b))
	}
}
