package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node/hbone"
)

// pod is one enrolled workload: its certificate, its three listeners
// inside its network namespace, and the rules that redirect to them.
type pod struct {
	p    *Proxy
	w    *mesh.Workload
	ip   netip.Addr
	ns   netns
	svid atomic.Pointer[svid]
	// labels are the workload's current labels (policy selectors match
	// them); a config change replaces them without re-enrolling.
	labels atomic.Pointer[mesh.Labels]
	active tracker

	ctx       context.Context
	cancel    context.CancelFunc
	listeners []net.Listener
	client    *hbone.Client
	server    *hbone.Server
	captured  bool
	// opaque is set once the kernel refused IP_TRANSPARENT in this pod:
	// the application then sees the proxy's address, not the caller's.
	opaque   atomic.Bool
	done     chan struct{}
	stopOnce sync.Once
	conns    sync.WaitGroup
}

func (pd *pod) cert() *tls.Certificate { return pd.svid.Load().cert }

// start opens the listeners, installs capture and serves.
func (pd *pod) start() error {
	pd.ctx, pd.cancel = context.WithCancel(context.Background())
	var err error
	pd.client, err = hbone.NewClient(hbone.ClientConfig{
		Bundles: pd.p.bundle, Now: pd.p.cfg.Clock.Now, Log: pd.p.cfg.Log,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return pd.ns.dial(ctx, addr, Mark) },
	})
	if err != nil {
		return err
	}
	pd.server, err = hbone.NewServer(hbone.ServerConfig{
		Certificate: func(netip.AddrPort) (*tls.Certificate, error) { return pd.cert(), nil },
		Bundles:     pd.p.bundle,
		Authorize:   pd.authorizeTunnel,
		Dial: func(ctx context.Context, r hbone.Request) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			up, err := pd.dialApp(ctx, r.Source.Addr(), r.Dest)
			if err != nil {
				return nil, err
			}
			c := Conn{Principal: r.Caller.String(), Source: r.Source, Dest: r.Dest}
			return &trackedConn{Conn: up, untrack: pd.active.track("hbone", c, up)}, nil
		},
		Now:      pd.p.cfg.Clock.Now,
		Log:      pd.p.cfg.Log,
		OnTunnel: func(_ hbone.Request, toWorkload, fromWorkload int64) { pd.p.metrics.spliced(fromWorkload, toWorkload) },
	})
	if err != nil {
		return err
	}
	out, err := pd.ns.listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(PortOutbound)))
	if err != nil {
		return err
	}
	pd.listeners = append(pd.listeners, out)
	in, err := pd.ns.listen(":" + strconv.Itoa(PortInbound))
	if err != nil {
		return err
	}
	pd.listeners = append(pd.listeners, in)
	hb, err := pd.ns.listen(":" + strconv.Itoa(PortHBONE))
	if err != nil {
		return err
	}
	pd.listeners = append(pd.listeners, hb)
	warn := func(msg string, args ...any) { pd.p.cfg.Log.Warn(msg, append(args, "name", pd.w.Name)...) }
	if err := installCapture(pd.ns.path, warn); err != nil {
		return err
	}
	pd.captured = true
	pd.serve(out, pd.outbound)
	pd.serve(in, pd.inboundPlaintext)
	pd.p.wg.Add(1)
	go func() {
		defer pd.p.wg.Done()
		if err := pd.server.Serve(pd.ctx, hb); err != nil {
			pd.p.cfg.Log.Warn("hbone server stopped", "name", pd.w.Name, "error", err)
		}
	}()
	return nil
}

// serve accepts on l and handles each connection on its own goroutine.
func (pd *pod) serve(l net.Listener, handle func(net.Conn)) {
	pd.p.wg.Add(1)
	go func() {
		defer pd.p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			pd.conns.Add(1)
			go func() {
				defer pd.conns.Done()
				handle(c)
			}()
		}
	}()
}

// stop closes the listeners and the tunnels. With removeRules (the
// workload left the mesh or this node) it first removes the redirect
// rules, so the workload's traffic flows directly again; without (the
// proxy is stopping) the rules stay and the workload's TCP is refused
// until a proxy serves it again: fail closed, never around mTLS.
func (pd *pod) stop(log *slog.Logger, removeRules bool) {
	pd.stopOnce.Do(func() {
		if pd.captured && removeRules {
			if err := removeCapture(pd.ns.path); err != nil {
				log.Error("capture rules left behind", "name", pd.w.Name, "error", err)
			}
		}
		if pd.cancel != nil {
			pd.cancel()
		}
		for _, l := range pd.listeners {
			l.Close()
		}
		if pd.server != nil {
			pd.server.Close()
		}
		if pd.client != nil {
			pd.client.Close()
		}
		close(pd.done)
	})
}

// outbound carries one captured outgoing connection: over HBONE with this
// workload's identity when the destination is an ambient workload, else
// in plaintext as Istio passes through traffic to non-mesh destinations.
func (pd *pod) outbound(c net.Conn) {
	defer c.Close()
	dst, err := originalDst(c)
	if err != nil {
		pd.p.cfg.Log.Warn("outbound without original destination", "name", pd.w.Name, "error", err)
		return
	}
	if dst.Addr().IsLoopback() || (dst.Addr() == pd.ip && proxyPort(dst.Port())) {
		// Only a direct connection to the proxy's own listener has such an
		// original destination; following it would loop.
		pd.p.cfg.Log.Warn("outbound to the proxy itself refused", "name", pd.w.Name, "dest", dst.String())
		return
	}
	rt, ok := pd.p.state.Load().reg.resolve(dst)
	if !ok {
		pd.p.cfg.Log.Info("outbound: no endpoint", "name", pd.w.Name, "dest", dst.String())
		return
	}
	up, transport, err := pd.dialRoute(rt)
	pd.p.metrics.outbound(transport, err)
	if err != nil {
		pd.p.cfg.Log.Info("outbound refused", "name", pd.w.Name, "dest", rt.target.String(), "error", err)
		return
	}
	defer up.Close()
	defer context.AfterFunc(pd.ctx, func() { c.Close(); up.Close() })()
	pd.p.metrics.spliced(splice(c, up))
}

