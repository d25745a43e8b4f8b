package hbone

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Bundles verify the peer's certificate.
	Bundles x509bundle.Source
	Now     func() time.Time
	// DialContext opens the TCP connection to a peer; default net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	Log         *slog.Logger
}

// Client opens HBONE tunnels, sharing one HTTP/2 connection per peer and
// source certificate.
type Client struct {
	cfg  ClientConfig
	mu   sync.Mutex
	pool map[poolKey]*http.ClientConn
}

type poolKey struct {
	peer   netip.AddrPort
	server spiffeid.ID
	cert   [32]byte // the source leaf: a rotated certificate gets a new connection
}

// NewClient fills defaults.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Bundles == nil {
		return nil, errors.New("hbone client: Bundles is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DialContext == nil {
		cfg.DialContext = (&net.Dialer{}).DialContext
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, pool: map[poolKey]*http.ClientConn{}}, nil
}

// Target is one tunnel to open.
type Target struct {
	// Peer is the destination node proxy's HBONE address.
	Peer netip.AddrPort
	// Dest is the destination workload's address: the CONNECT authority.
	Dest netip.AddrPort
	// Source is the source workload's certificate (with key); the tunnel
	// carries its identity.
	Source *tls.Certificate
	// ServerID is the identity the peer must present (the destination
	// workload's); the zero ID accepts any SVID the bundles verify.
	ServerID spiffeid.ID
}

// StatusError is a tunnel the peer refused, with its HTTP status.
type StatusError struct {
	Code int
	Dest netip.AddrPort
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("hbone connect %s: peer answered %d %s", e.Dest, e.Code, http.StatusText(e.Code))
}

// Dial opens a tunnel to t.Dest through t.Peer.
func (c *Client) Dial(ctx context.Context, t Target) (net.Conn, error) {
	if t.Source == nil || len(t.Source.Certificate) == 0 {
		return nil, errors.New("hbone dial: no source certificate")
	}
	cc, err := c.conn(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("hbone dial %s: %w", t.Peer, err)
	}
	pr, pw := io.Pipe()
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Host: t.Dest.String()},
		Host:   t.Dest.String(),
		Header: http.Header{},
		Body:   pr,
	}
	// The stream lives as long as the tunnel, not ctx; ctx bounds only
	// the wait for the peer's answer.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	resp, err := cc.RoundTrip(req.WithContext(sctx))
	if !stop() || err != nil {
		cancel()
		pw.Close()
		if err == nil {
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			err = ctx.Err() // the stream was cancelled because ctx ended
		}
		return nil, fmt.Errorf("hbone connect %s via %s: %w", t.Dest, t.Peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		pw.Close()
		return nil, &StatusError{Code: resp.StatusCode, Dest: t.Dest}
	}
	return &tunnel{r: resp.Body, w: pw, cancel: cancel, local: addrPort(nil), remote: t.Dest}, nil
}

// conn returns a pooled HTTP/2 connection for t or dials one.
func (c *Client) conn(ctx context.Context, t Target) (*http.ClientConn, error) {
	k := poolKey{peer: t.Peer, server: t.ServerID, cert: sha256.Sum256(t.Source.Certificate[0])}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.pool[k]; ok {
		if cc.Err() == nil && cc.Reserve() == nil {
			cc.Release()
			return cc, nil
		}
		delete(c.pool, k)
		cc.Close()
	}
	cc, err := c.transport(t).NewClientConn(ctx, "https", t.Peer.String())
	if err != nil {
		return nil, err
	}
	c.pool[k] = cc
	return cc, nil
}

func (c *Client) transport(t Target) *http.Transport {
	var protos http.Protocols
	protos.SetHTTP2(true)
	tc := c.tlsConfig(t)
	return &http.Transport{
		Protocols:       &protos,
		HTTP2:           http2Config(clientMaxFrame),
		TLSClientConfig: tc,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := c.cfg.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tl := tls.Client(raw, tc)
			if err := tl.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tl, nil
		},
	}
}

// tlsConfig presents the source certificate and verifies the peer as an
// X509-SVID (for t.ServerID when set); there is no hostname to check.
func (c *Client) tlsConfig(t Target) *tls.Config {
	src := t.Source
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		// Full records from the first byte (see doc.go).
		DynamicRecordSizingDisabled: true,
		InsecureSkipVerify:          true, // verified as a SPIFFE ID below
		GetClientCertificate:        func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return src, nil },
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, _, err := x509svid.ParseAndVerify(raw, c.cfg.Bundles, x509svid.WithTime(c.cfg.Now()))
			if err != nil {
				return fmt.Errorf("hbone peer certificate: %w", err)
			}
			if !t.ServerID.IsZero() && id != t.ServerID {
				return fmt.Errorf("hbone peer is %s, want %s", id, t.ServerID)
			}
			return nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != alpn {
				return fmt.Errorf("hbone: peer negotiated alpn %q, want %q", cs.NegotiatedProtocol, alpn)
			}
			return nil
		},
		Time: c.cfg.Now,
	}
}

// Retire stops new tunnels on the connections that present cert (after
// a rotation) and closes each once its last tunnel ends; tunnels in
// flight are not interrupted.
func (c *Client) Retire(cert *tls.Certificate) {
	if cert == nil || len(cert.Certificate) == 0 {
		return
	}
	sum := sha256.Sum256(cert.Certificate[0])
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cc := range c.pool {
		if k.cert != sum {
			continue
		}
		delete(c.pool, k)
		closeIdle := func(cc *http.ClientConn) {
			if cc.InFlight() == 0 {
				cc.Close()
			}
		}
		cc.SetStateHook(closeIdle)
		closeIdle(cc)
	}
}

// Close closes every pooled connection (and their tunnels).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cc := range c.pool {
		cc.Close()
		delete(c.pool, k)
	}
	return nil
}

// tunnel is one CONNECT stream as a net.Conn. CloseWrite ends the request
// stream (END_STREAM), which the peer turns into a TCP half-close.
type tunnel struct {
	r      io.ReadCloser
	w      *io.PipeWriter
	cancel context.CancelFunc
	local  netip.AddrPort
	remote netip.AddrPort
	once   sync.Once
}

func (t *tunnel) Read(p []byte) (int, error)  { return t.r.Read(p) }
func (t *tunnel) Write(p []byte) (int, error) { return writeChunks(t.w, p, upPayload, nil) }
func (t *tunnel) CloseWrite() error           { return t.w.Close() }
func (t *tunnel) Close() error {
	t.once.Do(func() {
		t.w.Close()
		t.r.Close()
		t.cancel()
	})
	return nil
}
func (t *tunnel) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(t.local) }
func (t *tunnel) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(t.remote) }

// Deadlines are not supported on a tunnel: callers bound it with ctx and
// Close.
func (t *tunnel) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (t *tunnel) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (t *tunnel) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
