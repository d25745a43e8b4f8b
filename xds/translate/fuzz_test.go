package translate_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// randomMesh builds a random but valid mesh: services (HTTP, gRPC, TCP,
// TLS ports; STATIC, DNS, NONE), workloads, DestinationRules with random
// policies and subsets, VirtualServices with random matches and actions,
// a Sidecar and a Gateway.
func randomMesh(r *rand.Rand) []*mesh.Config {
	var out []*mesh.Config
	nss := []string{"a", "b", "istio-system"}
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	protos := []string{"HTTP", "GRPC", "TCP", "TLS", "HTTP2", ""}
	resolutions := []networking.ServiceEntry_Resolution{networking.ServiceEntry_STATIC, networking.ServiceEntry_DNS, networking.ServiceEntry_NONE, networking.ServiceEntry_DNS_ROUND_ROBIN}
	nsvc := 1 + r.IntN(6)
	var hosts []string
	for i := range nsvc {
		ns := pick(nss)
		host := fmt.Sprintf("s%d.%s.svc.cluster.local", i, ns)
		hosts = append(hosts, host)
		var ports []*networking.ServicePort
		for j := range 1 + r.IntN(3) {
			ports = append(ports, &networking.ServicePort{Number: uint32(80 + 10*j + r.IntN(3)), Name: fmt.Sprintf("p%d", j), Protocol: pick(protos)})
		}
		se := &networking.ServiceEntry{Hosts: []string{host}, Ports: ports, Resolution: resolutions[r.IntN(len(resolutions))],
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": fmt.Sprint("s", i)}}}
		if r.IntN(3) == 0 {
			se.Addresses = []string{fmt.Sprintf("240.0.0.%d", i+1)}
		}
		if r.IntN(4) == 0 {
			se.ExportTo = []string{"."}
		}
		out = append(out, cfg(mesh.KindServiceEntry, ns, fmt.Sprint("s", i), se))
		for k := range r.IntN(4) {
			out = append(out, cfg(mesh.KindWorkloadEntry, ns, fmt.Sprintf("s%d-%d", i, k), &networking.WorkloadEntry{
				Address: fmt.Sprintf("10.%d.0.%d", i, k+1), Labels: map[string]string{"app": fmt.Sprint("s", i), "version": pick([]string{"v1", "v2"})},
				Locality: pick([]string{"", "r1/z1", "r1/z2/s"}), Weight: uint32(r.IntN(5)), ServiceAccount: pick([]string{"", "sa"}),
			}))
		}
		if r.IntN(2) == 0 {
			out = append(out, cfg(mesh.KindDestinationRule, ns, fmt.Sprint("s", i), randomDR(r, host)))
		}
		if r.IntN(2) == 0 {
			out = append(out, cfg(mesh.KindVirtualService, ns, fmt.Sprint("s", i), randomVS(r, host, hosts)))
		}
	}
	if r.IntN(2) == 0 {
		out = append(out, cfg(mesh.KindSidecar, "a", "default", &networking.Sidecar{
			Egress:                []*networking.IstioEgressListener{{Hosts: []string{pick([]string{"./*", "*/*", "b/*", "istio-system/*"})}}},
			OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_Mode(r.IntN(2))},
		}))
	}
	out = append(out, cfg(mesh.KindGateway, "istio-system", "gw", &networking.Gateway{
		Selector: map[string]string{"istio": "gw"},
		Servers: []*networking.Server{
			{Port: &networking.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}},
			{Port: &networking.Port{Number: 443, Name: "https", Protocol: "HTTPS"}, Hosts: []string{"*.example.com"}, Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, CredentialName: "c"}},
		},
	}))
	return out
}

func cfg(k mesh.Kind, ns, name string, spec proto.Message) *mesh.Config {
	return &mesh.Config{Meta: mesh.Meta{Kind: k, Namespace: ns, Name: name, CreationTimestamp: time.Unix(int64(len(name)), 0)}, Spec: spec}
}

