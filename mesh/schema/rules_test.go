package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func TestPathTemplate(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/exact", true},
		{"/prefix/*", true},
		{"*/suffix", true},
		{"*", true},
		{"/users/{id}", true}, // not a template: no {*} or {**}, matched literally
		{"/{*}", true},
		{"/{**}", true},
		{"/api/{*}/books/{*}", true},
		{"/api/{*}/books/{**}", true},
		{"/{*}/{*}/{**}", true},
		{"/a/{**}/b", true},     // literals may follow {**}, as in Istio's own tests
		{"/{**}/a/{*}", false},  // {**} is not the last operator
		{"/{**}/{**}", false},   // {**} twice
		{"/a{*}", false},        // operator is part of a segment
		{"/{*}.jpg", false},     // suffix in the same segment
		{"/{id}/{*}", false},    // named variable
		{"/{id=*}/{*}", false},  // named variable with pattern
		{"/{}/{*}", false},      // empty braces
		{"/*/{*}", false},       // glob mixed with operator
		{"/{*}/**", false},      // double glob mixed with operator
		{"{*}/a", false},        // must start with /
		{"/api/{*}/x*y", false}, // glob inside a literal segment
		{"/{*}/{**}/", true},    // a trailing slash is a literal
		{"/{*}/users", true},    // literal after operator
		{"/{*}//{*}", true},     // empty segment is Envoy's business, not a template error
	}
	for _, tt := range tests {
		err := PathTemplate(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("PathTemplate(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tt.path) {
			t.Errorf("PathTemplate(%q) error %q does not name the path", tt.path, err)
		}
	}
}

// TestMethodTypo: any method is valid (as in Istio); the ones that look
// like a typo of a standard method are named with the method meant.
func TestMethodTypo(t *testing.T) {
	for m, want := range map[string]string{
		"GET": "", "*": "", "P*": "", "*T": "", "OPTIONS": "", "X*": "",
		"PURGE": "", "PROPFIND": "", "MKCOL": "", "LOCK": "", "COPY": "", "PRI": "",
		"GIT": "GET", "get": "GET", "Post": "POST", "POTS": "POST", "OPTION": "OPTIONS",
		"DELEET": "DELETE", "PACTH": "PATCH", "HAED": "HEAD",
	} {
		if got := MethodTypo(m); got != want {
			t.Errorf("MethodTypo(%q) = %q, want %q", m, got, want)
		}
	}
}

func TestWildcardHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"reviews", true},
		{"reviews.bookinfo.svc.cluster.local", true},
		{"Reviews.Example.COM", true},
		{"*", true},
		{"*.example.com", true},
		{"*foo.example.com", true},
		{"*-foo.example.com", true},
		{"example.com.", true},
		{"", false},
		{"foo.*.com", false},
		{"*.*.com", false},
		{"bad_host.example.com", false},
		{"-foo.example.com", false},
		{"foo-.example.com", false},
		{"foo..com", false},
		{"example.123", false}, // all-numeric TLD
		{"10.0.0.1", false},    // IPs are handled by callers that allow them
		{strings.Repeat("a", 64) + ".com", false},
		{strings.Repeat("a.", 128) + "com", false}, // longer than 255
	}
	for _, tt := range tests {
		if err := WildcardHost(tt.host); (err == nil) != tt.ok {
			t.Errorf("WildcardHost(%q) = %v, want ok=%v", tt.host, err, tt.ok)
		}
	}
}

func TestFQDN(t *testing.T) {
	for host, ok := range map[string]bool{
		"api.example.com": true, "mesh": true, "a-b.c": true,
		"*.example.com": false, "": false, "a_b.com": false, "x.42": false,
	} {
		if err := FQDN(host); (err == nil) != ok {
			t.Errorf("FQDN(%q) = %v, want ok=%v", host, err, ok)
		}
	}
}

