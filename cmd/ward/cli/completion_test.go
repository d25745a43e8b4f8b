package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/wardmesh/ward/internal/version"
	"github.com/wardmesh/ward/xds"
)

// execRoot runs the ward command tree in-process with args.
func execRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// completions returns the values of a `ward __complete` answer (without
// descriptions and the trailing directive line).
func completions(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := execRoot(t, append([]string{"__complete"}, args...)...)
	if err != nil {
		t.Fatalf("__complete %v: %v", args, err)
	}
	var vals []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, ":") || strings.HasPrefix(l, "Completion ended") {
			continue
		}
		v, _, _ := strings.Cut(l, "\t")
		vals = append(vals, v)
	}
	return vals
}

func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_ward", "zsh": "#compdef ward", "fish": "complete -c ward", "powershell": "Register-ArgumentCompleter"} {
		out, err := execRoot(t, "completion", shell)
		if err != nil || !strings.Contains(out, marker) {
			t.Errorf("completion %s: err %v, output lacks %q (%d bytes)", shell, err, marker, len(out))
		}
	}
}

func TestCompleteFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"analyze", "-o", ""}, "table json yaml"},
		{[]string{"audit", "--output", ""}, "table json yaml markdown html"},
		{[]string{"authz", "check", "-o", ""}, "table json yaml"},
		{[]string{"version", "-o", "j"}, "table json yaml"}, // the shell filters by prefix
		{[]string{"proxy-config", "--type", ""}, "sidecar router grpc"},
		{[]string{"an"}, "analyze"},
	} {
		if got := strings.Join(completions(t, tc.args...), " "); got != tc.want {
			t.Errorf("__complete %v = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestCompleteProxyIDsFromServer(t *testing.T) {
	f := startXDS(t)
	c := f.connect(t, envoyID)
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
	c.recv()
	waitSync(t, f.srv, "proxy connected", func(m map[string]xds.SyncStatus) bool { _, ok := m[envoyID]; return ok })
	if got := completions(t, "proxy-status", "--server", f.debug, ""); len(got) != 1 || got[0] != envoyID {
		t.Errorf("proxy-status ids = %q, want [%s]", got, envoyID)
	}
	if got := completions(t, "proxy-status", "--server", f.debug, envoyID, ""); len(got) != 0 {
		t.Errorf("second proxy-status arg completes %q, want nothing", got)
	}
	if got := completions(t, "proxy-config", "--server", f.debug, "--proxy", "side"); len(got) != 1 || got[0] != envoyID {
		t.Errorf("proxy-config --proxy = %q, want [%s]", got, envoyID)
	}
	// A server that does not answer completes nothing (and does not fail).
	if got := completions(t, "proxy-status", "--server", "http://127.0.0.1:1", ""); len(got) != 0 {
		t.Errorf("unreachable server completes %q", got)
	}
}

func TestHelpfulErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"anaylze"}, []string{`unknown command "anaylze" for "ward"`, "Did you mean this?", "analyze"}},
		{[]string{"ca", "rotat"}, []string{`unknown command "rotat" for "ward ca"`, "Did you mean this?", "rotate"}},
		{[]string{"analyze", "--config", ".", "-o", "xml"}, []string{`unknown output format "xml" (valid: table, json, yaml)`}},
		{[]string{"audit", "--config", ".", "-o", "pdf"}, []string{`(valid: table, json, yaml, markdown, html)`}},
	} {
		_, err := execRoot(t, tc.args...)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.args, err, w)
			}
		}
	}
	if out, err := execRoot(t, "ca"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("bare group: err %v, want its help:\n%s", err, out)
	}
}

func TestOutputFlag(t *testing.T) {
	var got string
	v := &outputValue{p: &got, formats: stdFormats, aliases: map[string]string{}}
	v.alias("text", outTable)
	if err := v.Set("text"); err != nil || got != outTable {
		t.Errorf("alias text: %v %q", err, got)
	}
	if err := v.Set("yaml"); err != nil || got != outYAML {
		t.Errorf("yaml: %v %q", err, got)
	}
	if err := v.Set("html"); err == nil || got != outYAML {
		t.Errorf("html accepted: %v %q", err, got)
	}
	Version := version.Get().Version
	out, err := execRoot(t, "version", "-o", "json")
	var vi versionInfo
	if err != nil || json.Unmarshal([]byte(out), &vi) != nil || vi.Version != Version || vi.GoVersion == "" || vi.Platform == "" {
		t.Errorf("version -o json: %v %s", err, out)
	}
	if out, err := execRoot(t, "version", "-o", "yaml"); err != nil || !strings.Contains(out, "version: "+Version) {
		t.Errorf("version -o yaml: %v %s", err, out)
	}
	if out, err := execRoot(t, "version"); err != nil || out != Version+"\n" {
		t.Errorf("version: %v %q", err, out)
	}
	// (A test binary's build info lists no modules: release/image runs
	// the built binary's `version --json` and checks them.)
	if out, err := execRoot(t, "version", "--json"); err != nil || !strings.Contains(out, `"goVersion": "go`) {
		t.Errorf("version --json: %v %s", err, out)
	}
	if out, err := execRoot(t, "version", "--long"); err != nil || !strings.HasPrefix(out, "version:   "+Version+"\n") || !strings.Contains(out, "\ngo:        go") {
		t.Errorf("version --long: %v %s", err, out)
	}
}
