package hbone

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/ca"
)

// testCA is a real Ward CA for one trust domain.
type testCA struct {
	ca *ca.CA
	td spiffeid.TrustDomain
}

func newCA(t testing.TB, td string) *testCA {
	t.Helper()
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca: c, td: c.TrustDomain()}
}

func (c *testCA) bundles() x509bundle.Source {
	return x509bundle.NewSet(x509bundle.FromX509Authorities(c.td, c.ca.Roots()))
}

// svid issues a certificate for ns/sa with a key made here.
func (c *testCA) svid(t testing.TB, ns, sa string) (*tls.Certificate, spiffeid.ID) {
	t.Helper()
	id := spiffeid.RequireFromPath(c.td, "/ns/"+ns+"/sa/"+sa)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.ca.Sign(ca.Params{ID: id, PublicKey: key.Public(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{iss.Leaf.Raw}, PrivateKey: crypto.Signer(key), Leaf: iss.Leaf}, id
}

// echo is a TCP backend on loopback: it echoes until EOF, then half-closes.
func echo(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

type fixture struct {
	ca      *testCA
	addr    netip.AddrPort
	lis     *countingListener
	mu      sync.Mutex
	seen    []Request
	tunnels chan [2]int64
}

func (f *fixture) requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.seen...)
}

// serve starts an HBONE server presenting a server SVID; mod adjusts cfg.
func serve(t testing.TB, c *testCA, mod func(*ServerConfig)) *fixture {
	t.Helper()
	f := &fixture{ca: c, tunnels: make(chan [2]int64, 16)}
	srvCert, _ := c.svid(t, "dst", "server")
	cfg := ServerConfig{
		Certificate: func(netip.AddrPort) (*tls.Certificate, error) { return srvCert, nil },
		Bundles:     c.bundles(),
		Authorize: func(_ context.Context, r Request) error {
			f.mu.Lock()
			f.seen = append(f.seen, r)
			f.mu.Unlock()
			return nil
		},
		OnTunnel: func(_ Request, up, down int64) { f.tunnels <- [2]int64{up, down} },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.lis = &countingListener{Listener: l}
	f.addr = netip.MustParseAddrPort(l.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, f.lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return f
}

func client(t testing.TB, b x509bundle.Source) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Bundles: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTunnelCarriesCallerIdentityAndData(t *testing.T) {
	c := newCA(t, "cluster.local")
	f := serve(t, c, nil)
	backend := echo(t)
	src, srcID := c.svid(t, "a", "client")
	conn, err := client(t, c.bundles()).Dial(ctxT(t), Target{Peer: f.addr, Dest: backend, Source: src,
		ServerID: spiffeid.RequireFromString("spiffe://cluster.local/ns/dst/sa/server")})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Bidirectional: each write is echoed before the next is sent.
	buf := make([]byte, 64)
	for i := range 3 {
		msg := fmt.Sprintf("ping %d", i)
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf[:len(msg)]); err != nil || string(buf[:len(msg)]) != msg {
			t.Fatalf("echo %d = %q, %v", i, buf[:len(msg)], err)
		}
	}
	seen := f.requests()
	if len(seen) != 1 || seen[0].Caller != srcID || seen[0].Dest != backend || seen[0].Local != f.addr {
		t.Fatalf("authorizer saw %+v, want caller %s dest %s local %s", seen, srcID, backend, f.addr)
	}
	conn.(interface{ CloseWrite() error }).CloseWrite()
	if rest, err := io.ReadAll(conn); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v; want EOF", rest, err)
	}
	if got := <-f.tunnels; got != [2]int64{18, 18} {
		t.Errorf("tunnel bytes = %v, want [18 18]", got)
	}
}

// TestHalfClose: the caller's half-close reaches the destination as a TCP
// FIN, and the destination can still answer after it.
func TestHalfClose(t *testing.T) {
	c := newCA(t, "cluster.local")
	f := serve(t, c, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		s, err := l.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		n, _ := io.Copy(io.Discard, s) // until the caller's FIN
		fmt.Fprintf(s, "got %d", n)
	}()
	src, _ := c.svid(t, "a", "client")
	conn, err := client(t, c.bundles()).Dial(ctxT(t), Target{Peer: f.addr, Dest: netip.MustParseAddrPort(l.Addr().String()), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := conn.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != fmt.Sprintf("got %d", len(payload)) {
		t.Fatalf("answer after half-close = %q, %v", got, err)
	}
}

func TestPoolSharesConnectionPerSourceIdentity(t *testing.T) {
	c := newCA(t, "cluster.local")
	f := serve(t, c, nil)
	backend := echo(t)
	cl := client(t, c.bundles())
	a, _ := c.svid(t, "a", "one")
	b, _ := c.svid(t, "a", "two")
	for _, src := range []*tls.Certificate{a, a, b} {
		conn, err := cl.Dial(ctxT(t), Target{Peer: f.addr, Dest: backend, Source: src})
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("x"))
		io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	if n := f.lis.n.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2 (one per source identity)", n)
	}
}

// TestRefusals: every way a tunnel is refused fails the Dial, and none of
// them reaches the destination.
func TestRefusals(t *testing.T) {
	c := newCA(t, "cluster.local")
	other := newCA(t, "other.example")
	backend := echo(t)
	deny := func(cfg *ServerConfig) {
		cfg.Authorize = func(context.Context, Request) error { return errors.New("policy says no") }
	}
	expired := func(cfg *ServerConfig) { cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) } }
	failDial := func(cfg *ServerConfig) {
		cfg.Dial = func(context.Context, Request) (net.Conn, error) { return nil, errors.New("no route") }
	}
	good, _ := c.svid(t, "a", "client")
	foreign, _ := other.svid(t, "a", "client")
	for _, tc := range []struct {
		name     string
		mod      func(*ServerConfig)
		src      *tls.Certificate
		serverID string
		status   int // 0: any error
	}{
		{name: "policy deny", mod: deny, src: good, status: http.StatusForbidden},
		{name: "destination unreachable", mod: failDial, src: good, status: http.StatusServiceUnavailable},
		{name: "wrong trust domain", src: foreign},
		{name: "expired caller certificate", mod: expired, src: good},
		{name: "server is not the expected workload", src: good, serverID: "spiffe://cluster.local/ns/dst/sa/other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := serve(t, c, tc.mod)
			tgt := Target{Peer: f.addr, Dest: backend, Source: tc.src}
			if tc.serverID != "" {
				tgt.ServerID = spiffeid.RequireFromString(tc.serverID)
			}
			conn, err := client(t, c.bundles()).Dial(ctxT(t), tgt)
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			var se *StatusError
			if tc.status != 0 && (!errors.As(err, &se) || se.Code != tc.status) {
				t.Fatalf("err = %v, want status %d", err, tc.status)
			}
			if tc.status == 0 && len(f.requests()) != 0 {
				t.Fatalf("unauthenticated caller reached the authorizer: %+v", f.requests())
			}
		})
	}
}