func TestNamespacedHost(t *testing.T) {
	tests := []struct {
		host    string
		gateway bool
		ok      bool
	}{
		{"*/*", false, true},
		{"./*", false, true},
		{"~/*", false, true},
		{"istio-system/*.svc.cluster.local", false, true},
		{"prod/reviews.prod.svc.cluster.local", false, true},
		{"reviews.prod.svc.cluster.local", false, false}, // sidecar needs ns/
		{"prod/reviews", false, false},                   // short name
		{"Prod/a.example.com", false, false},             // namespace not a label
		{"/a.example.com", false, false},
		{"prod/", false, false},
		{"prod/foo*.example.com", false, false}, // partial wildcard
		{"~/*", true, false},                    // ~ only for sidecars
		{"a.example.com", true, true},           // gateways accept bare hosts
		{"*", true, true},
		{"10.0.0.1", true, true}, // gateways accept an IP
		{"foo", true, false},     // short name
		{"prod/10.0.0.1", true, true},
		{"prod/10.0.0.1", false, false},
	}
	for _, tt := range tests {
		errs := NamespacedHost(tt.host, tt.gateway)
		if (len(errs) == 0) != tt.ok {
			t.Errorf("NamespacedHost(%q, gateway=%v) = %v, want ok=%v", tt.host, tt.gateway, errs, tt.ok)
		}
	}
}

