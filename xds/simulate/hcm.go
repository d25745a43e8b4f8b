package simulate

import (
	"net/netip"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// stream is one HTTP request inside the HCM.
type stream struct {
	cfg *hcm.HttpConnectionManager
	a   *attrs
	rc  *route.RouteConfiguration
	vh  *route.VirtualHost
	rt  *route.Route
	rr  routeRequest
}

// runHCM runs the HTTP connection manager: codec, path normalisation,
// route resolution, HTTP filters in order, router.
func (s *Simulator) runHCM(cfg *hcm.HttpConnectionManager, a *attrs, res *Result) {
	req := a.req
	if req.Protocol == TCP {
		res.finish(Rejected, 0, "http_codec_error")
		return
	}
	if codecRejects(cfg.GetCodecType(), req.Protocol) {
		res.tracef("HCM codec %s cannot parse %s", cfg.GetCodecType(), req.Protocol)
		res.finish(Rejected, 0, "http_codec_error")
		return
	}
	st := &stream{cfg: cfg, a: a}
	if !st.prepare(res) {
		return
	}
	if !s.resolveRoute(st, res) {
		return
	}
	for _, f := range cfg.GetHttpFilters() {
		if !s.runHTTPFilter(f, st, res) {
			return
		}
	}
	res.finish(NoRoute, 404, "no_router_filter")
}

// prepare builds the header map and normalises the path; false means the
// request was rejected or redirected.
func (st *stream) prepare(res *Result) bool {
	req := st.a.req
	method := req.Method
	if method == "" {
		method = "GET"
		if req.Protocol == GRPC {
			method = "POST"
		}
	}
	path, action := NormalizePath(orDefault(req.Path, "/"), method, pathOptions(st.cfg))
	res.Path = path
	switch action {
	case PathReject:
		res.tracef("HCM rejects path %q", req.Path)
		res.finish(Rejected, 400, "invalid_path")
		return false
	case PathRedirect:
		res.Location = path
		if req.Protocol == GRPC {
			res.finish(Rejected, 200, "grpc_escaped_slash_redirect_rejected")
			return false
		}
		res.finish(Redirected, 307, "escaped_slash_redirect")
		return false
	}
	res.tracef("HCM path %q → %q", req.Path, path)
	st.a.http, st.a.path = true, path
	st.a.headers = requestHeaders(req, method, path, st.cfg, st.a.ssl)
	st.rr = routeRequest{path: path, headers: st.a.headers}
	st.remoteAddress(res)
	return true
}

// remoteAddress derives remote_ip from X-Forwarded-For as the HCM does:
// with use_remote_address the connection address stays unless
// xff_num_trusted_hops trusts XFF entries; without it the last entry
// (skipping trusted hops) is the client. Request.RemoteIP overrides.
func (st *stream) remoteAddress(res *Result) {
	xff := st.a.headers["x-forwarded-for"]
	if st.a.req.RemoteIP != "" || xff == "" {
		return
	}
	parts := strings.Split(xff, ",")
	hops := int(st.cfg.GetXffNumTrustedHops())
	i := len(parts) - 1 - hops
	if st.cfg.GetUseRemoteAddress().GetValue() {
		if hops == 0 {
			return
		}
		i = len(parts) - hops
	}
	if i < 0 || i >= len(parts) {
		return
	}
	if ip, err := netip.ParseAddr(strings.TrimSpace(parts[i])); err == nil {
		st.a.remoteIP = ip
		res.tracef("remote address %s from x-forwarded-for", ip)
	}
}

// codecRejects: an HCM fixed to one HTTP version cannot parse the other.
func codecRejects(c hcm.HttpConnectionManager_CodecType, p Protocol) bool {
	switch c {
	case hcm.HttpConnectionManager_HTTP1:
		return p != HTTP1
	case hcm.HttpConnectionManager_HTTP2:
		return p == HTTP1
	}
	return false
}

func pathOptions(cfg *hcm.HttpConnectionManager) PathOptions {
	return PathOptions{
		Normalize:      cfg.GetNormalizePath().GetValue(),
		MergeSlashes:   cfg.GetMergeSlashes(),
		EscapedSlashes: cfg.GetPathWithEscapedSlashesAction(),
	}
}

// requestHeaders is the request's header map as filters see it.
func requestHeaders(req *Request, method, path string, cfg *hcm.HttpConnectionManager, ssl bool) map[string]string {
	h := map[string]string{}
	for k, v := range req.Headers {
		h[strings.ToLower(k)] = v
	}
	scheme := "http"
	if ssl {
		scheme = "https"
	}
	host := req.Host
	if cfg.GetStripAnyHostPort() || (cfg.GetStripMatchingHostPort() && strings.HasSuffix(host, ":"+strconv.FormatUint(uint64(req.DstPort), 10))) {
		host = stripPort(host)
	}
	h[":method"], h[":path"], h[":authority"], h[":scheme"] = method, path, host, scheme
	if req.Protocol == GRPC && h["content-type"] == "" {
		h["content-type"] = "application/grpc"
	}
	return h
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// resolveRoute finds the route configuration, virtual host and route;
// their absence is reported by the router (filters run first).
func (s *Simulator) resolveRoute(st *stream, res *Result) bool {
	switch rs := st.cfg.GetRouteSpecifier().(type) {
	case *hcm.HttpConnectionManager_RouteConfig:
		st.rc = rs.RouteConfig
	case *hcm.HttpConnectionManager_Rds:
		st.rc = s.routes[rs.Rds.GetRouteConfigName()]
		if st.rc == nil {
			res.tracef("RDS %q is not served: Envoy waits for it", rs.Rds.GetRouteConfigName())
			res.finish(NoRoute, 404, "route_config_missing")
			return false
		}
	}
	res.RouteConfig = st.rc.GetName()
	st.vh = selectVirtualHost(st.rc, st.a.headers[":authority"])
	if st.vh != nil {
		res.VirtualHost = st.vh.GetName()
		st.rt = selectRoute(st.vh, st.rr)
	}
	if st.rt != nil {
		res.Route, res.RouteEntry = st.rt.GetName(), st.rt
	}
	res.tracef("route config %s: virtual host %q, route %q", st.rc.GetName(), res.VirtualHost, res.Route)
	return true
}

// router applies the route, or answers 404.
func (s *Simulator) router(st *stream, res *Result) {
	switch {
	case st.vh == nil:
		res.finish(NoRoute, 404, "no_virtual_host")
	case st.vh.GetRequireTls() == route.VirtualHost_ALL && !st.a.ssl:
		res.Location = "https://" + st.a.headers[":authority"] + st.rr.path
		res.finish(Redirected, 301, "require_tls")
	case st.rt == nil:
		res.finish(NoRoute, 404, "no_route")
	default:
		s.applyRoute(st.rt, st.rr, res)
	}
}