func randomDR(r *rand.Rand, host string) *networking.DestinationRule {
	tp := &networking.TrafficPolicy{}
	switch r.IntN(4) {
	case 0:
		tp.LoadBalancer = &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_SimpleLB(r.IntN(6))}}
	case 1:
		tp.LoadBalancer = &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{
			HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true},
		}}}
	}
	if r.IntN(2) == 0 {
		tp.ConnectionPool = &networking.ConnectionPoolSettings{
			Tcp:  &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: int32(r.IntN(100)), ConnectTimeout: durationpb.New(time.Second)},
			Http: &networking.ConnectionPoolSettings_HTTPSettings{Http2MaxRequests: int32(r.IntN(100)), MaxRequestsPerConnection: int32(r.IntN(3))},
		}
	}
	if r.IntN(2) == 0 {
		tp.OutlierDetection = &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(uint32(r.IntN(10))), Interval: durationpb.New(time.Second), MaxEjectionPercent: int32(r.IntN(101))}
	}
	if r.IntN(3) == 0 {
		tp.Tls = &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL}
	}
	return &networking.DestinationRule{Host: host, TrafficPolicy: tp, Subsets: []*networking.Subset{
		{Name: "v1", Labels: map[string]string{"version": "v1"}},
		{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_ROUND_ROBIN}}}},
	}}
}

func randomVS(r *rand.Rand, host string, hosts []string) *networking.VirtualService {
	dest := func() *networking.Destination {
		return &networking.Destination{Host: hosts[r.IntN(len(hosts))], Subset: []string{"", "v1", "v2"}[r.IntN(3)]}
	}
	var routes []*networking.HTTPRoute
	for range 1 + r.IntN(4) {
		hr := &networking.HTTPRoute{}
		if r.IntN(2) == 0 {
			hr.Match = []*networking.HTTPMatchRequest{{
				Uri:     &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/p"}},
				Headers: map[string]*networking.StringMatch{"x-h": {MatchType: &networking.StringMatch_Exact{Exact: "v"}}},
			}}
		}
		switch r.IntN(5) {
		case 0:
			hr.Redirect = &networking.HTTPRedirect{Uri: "/r"}
		case 1:
			hr.DirectResponse = &networking.HTTPDirectResponse{Status: 200 + uint32(r.IntN(300))}
		default:
			w := int32(r.IntN(101))
			hr.Route = []*networking.HTTPRouteDestination{{Destination: dest(), Weight: w}, {Destination: dest(), Weight: 100 - w}}
			if r.IntN(2) == 0 {
				hr.Timeout = durationpb.New(time.Duration(1+r.IntN(5000)) * time.Millisecond)
			}
			if r.IntN(2) == 0 {
				hr.Retries = &networking.HTTPRetry{Attempts: int32(r.IntN(4)), RetryOn: "5xx,503"}
			}
			if r.IntN(2) == 0 {
				hr.Fault = &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
					ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 503}, Percentage: &networking.Percent{Value: r.Float64() * 100},
				}}
			}
			if r.IntN(3) == 0 {
				hr.Mirror, hr.MirrorPercentage = dest(), &networking.Percent{Value: r.Float64() * 100}
			}
		}
		routes = append(routes, hr)
	}
	vs := &networking.VirtualService{Hosts: []string{host}, Http: routes}
	if r.IntN(3) == 0 {
		w := int32(r.IntN(101))
		vs.Tcp = []*networking.TCPRoute{{Route: []*networking.RouteDestination{{Destination: dest(), Weight: w}, {Destination: dest(), Weight: 100 - w}}}}
	}
	if r.IntN(2) == 0 {
		vs.Gateways = []string{"mesh", "istio-system/gw"}
	}
	return vs
}

var fuzzProxies = []mesh.Proxy{
	{ID: "sidecar~10.0.0.1~s0-0.a~a.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "a", IPs: []string{"10.0.0.1"}, Labels: mesh.Labels{"app": "s0", "version": "v1"}},
	{ID: "grpc~10.1.0.1~c.b~b.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "b", IPs: []string{"10.1.0.1"}, Labels: mesh.Labels{"app": "s1"}},
	{ID: "router~10.9.0.1~gw.istio-system~istio-system.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "istio-system", Labels: mesh.Labels{"istio": "gw"}},
}

func FuzzGenerate(f *testing.F) {
	for i := range 20 {
		f.Add(uint64(i), uint64(i*7919))
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		snap := mesh.NewSnapshot(mesh.MeshConfig{}, randomMesh(rand.New(rand.NewPCG(a, b))))
		ix := translate.NewIndex(snap)
		for _, p := range fuzzProxies {
			res := translate.Generate(ix, ix.Scope(&p), translate.Hooks{})
			if err := res.Validate(); err != nil {
				t.Fatalf("%s: %v", p.Type, err)
			}
			_ = res.Dangling()
		}
	})
}
