package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Request is one authenticated CONNECT: who asks (from the verified client
// certificate, never from the request), from where, and to which
// destination workload address.
type Request struct {
	Caller spiffeid.ID
	Source netip.AddrPort // the peer node proxy's address
	Dest   netip.AddrPort // the CONNECT authority
	// Local is the address the tunnel arrived on (which destination
	// workload's certificate was presented).
	Local netip.AddrPort
}

// Authorizer decides a tunnel before the destination is dialled; a
// non-nil error refuses it (403) and is logged, not sent.
type Authorizer func(ctx context.Context, r Request) error

// Dialer opens the connection to the destination workload.
type Dialer func(ctx context.Context, r Request) (net.Conn, error)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Certificate returns the certificate to present on a connection that
	// arrived at local (the destination workload's, in ambient mode).
	Certificate func(local netip.AddrPort) (*tls.Certificate, error)
	// Bundles verify callers' certificates (x509svid against the bundle of
	// the caller's trust domain).
	Bundles x509bundle.Source
	// Authorize is asked for every tunnel; required (fail closed).
	Authorize Authorizer
	// Dial defaults to a TCP dial to Request.Dest.
	Dial Dialer
	// Now is the clock certificates are checked on; default time.Now.
	Now func() time.Time
	Log *slog.Logger
	// OnTunnel, when set, is called when a tunnel closes (test hook and
	// metrics): bytes each way and the error that ended it, if any.
	OnTunnel func(r Request, up, down int64)
}

// Server accepts HBONE tunnels.
type Server struct {
	cfg  ServerConfig
	http *http.Server
}

// NewServer validates cfg and fills defaults.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Certificate == nil || cfg.Bundles == nil || cfg.Authorize == nil {
		return nil, errors.New("hbone server: Certificate, Bundles and Authorize are required")
	}
	if cfg.Dial == nil {
		cfg.Dial = dialTCP
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg}
	var protos http.Protocols
	protos.SetHTTP2(true)
	s.http = &http.Server{
		Handler:           s,
		TLSConfig:         s.tlsConfig(),
		Protocols:         &protos,
		HTTP2:             http2Config(maxFrame),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

func dialTCP(ctx context.Context, r Request) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", r.Dest.String())
}

// tlsConfig is TLS 1.3 only, h2 only, and requires a client certificate
// that verifies as an X509-SVID.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		// Full records from the first byte (see doc.go).
		DynamicRecordSizingDisabled: true,
		ClientAuth:                  tls.RequireAnyClientCert,
		GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cfg.Certificate(addrPort(hi.Conn.LocalAddr()))
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, _, err := x509svid.ParseAndVerify(raw, s.cfg.Bundles, x509svid.WithTime(s.cfg.Now()))
			return err
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != alpn {
				return fmt.Errorf("hbone: alpn %q, want %q", cs.NegotiatedProtocol, alpn)
			}
			return nil
		},
		Time: s.cfg.Now,
	}
}

// Serve accepts connections on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { s.http.Close() })
	defer stop()
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	err := s.http.ServeTLS(l, "", "")
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close stops the server and its tunnels.
func (s *Server) Close() error { return s.http.Close() }

// ServeHTTP handles one CONNECT stream.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, code, err := s.parse(r)
	if err == nil {
		if err = s.cfg.Authorize(r.Context(), req); err != nil {
			code = http.StatusForbidden
		}
	}
	if err != nil {
		s.cfg.Log.Info("hbone tunnel refused", "spiffe_id", req.Caller.String(), "source", req.Source.String(), "dest", r.Host, "status", code, "error", err)
		http.Error(w, http.StatusText(code), code) // opaque to the caller
		return
	}
	up, err := s.cfg.Dial(r.Context(), req)
	if err != nil {
		s.cfg.Log.Info("hbone dial failed", "spiffe_id", req.Caller.String(), "dest", req.Dest.String(), "error", err)
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	defer up.Close()
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	upN, downN := splice(up, r.Body, w, rc)
	if s.cfg.OnTunnel != nil {
		s.cfg.OnTunnel(req, upN, downN)
	}
}

// parse checks the method, protocol and authority and takes the caller's
// identity from its verified certificate.
func (s *Server) parse(r *http.Request) (Request, int, error) {
	var req Request
	req.Source = parseAddrPort(r.RemoteAddr)
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return req, http.StatusUnauthorized, errors.New("no client certificate")
	}
	id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	if err != nil {
		return req, http.StatusUnauthorized, fmt.Errorf("client certificate: %w", err)
	}
	req.Caller = id
	if r.Method != http.MethodConnect || r.ProtoMajor != 2 {
		return req, http.StatusMethodNotAllowed, fmt.Errorf("method %s over %s, want CONNECT over HTTP/2", r.Method, r.Proto)
	}
	dst, err := netip.ParseAddrPort(r.Host)
	if err != nil || dst.Port() == 0 {
		return req, http.StatusBadRequest, fmt.Errorf("authority %q is not a workload ip:port", r.Host)
	}
	req.Dest = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		req.Local = addrPort(la)
	}
	return req, 0, nil
}

// splice copies the tunnel both ways. The caller's half-close (END_STREAM)
// becomes a TCP half-close towards the destination; the destination's EOF
// ends the stream, which Go's HTTP/2 server turns into a full close (it
// resets the request side once the handler returns).
func splice(up net.Conn, body io.Reader, w io.Writer, rc *http.ResponseController) (upN, downN int64) {
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		Copy(countWriter{up, &sent}, body)
		closeWrite(up)
	}()
	downN, _ = Copy(flushWriter{w, rc}, up)
	select {
	case <-done:
	default:
		// The destination is done first: returning ends the stream and
		// the server then fails the body read, which ends the copier.
	}
	return sent.Load(), downN
}

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	return writeChunks(f.w, p, downPayload, f.rc.Flush)
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	return parseAddrPort(a.String())
}

func parseAddrPort(s string) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
