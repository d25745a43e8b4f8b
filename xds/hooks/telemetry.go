package hooks

import (
	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/telemetry"
	"github.com/wardmesh/ward/xds/translate"
)

// mode maps a listener direction to the Telemetry side: outbound
// listeners are the client, inbound listeners and gateways the server
// (as in Istio).
func mode(dir translate.Direction) telemetry.Mode {
	if dir == translate.Outbound {
		return telemetry.Client
	}
	return telemetry.Server
}

// accessLogs applies the Telemetry API to every HTTP connection manager
// and tcp_proxy of sidecars and gateways. Providers it cannot honour are
// logged (at debug: this runs per listener) and left out; telemetry never
// fails a listener.
func (c Config) accessLogs(s *mesh.Snapshot, p *mesh.Proxy, dir translate.Direction, tcp bool) []*accesslog.AccessLog {
	proto := telemetry.HTTP
	if tcp {
		proto = telemetry.TCP
	}
	out, findings := c.telemetry().AccessLogs(s, p, mode(dir), proto)
	for _, f := range findings {
		c.Log.Debug("telemetry finding", "proxy", p.ID, "direction", string(dir), "finding", f.String())
	}
	return out
}

// telemetry is the Telemetry translator: the wardAls provider streams to
// Ward's Access Log Service through the ext_authz target's cluster when
// that target is Ward's secure port (mTLS, Ward's identity pinned, h2).
func (c Config) telemetry() telemetry.Translator {
	if t := c.ExtAuthz; t != nil && t.TLS {
		return telemetry.Translator{WardCluster: t.ClusterName()}
	}
	return telemetry.Translator{}
}

func (c Config) tracing(s *mesh.Snapshot, p *mesh.Proxy, dir translate.Direction) *hcmv3.HttpConnectionManager_Tracing {
	out, findings := telemetry.HTTPTracing(s, p, mode(dir))
	for _, f := range findings {
		c.Log.Debug("telemetry finding", "proxy", p.ID, "direction", string(dir), "finding", f.String())
	}
	return out
}