// dialTimeout bounds connecting to a destination (HBONE handshake and
// CONNECT included).
const dialTimeout = 10 * time.Second

func (pd *pod) dialRoute(rt route) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(pd.ctx, dialTimeout)
	defer cancel()
	if rt.dest == nil || !Ambient(rt.dest) {
		c, err := pd.ns.dial(ctx, rt.target.String(), Mark)
		return c, "plaintext", err
	}
	server, err := rt.dest.Identity(pd.p.cfg.TrustDomain.Name()).SPIFFEID()
	if err != nil {
		return nil, "hbone", err
	}
	c, err := pd.client.Dial(ctx, hbone.Target{
		Peer:     netip.AddrPortFrom(rt.target.Addr(), PortHBONE),
		Dest:     rt.target,
		Source:   pd.cert(),
		ServerID: server,
	})
	return c, "hbone", err
}

// authorizeTunnel judges an HBONE tunnel: it must be for this workload,
// and the workload's policy must allow the caller.
func (pd *pod) authorizeTunnel(ctx context.Context, r hbone.Request) error {
	if r.Dest.Addr() != pd.ip {
		return fmt.Errorf("tunnel to %s arrived at workload %s", r.Dest, pd.ip)
	}
	if proxyPort(r.Dest.Port()) {
		return fmt.Errorf("tunnel to the proxy's own port %s", r.Dest)
	}
	return pd.judge(ctx, "hbone", Conn{Principal: r.Caller.String(), Source: r.Source, Dest: r.Dest})
}

// inboundPlaintext handles a caller outside the mesh, redirected to 15006.
func (pd *pod) inboundPlaintext(c net.Conn) {
	defer c.Close()
	dst, err := originalDst(c)
	if err != nil || dst.Addr() != pd.ip || proxyPort(dst.Port()) {
		pd.p.cfg.Log.Warn("inbound plaintext: bad original destination", "name", pd.w.Name, "dest", dst.String(), "error", err)
		return
	}
	src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	conn := Conn{Source: src, Dest: dst}
	if err := pd.judge(pd.ctx, "plaintext", conn); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(pd.ctx, dialTimeout)
	up, err := pd.dialApp(ctx, src.Addr(), dst)
	cancel()
	if err != nil {
		return
	}
	up = &trackedConn{Conn: up, untrack: pd.active.track("plaintext", conn, up)}
	defer up.Close()
	defer context.AfterFunc(pd.ctx, func() { c.Close(); up.Close() })()
	received, sent := splice(c, up)
	pd.p.metrics.spliced(sent, received)
}

// dialApp connects to the application at dst from the caller's address
// src (IP_TRANSPARENT), so the application sees who called, as with
// ztunnel. Policy has already allowed the connection. If the kernel
// refuses IP_TRANSPARENT the proxy connects from the pod's own address
// instead, warns once per pod and counts every such connection.
func (pd *pod) dialApp(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	src = src.Unmap()
	if src.Is4() && !src.IsLoopback() && !src.IsUnspecified() && !pd.opaque.Load() {
		c, err := pd.ns.dialFrom(ctx, src, dst.String())
		var te *transparentError
		if !errors.As(err, &te) {
			return c, err
		}
		if pd.opaque.CompareAndSwap(false, true) {
			pd.p.cfg.Log.Warn("cannot preserve the caller's address: the application sees the pod's own address as the source of proxied connections",
				"namespace", pd.w.Namespace, "name", pd.w.Name, "error", err)
		}
	}
	if pd.opaque.Load() {
		pd.p.metrics.sourceLost(pd.w.Source)
	}
	return pd.ns.dial(ctx, dst.String(), Mark)
}

// proxyPort reports whether port is one the proxy listens on in the pod:
// a connection addressed to it there would loop back into the proxy.
func proxyPort(port uint16) bool {
	return port == PortOutbound || port == PortInbound || port == PortHBONE
}

// errDenied refuses a connection; the reason is in the decision log.
var errDenied = errors.New("denied by policy")

func (pd *pod) judge(ctx context.Context, transport string, c Conn) error {
	v := pd.verdict(ctx, c)
	pd.p.decided(Decision{Workload: pd.w.Source, Transport: transport, Conn: c, Verdict: v})
	if !v.Allowed {
		return errDenied
	}
	return nil
}

// verdict is the current policy's decision on c to this workload.
func (pd *pod) verdict(ctx context.Context, c Conn) Verdict {
	return pd.p.state.Load().policy.Decide(ctx, Workload{Namespace: pd.w.Namespace, Labels: *pd.labels.Load()}, c)
}

// splice copies both ways, passing each side's EOF on as a half-close,
// and returns when both directions are done.
func splice(a, b net.Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		aToB = copyBuffered(b, a)
		closeWrite(b)
	}()
	bToA = copyBuffered(a, b)
	closeWrite(a)
	wg.Wait()
	return aToB, bToA
}

// copyBuffered copies with hbone.Copy's adaptive buffer: small while a
// connection is idle or chatty, large during bulk transfer (fewer
// hand-offs to the HTTP/2 writer and fewer frames).
func copyBuffered(dst io.Writer, src io.Reader) int64 {
	n, _ := hbone.Copy(dst, src)
	return n
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