// rawTLS dials the server with a hand-made TLS config.
func rawTLS(t *testing.T, addr netip.AddrPort, tc *tls.Config) error {
	conn, err := tls.Dial("tcp", addr.String(), tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	// TLS 1.3: the server's verdict on the client arrives after the
	// client's handshake; a read surfaces it.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

func TestHandshakeRequirements(t *testing.T) {
	c := newCA(t, "cluster.local")
	f := serve(t, c, nil)
	good, _ := c.svid(t, "a", "client")
	base := func() *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}, Certificates: []tls.Certificate{*good}}
	}
	// The baseline handshakes (the read then sees HTTP/2 SETTINGS).
	if err := rawTLS(t, f.addr, base()); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	for name, mod := range map[string]func(*tls.Config){
		"no client certificate": func(tc *tls.Config) { tc.Certificates = nil },
		"alpn http/1.1":         func(tc *tls.Config) { tc.NextProtos = []string{"http/1.1"} },
		"no alpn":               func(tc *tls.Config) { tc.NextProtos = nil },
		"tls 1.2":               func(tc *tls.Config) { tc.MaxVersion = tls.VersionTLS12 },
	} {
		t.Run(name, func(t *testing.T) {
			tc := base()
			mod(tc)
			if err := rawTLS(t, f.addr, tc); err == nil {
				t.Fatal("handshake accepted")
			}
		})
	}
	if len(f.requests()) != 0 {
		t.Errorf("authorizer was reached: %+v", f.requests())
	}
}

// TestBadRequests: authenticated callers with a bad CONNECT get 4xx and
// never reach the authorizer.
func TestBadRequests(t *testing.T) {
	c := newCA(t, "cluster.local")
	f := serve(t, c, nil)
	src, _ := c.svid(t, "a", "client")
	cl := client(t, c.bundles())
	cc, err := cl.conn(ctxT(t), Target{Peer: f.addr, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, authority string
		want              int
	}{
		{"CONNECT", "web.example.com:80", http.StatusBadRequest},
		{"CONNECT", "10.0.0.1:0", http.StatusBadRequest},
		{"GET", "10.0.0.1:80", http.StatusMethodNotAllowed},
	} {
		req := &http.Request{Method: tc.method, URL: &url.URL{Scheme: "https", Host: tc.authority, Path: "/"}, Host: tc.authority, Header: http.Header{}}
		if tc.method == "CONNECT" {
			req.URL = &url.URL{Host: tc.authority}
		}
		resp, err := cc.RoundTrip(req.WithContext(ctxT(t)))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.authority, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.authority, resp.StatusCode, tc.want)
		}
	}
	if len(f.requests()) != 0 {
		t.Errorf("authorizer was reached: %+v", f.requests())
	}
}

// TestDialBoundedByContext: a peer that never answers the CONNECT fails
// the Dial when ctx ends, and the pooled connection stays usable.
func TestDialBoundedByContext(t *testing.T) {
	c := newCA(t, "cluster.local")
	release := make(chan struct{})
	defer close(release)
	backend := echo(t)
	f := serve(t, c, func(cfg *ServerConfig) {
		cfg.Authorize = func(_ context.Context, r Request) error {
			if r.Dest == backend {
				return nil
			}
			<-release // hang every other destination
			return errors.New("released")
		}
	})
	src, _ := c.svid(t, "a", "client")
	cl := client(t, c.bundles())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if conn, err := cl.Dial(ctx, Target{Peer: f.addr, Dest: netip.MustParseAddrPort("127.0.0.1:9"), Source: src}); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("dial to a hanging peer: %v, want deadline exceeded", err)
	}
	conn, err := cl.Dial(ctxT(t), Target{Peer: f.addr, Dest: backend, Source: src})
	if err != nil {
		t.Fatalf("dial after a timed-out one: %v", err)
	}
	defer conn.Close()
	conn.Write([]byte("ok"))
	if b := make([]byte, 2); func() error { _, err := io.ReadFull(conn, b); return err }() != nil || string(b) != "ok" {
		t.Fatal("tunnel after a timed-out one does not echo")
	}
	if n := f.lis.n.Load(); n != 1 {
		t.Errorf("%d connections, want the pooled one reused", n)
	}
}
