package analyze

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
)

// base is a small mesh: a root namespace, one HTTP service with one
// enrolled workload, a gateway with its workload.
const base = `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: cluster.local, rootNamespace: istio-system}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec:
  hosts: ["web.app.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9000, name: tcp-db, protocol: TCP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec: {address: 127.0.0.2, serviceAccount: web, labels: {app: web, version: v1, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*/web.example.com"]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw-1, namespace: istio-system}
spec: {address: 127.0.0.3, serviceAccount: gw, labels: {istio: ingressgateway, security.istio.io/tlsMode: istio}}
`

type fakeKeys struct {
	have    bool
	lastErr string
}

func (k fakeKeys) JWKS(string, string) (string, bool) {
	return `{"keys":[]}`, k.have
}
func (k fakeKeys) LastError(string, string) string { return k.lastErr }

const ra = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules: [{issuer: "https://idp", jwksUri: "https://idp/jwks"}]
`

// grpcWorkload is a proxyless gRPC workload (Istio's grpc-agent template)
// serving rev.app on 9080.
const grpcWorkload = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rev, namespace: app}
spec:
  hosts: ["rev.app.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: rev}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: rev-1, namespace: app, annotations: {inject.istio.io/templates: grpc-agent}}
spec: {address: 127.0.0.4, serviceAccount: rev, labels: {app: rev, security.istio.io/tlsMode: istio}}
`

// mixedService has one endpoint with a mesh identity and one without.
const mixedService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mixed, namespace: app}
spec:
  hosts: ["mixed.app.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: mixed}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mixed-1, namespace: app}
spec: {address: 127.0.0.5, labels: {app: mixed, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mixed-2, namespace: app}
spec: {address: 127.0.0.6, labels: {app: mixed}}
`

const strictApp = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: app}
spec: {mtls: {mode: STRICT}}
`

func TestCodes(t *testing.T) {
	cases := []struct {
		code Code
		yaml string
		keys interface {
			JWKS(string, string) (string, bool)
		}
		extra   func(*Input)
		objects []*mesh.Config
		obj     string
		msg     string // a part of the message, when set
		// mesh replaces the base MeshConfig spec when set.
		mesh string
	}{
		{code: ConfigRejected, extra: func(in *Input) { in.Rejected = []string{"AuthorizationPolicy app/x: spec.action: invalid"} }, obj: "config"},
		{code: DocumentIgnored, extra: func(in *Input) { in.Ignored = []string{"x.yaml: v1/ConfigMap cm"} }, obj: "config"},
		{code: ConfigWarning, obj: "VirtualService app/vs", msg: "add up to 90", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: app}
spec:
  hosts: ["web.app.svc.cluster.local"]
  http: [{route: [{destination: {host: web.app.svc.cluster.local}, weight: 40}, {destination: {host: web.app.svc.cluster.local}, weight: 50}]}]
`},
		{code: StricterThanIstio, obj: "PeerAuthentication app/pa", msg: "this PeerAuthentication is enforced", yaml: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: pa, namespace: app, annotations: {istio.io/dry-run: "true"}}
spec: {mtls: {mode: STRICT}}
`},
		{code: NotImplemented, obj: "DestinationRule app/dr", msg: "failurePercentageThreshold", yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: app}
spec:
  host: web.app.svc.cluster.local
  trafficPolicy: {outlierDetection: {failurePercentageThreshold: 50}}
`},
		{code: MethodTypo, obj: "AuthorizationPolicy app/typo", msg: `method "GIT" looks like a typo of GET`, yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: typo, namespace: app}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: ["PURGE", "GIT"], ports: ["8080"]}}]}]
`},
		{code: HostNotFound, obj: "VirtualService app/vs", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: app}
spec:
  hosts: ["web.app.svc.cluster.local"]
  http: [{route: [{destination: {host: nosuch}}]}]
`},
		{code: SubsetNotFound, obj: "VirtualService app/vs", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: app}
spec:
  hosts: ["web.app.svc.cluster.local"]
  http: [{route: [{destination: {host: web, subset: v9}}]}]
`},
		{code: ClaimRoutingNoRA, obj: "VirtualService app/vs", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: app}
spec:
  hosts: ["web.example.com"]
  gateways: ["istio-system/gw"]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route: [{destination: {host: web.app.svc.cluster.local}}]
`},
		{code: DRTLSWithoutSAN, obj: "DestinationRule app/dr", yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: app}
spec:
  host: web.app.svc.cluster.local
  trafficPolicy: {tls: {mode: SIMPLE}}
`},
		{code: GatewayNotFound, obj: "VirtualService app/vs", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: app}
spec:
  hosts: ["web.example.com"]
  gateways: ["istio-system/nosuch"]
  http: [{route: [{destination: {host: web.app.svc.cluster.local}}]}]
