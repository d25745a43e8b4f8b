package hygiene

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/wardmesh/ward"

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Deps       []string
}

// listPackages runs `go list -json -deps=false` over the module.
func listPackages(t *testing.T, withDeps bool) []pkg {
	t.Helper()
	args := []string{"list", "-json=ImportPath,Dir,GoFiles,Deps", module + "/..."}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestPackageDocs fails when a package has no "// Package x" doc comment or
// more than one.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t, false) {
		n := 0
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if af.Doc != nil && strings.HasPrefix(af.Doc.Text(), "Package "+af.Name.Name) ||
				af.Doc != nil && af.Name.Name == "main" && strings.HasPrefix(af.Doc.Text(), "Command ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: has %d package doc comments, want exactly 1 (a doc.go with \"// Package ...\")", p.ImportPath, n)
		}
	}
}

// rule forbids a package (and anything under it) from depending on imports
// with the given prefixes.
type rule struct {
	pkg    string
	forbid []string
	why    string
}

var (
	// A trailing "$" forbids the package itself but not its subpackages.
	wardServers = []string{module + "/xds$", module + "/ca", module + "/sds", module + "/agent", module + "/kube",
		module + "/webhook", module + "/audit", module + "/cmd", module + "/mesh/file"}
	ioAndServers = []string{"google.golang.org/grpc", "k8s.io/client-go", "github.com/fsnotify/fsnotify", "net/http"}
)

// translatorForbid keeps translators free of servers, sources and I/O
// machinery. (gRPC itself cannot be forbidden: generated Envoy service stubs,
// whose message types translators use, import it.)
var translatorForbid = append(append([]string{}, wardServers...),
	"k8s.io/client-go", "github.com/fsnotify/fsnotify",
	"github.com/envoyproxy/go-control-plane/pkg/server", "github.com/envoyproxy/go-control-plane/pkg/cache",
	"google.golang.org/grpc/xds")

var rules = []rule{
	{module + "/authn", translatorForbid, "authn is a translator: pure functions of the snapshot"},
	{module + "/authz", translatorForbid, "authz (the compiler and engine) is a translator; its server lives in authz/extauthz"},
	{module + "/xds/translate", append(append([]string{}, translatorForbid...), module+"/authn", module+"/authz"), "xds/translate is pure and knows no policies (they plug in through hooks)"},
	{module + "/xds/hooks", translatorForbid, "xds/hooks assembles translators and stays pure"},
	{module + "/policies", translatorForbid, "policies is an embedded Rego library"},
	{module + "/telemetry", append(append([]string{}, translatorForbid...), module+"/authn", module+"/authz", module+"/xds"),
		"telemetry (the Telemetry API translator) is pure and needs only the model; its access-log server belongs in a subpackage"},
	{module + "/xds/simulate", append(append([]string{}, translatorForbid...), module+"/authn", module+"/authz", module+"/policies", module+"/xds/translate", module+"/xds/hooks", "github.com/open-policy-agent/opa"),
		"xds/simulate judges the assembled Envoy output: it reads Envoy config only, never Ward's translators or policy engines"},
	{module + "/authz/grpcauthz", append(append([]string{"github.com/open-policy-agent/opa", module + "/authz$", module + "/authz/extauthz"}, wardServers...), "k8s.io/client-go"),
		"grpcauthz is linked into applications: it speaks the ext_authz wire protocol and must not pull in OPA, the policy compiler or Ward's servers"},
	{module + "/mesh", append(append([]string{module + "/authn", module + "/authz", module + "/policies", module + "/xds"}, wardServers...), ioAndServers...),
		"mesh is the model: it imports no translator, server, gRPC, client-go, HTTP or file watching"},
	{module + "/cmd/ward-agent", []string{"github.com/open-policy-agent", "k8s.io", "sigs.k8s.io", "istio.io/client-go", "istio.io/api/networking",
		"github.com/envoyproxy/go-control-plane/pkg/server", "github.com/envoyproxy/go-control-plane/pkg/cache",
		"github.com/envoyproxy/go-control-plane/envoy/config/cluster", "github.com/envoyproxy/go-control-plane/envoy/config/listener",
		"github.com/envoyproxy/go-control-plane/envoy/config/route", "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap",
		module + "/mesh$", module + "/mesh/file", module + "/ca$", module + "/xds", module + "/authn", module + "/authz", module + "/policies",
		module + "/kube", module + "/webhook", module + "/audit", module + "/cmd/ward"},
		"ward-agent runs beside every workload (target ≤ 20 MB RSS): every package it links is paged in at start, so it links only the agent, SDS, the CA client and identities"},
	{module + "/mesh/schema", append(append([]string{module + "/authn", module + "/authz", module + "/xds"}, wardServers...), ioAndServers...),
		"schema is pure decoding and validation"},
	{module + "/node", []string{module + "/xds", module + "/kube", module + "/webhook", module + "/sds", module + "/agent", module + "/audit", module + "/cmd", module + "/mesh/file", "k8s.io/client-go"},
		"the node proxy runs on every node: it takes policy from authn/authz and identity from ca, never the control plane's servers or sources"},
	{module + "/redirect", []string{module, "google.golang.org/grpc", "k8s.io", "net/http"},
		"redirect is the pod's init container (ward redirect) and a candidate for node capture: nf_tables over netlink, nothing of Ward's"},
	{module + "/cmd/ward", []string{module + "/release/image/oci", module + "/release/cmd", "github.com/google/go-containerregistry"},
		"the image builder and registry client build ward; ward never links them (it may read images.json with release/image)"},
	{module + "/cmd/ward-agent", []string{module + "/release", "github.com/google/go-containerregistry"},
		"the release tooling builds ward-agent; ward-agent never links it"},
	{module + "/release/image", []string{"github.com/google/go-containerregistry", module + "/release/image/oci"},
		"release/image (specs, SBOM, images.json) is read by ward itself: standard library only; the builder is release/image/oci"},
	{module + "/deploy", append([]string{"helm.sh/", module + "/install", "k8s.io/client-go", "google.golang.org/grpc", "github.com/fsnotify/fsnotify"}, wardServers...),
		"deploy renders the chart: pure, and Helm's engine is a test-only dependency (the ward binary does not link it)"},
	{module + "/install", []string{"helm.sh/", module + "/cmd", module + "/xds", module + "/ca", module + "/webhook", module + "/authz", module + "/authn"},
		"install applies rendered manifests through client-go; it knows nothing of the mesh, and links no Helm"},
	{module + "/cmd/ward", []string{"helm.sh/"}, "Helm renders Ward's chart in tests only; the binary uses package deploy's renderer"},
	{module + "/node/hbone", []string{module + "/mesh", module + "/authn", module + "/authz", module + "/policies", module + "/ca", module + "/node$"},
		"hbone is the tunnel protocol alone: no Ward policy, model or CA"},
}

func TestDependencyDirection(t *testing.T) {
	for _, p := range listPackages(t, true) {
		for _, r := range rules {
			if p.ImportPath != r.pkg {
				continue
			}
			for _, d := range p.Deps {
				for _, f := range r.forbid {
					exact, ok := strings.CutSuffix(f, "$")
					if d == exact || (!ok && strings.HasPrefix(d, f+"/")) {
						t.Errorf("%s imports %s: %s", p.ImportPath, d, r.why)
					}
				}
			}
		}
	}
}