func TestHostOverlap(t *testing.T) {
	for _, tt := range []struct {
		a, b           string
		match, aSubset bool
	}{
		{"a.com", "a.com", true, true},
		{"a.com", "b.com", false, false},
		{"api.example.com", "*.example.com", true, true},
		{"*.example.com", "api.example.com", true, false},
		{"*.a.example.com", "*.example.com", true, true},
		{"*", "a.com", true, false},
		{"a.com", "*", true, true},
	} {
		if got := hostMatches(tt.a, tt.b); got != tt.match {
			t.Errorf("hostMatches(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.match)
		}
		if got := hostSubsetOf(tt.a, tt.b); got != tt.aSubset {
			t.Errorf("hostSubsetOf(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.aSubset)
		}
	}
}

func TestConditionKeyAndServiceAccount(t *testing.T) {
	for k, ok := range map[string]bool{
		"request.headers[x-user]": true, "request.auth.claims[groups]": true, "source.serviceAccount": true,
		"source.trustDomain": true, "experimental.envoy.filters.a.b[c]": false, "request.headers": false, "request.headers[]": false,
		"source.user": false, "destination.name": false, "": false,
	} {
		if err := ConditionKey(k); (err == nil) != ok {
			t.Errorf("ConditionKey(%q) = %v, want ok=%v", k, err, ok)
		}
	}
	// valid: the shape Istio's API defines; syntax: also valid Kubernetes
	// names (otherwise only a warning, as Istio does not check them).
	for sa, want := range map[string]struct{ valid, syntax bool }{
		"prod/web": {true, true}, "web": {true, true}, "prod/web.v2": {true, true},
		"Prod/web": {true, false}, "prod/Web": {true, false}, "prod/web_1": {true, false},
		"/web": {false, false}, "prod/": {false, false}, "a/b/c": {false, false}, "prod/*": {false, false}, "*": {false, false},
	} {
		if err := ServiceAccount(sa); (err == nil) != want.valid {
			t.Errorf("ServiceAccount(%q) = %v, want ok=%v", sa, err, want.valid)
		}
		if err := ServiceAccountSyntax(sa); want.valid && (err == nil) != want.syntax {
			t.Errorf("ServiceAccountSyntax(%q) = %v, want ok=%v", sa, err, want.syntax)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	for v, ok := range map[string]bool{
		"plain": true, "100%%": true, "%HOSTNAME%": true, "pre %START_TIME(%s)% post": true, "%REQ(x-a):10%": true, "%(x)%": false, "%START_TIME(%s": false,
		"50%": false, "%%%": false, "a\nb": false, "%%HOST%": false,
	} {
		if err := HeaderValue(v); (err == nil) != ok {
			t.Errorf("HeaderValue(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}

// Objects built in code (not decoded) can hold values YAML cannot
// express, such as enum numbers outside the enum; validation still
// reports them rather than panicking.
func TestValidateBuiltObjects(t *testing.T) {
	meta := mesh.Meta{Kind: mesh.KindAuthorizationPolicy, Namespace: "prod", Name: "p"}
	tests := []struct {
		name string
		c    *mesh.Config
		want []string
	}{
		{"nil spec", &mesh.Config{Meta: meta}, []string{"spec"}},
		{"typed nil spec", &mesh.Config{Meta: meta, Spec: (*security.AuthorizationPolicy)(nil)}, []string{"spec"}},
		{"wrong spec type", &mesh.Config{Meta: meta, Spec: &networking.Gateway{}}, []string{"spec"}},
		{"action out of range", &mesh.Config{Meta: meta, Spec: &security.AuthorizationPolicy{Action: 42}}, []string{"spec.action"}},
		{"nil rule", &mesh.Config{Meta: meta, Spec: &security.AuthorizationPolicy{Rules: []*security.Rule{nil}}}, []string{"spec.rules[0]"}},
		{"bad duration", &mesh.Config{
			Meta: mesh.Meta{Kind: mesh.KindRequestAuthentication, Namespace: "prod", Name: "r"},
			Spec: &security.RequestAuthentication{JwtRules: []*security.JWTRule{{Issuer: "a", Timeout: &durationpb.Duration{Seconds: -1}}}},
		}, []string{"spec.jwtRules[0].timeout"}},
		{"dry-run not a boolean", &mesh.Config{
			Meta: mesh.Meta{Kind: mesh.KindAuthorizationPolicy, Namespace: "prod", Name: "v", Annotations: map[string]string{mesh.AnnotationDryRun: "yes"}},
			Spec: &security.AuthorizationPolicy{},
		}, []string{"metadata.annotations[istio.io/dry-run]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, fe := range Validate(tt.c) {
				got = append(got, fe.Path)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	const doc = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: w, namespace: prod}
spec:
  hosts: [a]
  http:
  - match:
    - uri: {prefix: /a}
    route:
    - destination: {host: a, subset: v1}
      weight: 30
    - destination: {host: a, subset: v2}
      weight: 30
  - match:
    - uri: {prefix: /a}
    route:
    - destination: {host: a}
  - route:
    - destination: {host: a}
  - route:
    - destination: {host: b}
`
	docs, err := SplitYAML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(docs[0], mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	if fes := Validate(dec.Config); len(fes) != 0 {
		t.Fatalf("Validate = %v, want no errors", fes)
	}
	var got []string
	for _, w := range Warnings(dec.Config) {
		got = append(got, w.Path)
	}
	want := []string{"spec.http[0].route", "spec.http[1].match[0]", "spec.http[1]", "spec.http[3]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warning paths (-want +got):\n%s", diff)
	}
}

// TestInt64AsString covers protojson's canonical form of 64-bit integers.
func TestInt64AsString(t *testing.T) {
	for v, ok := range map[string]bool{`"1024"`: true, `1024`: true, `"-1"`: false, `"1e3"`: false, `"18446744073709551615"`: true} {
		doc := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        useSourceIp: true\n        ringHash:\n          minimumRingSize: " + v + "\n"
		docs, err := SplitYAML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(docs[0], mesh.Source{})
		if (err == nil) != ok {
			t.Errorf("minimumRingSize %s: Decode = %v, want ok=%v", v, err, ok)
		}
	}
}

// FuzzDecode feeds arbitrary YAML through the whole pipeline: it must
// never panic, whatever the input.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid", "testdata/compat"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _ := SplitYAML(data)
		for _, d := range docs {
			dec, err := Decode(d, mesh.Source{File: "fuzz.yaml"})
			if err != nil {
				_ = err.Error()
			}
			if err != nil || dec.Config == nil {
				continue
			}
			if err := ValidateObject(dec.Config, d); err != nil {
				_ = err.Error()
			}
			_ = Warnings(dec.Config)
		}
	})
}

// TestMapKeyLines checks that errors on map entries point at the entry's
// line, though errors name them "m[key]" and documents record "m.key".
func TestMapKeyLines(t *testing.T) {
	const doc = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: p
  namespace: prod
  annotations:
    istio.io/dry-run: "true"
spec:
  selector:
    matchLabels: {app: a}
  portLevelMtls:
    8080:
      mode: STRICT
    0:
      mode: DISABLE
`
	docs, err := SplitYAML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(docs[0], mesh.Source{File: "pa.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var oe *ObjectError
	if err := ValidateObject(dec.Config, docs[0]); !errors.As(err, &oe) {
		t.Fatalf("ValidateObject = %v, want *ObjectError", err)
	}
	got := map[string]int{}
	for _, fe := range oe.Errors {
		got[fe.Path] = fe.Line
	}
	// dry-run on a PeerAuthentication is a warning (Istio ignores it).
	for _, w := range Warnings(dec.Config) {
		got[w.Path] = docs[0].LineOf(w.Path)
	}
	want := map[string]int{"metadata.annotations[istio.io/dry-run]": 7, "spec.portLevelMtls[0]": 14}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}