`},
		{code: ConflictingVSHosts, obj: "VirtualService app/vs2", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs1, namespace: app, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  hosts: ["web.app.svc.cluster.local"]
  http: [{route: [{destination: {host: web}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs2, namespace: app, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  hosts: ["web"]
  http: [{route: [{destination: {host: web}}]}]
`},
		{code: SubsetNoWorkload, obj: "DestinationRule app/dr", yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: app}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`},
		{code: LocalityNoEffect, obj: "DestinationRule app/dr", yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: app}
spec:
  host: web
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: eu-west}]
`},
		{code: SelectorNoMatch, obj: "AuthorizationPolicy app/ap", yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: app}
spec:
  selector: {matchLabels: {app: nosuch}}
  action: DENY
  rules: [{from: [{source: {namespaces: ["evil"]}}]}]
`},
		{code: AuthzInvalid, obj: "AuthorizationPolicy app/ap", yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: app}
spec:
  action: CUSTOM
  provider: {name: nosuch}
  rules: [{to: [{operation: {paths: ["/x"]}}]}]
`},
		{code: AuthzHTTPOnTCP, obj: "AuthorizationPolicy app/ap", yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
`},
		{code: PeerShadowed, obj: "PeerAuthentication app/b", yaml: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, namespace: app, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, namespace: app, creationTimestamp: "2026-02-01T00:00:00Z"}
spec: {mtls: {mode: PERMISSIVE}}
`},
		{code: PeerRootSelector, obj: "PeerAuthentication istio-system/sel", yaml: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: sel, namespace: istio-system}
spec: {selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}
`},
		// The file source rejects these two (WA0001); other sources or
		// older objects may still carry them, so build them directly.
		{code: PeerPortLevel, obj: "PeerAuthentication app/pl", objects: []*mesh.Config{{
			Meta: mesh.Meta{Kind: mesh.KindPeerAuthentication, Namespace: "app", Name: "pl"},
			Spec: &security.PeerAuthentication{Mtls: &security.PeerAuthentication_MutualTLS{Mode: security.PeerAuthentication_MutualTLS_STRICT},
				PortLevelMtls: map[uint32]*security.PeerAuthentication_MutualTLS{8080: {Mode: security.PeerAuthentication_MutualTLS_DISABLE}}},
		}}},
		{code: GRPCPermissive, obj: "PeerAuthentication app/perm", msg: "spec.mtls.mode, for proxyless gRPC workload app/rev-1: port 9080 is PERMISSIVE", yaml: grpcWorkload + `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: perm, namespace: app}
spec: {mtls: {mode: PERMISSIVE}}
`},
		{code: GRPCTLSProfile, obj: "PeerAuthentication app/strict", msg: "MeshConfig spec.tlsProfile, for proxyless gRPC workload app/rev-1", yaml: grpcWorkload + "---\n" + strictApp,
			mesh: `spec: {trustDomain: cluster.local, rootNamespace: istio-system, tlsProfile: fips}`},
		{code: MixedIdentity, obj: "ServiceEntry app/mixed", msg: "mixes 1 endpoints with a mesh identity and 1 without", yaml: grpcWorkload + "---\n" + mixedService},
		{code: JWKSUnavailable, obj: "RequestAuthentication app/jwt", yaml: ra, keys: fakeKeys{have: false}},
		{code: JWKSStale, obj: "RequestAuthentication app/jwt", yaml: ra, keys: fakeKeys{have: true, lastErr: "connection refused"}},
		{code: JWKSInvalid, obj: "RequestAuthentication app/jwt", objects: []*mesh.Config{{
			Meta: mesh.Meta{Kind: mesh.KindRequestAuthentication, Namespace: "app", Name: "jwt"},
			Spec: &security.RequestAuthentication{Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "web"}},
				JwtRules: []*security.JWTRule{{Issuer: "https://idp", Jwks: `{"keys": 5}`}}},
		}}},
		{code: JWTOnTCP, obj: "RequestAuthentication app/jwt", yaml: ra, keys: fakeKeys{have: true}},
		{code: TelemetryProvider, obj: "Telemetry app/logs", msg: `spec.accessLogging[0].providers[1]: provider "als": service "als.obs.svc.cluster.local" is not in the service registry`,
			mesh: `spec: {trustDomain: cluster.local, rootNamespace: istio-system, extensionProviders: [{name: als, envoyHttpAls: {service: als.obs.svc.cluster.local, port: 9001}}]}`,
			yaml: `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: app}
spec:
  accessLogging: [{providers: [{name: envoy}, {name: als}]}]
`},
		{code: TargetRefIgnored, obj: "RequestAuthentication app/jwt", yaml: `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: app}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  jwtRules: [{issuer: "https://idp", jwksUri: "https://idp/jwks"}]
`, keys: fakeKeys{have: true}},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.code.ID] = true
		t.Run(tc.code.ID+"-"+tc.code.Name, func(t *testing.T) {
			b := base
			if tc.mesh != "" {
				b = strings.Replace(b, "spec: {trustDomain: cluster.local, rootNamespace: istio-system}", tc.mesh, 1)
			}
			in := load(t, b+"---\n"+tc.yaml, tc.objects...)
			in.Keys = tc.keys
			if tc.extra != nil {
				tc.extra(&in)
			}
			ds := Run(in)
			for _, d := range ds {
				if d.Code == tc.code && d.Object == tc.obj && d.Message != "" && strings.Contains(d.Message, tc.msg) {
					return
				}
			}
			t.Errorf("no %s on %s; got:\n%s", tc.code.ID, tc.obj, dump(ds))
		})
	}
	for _, c := range Codes() {
		if !seen[c.ID] {
			t.Errorf("code %s (%s) has no test case", c.ID, c.Name)
		}
	}
}

// TestCleanBaseHasNoDiagnostics keeps the analyzers quiet on good config.
func TestCleanBaseHasNoDiagnostics(t *testing.T) {
	if ds := Run(load(t, base)); len(ds) != 0 {
		t.Errorf("clean config: %s", dump(ds))
	}
}

func TestCodesAreUnique(t *testing.T) {
	ids, names := map[string]bool{}, map[string]bool{}
	for _, c := range Codes() {
		if ids[c.ID] || names[c.Name] {
			t.Errorf("duplicate code %v", c)
		}
		ids[c.ID], names[c.Name] = true, true
	}
}

func load(t *testing.T, yaml string, extra ...*mesh.Config) Input {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("fixture rejected: %v", res.Errs())
	}
	if len(extra) > 0 {
		return Input{Snapshot: mesh.NewSnapshot(*res.Mesh, append(res.Objects, extra...))}
	}
	return Input{Snapshot: res.Snapshot}
}

func dump(ds []Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  " + d.String() + "\n")
	}
	return b.String()
}

// TestPerProxyFindings: the per-proxy codes follow the proxies given (a
// running control plane's) or, offline, the workloads declared proxyless;
// the mesh default PERMISSIVE is reported on the workload; one problem
// seen by several proxies is reported once.
func TestPerProxyFindings(t *testing.T) {
	in := load(t, base+"---\n"+grpcWorkload)
	ds := Run(in)
	if len(ds) != 1 || ds[0].Code != GRPCPermissive || ds[0].Object != "WorkloadEntry app/rev-1" ||
		!strings.Contains(ds[0].Message, "no PeerAuthentication applies (mesh default PERMISSIVE)") {
		t.Errorf("declared grpc workload under the default mode:\n%s", dump(ds))
	}
	// Envoy sidecars express PERMISSIVE: nothing to report for them.
	in.Proxies = []*mesh.Proxy{{ID: "sidecar~127.0.0.4~rev-1.app~app.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "app", Labels: mesh.Labels{"app": "rev"}, IPs: []string{"127.0.0.4"}}}
	if ds := Run(in); len(ds) != 0 {
		t.Errorf("sidecar proxy:\n%s", dump(ds))
	}
	// A connected proxyless proxy the config does not declare.
	in.Proxies = []*mesh.Proxy{
		{ID: "grpc~127.0.0.2~web-1.app~app.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "app", Labels: mesh.Labels{"app": "web"}, IPs: []string{"127.0.0.2"}},
		{ID: "grpc~127.0.0.4~rev-1.app~app.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "app", Labels: mesh.Labels{"app": "rev"}, IPs: []string{"127.0.0.4"}},
		// Not in the registry (no WorkloadEntry at its IP): named by its id.
		{ID: "grpc~127.0.0.9~x.app~app.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "app", Labels: mesh.Labels{"app": "rev"}, IPs: []string{"127.0.0.9"}},
	}
	ds = Run(in)
	var objs []string
	for _, d := range ds {
		objs = append(objs, d.Object)
	}
	if got := strings.Join(objs, ","); got != "Proxy app/grpc~127.0.0.9~x.app~app.svc.cluster.local,WorkloadEntry app/rev-1,WorkloadEntry app/web-1,WorkloadEntry app/web-1" {
		t.Errorf("connected grpc proxies: objects %s:\n%s", got, dump(ds))
	}
}

// TestPerProxyDedup: two proxyless clients calling one mixed service
// report it once.
func TestPerProxyDedup(t *testing.T) {
	second := strings.NewReplacer("rev-1", "rev-2", "127.0.0.4", "127.0.0.7").Replace(grpcWorkload[strings.Index(grpcWorkload, "---"):])
	ds := Run(load(t, base+"---\n"+grpcWorkload+second+"---\n"+strictApp+"---\n"+mixedService))
	n := 0
	for _, d := range ds {
		if d.Code == MixedIdentity {
			n++
		}
	}
	if n != 1 || len(DeclaredProxies(load(t, base+"---\n"+grpcWorkload+second).Snapshot)) != 2 {
		t.Errorf("want one %s from two clients:\n%s", MixedIdentity.ID, dump(ds))
	}
}
