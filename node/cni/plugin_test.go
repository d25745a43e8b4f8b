package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardmesh/ward/node/cni"
)

const prev = `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/cni-1"}],"ips":[{"address":"10.1.0.5/24","interface":0}]}`

func conf(socket string, extra string) string {
	return `{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ward-cni","socket":"` + socket + `"` + extra + `,"prevResult":` + prev + `}`
}

func addEnv() cni.Env {
	return cni.Env{Command: "ADD", ContainerID: "c0ffee", Netns: "/var/run/netns/cni-1", IfName: "eth0",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=db-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1"}
}

// node serves a socket whose handler records events and answers err.
func node(t *testing.T, err error) (string, chan cni.Event) {
	t.Helper()
	events := make(chan cni.Event, 4)
	path := filepath.Join(t.TempDir(), "cni.sock")
	srv, lerr := cni.Listen(cni.ServerConfig{Path: path, Handler: func(_ context.Context, ev cni.Event) error {
		events <- ev
		return err
	}})
	if lerr != nil {
		t.Fatal(lerr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, events
}

func run(t *testing.T, env cni.Env, stdin string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := cni.Plugin{}.Run(context.Background(), env, strings.NewReader(stdin), &out)
	return out.String(), err
}

func TestAddReportsThePodAndPassesPrevResultThrough(t *testing.T) {
	sock, events := node(t, nil)
	out, err := run(t, addEnv(), conf(sock, ""))
	if err != nil {
		t.Fatalf("ADD: %v (stdout %s)", err, out)
	}
	if strings.TrimSpace(out) != prev {
		t.Errorf("stdout = %s, want prevResult unchanged %s", out, prev)
	}
	got := <-events
	want := cni.Event{Command: "ADD", Namespace: "shop", Name: "db-0", UID: "u-1", ContainerID: "c0ffee", Netns: "/var/run/netns/cni-1"}
	if got != want {
		t.Errorf("node got %+v, want %+v", got, want)
	}
}

func TestAddFailsClosedWhenTheNodeProxyIsUnreachable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.sock")
	out, err := run(t, addEnv(), conf(missing, ""))
	var cerr *cni.Error
	if !errors.As(err, &cerr) || cerr.Code != cni.CodeTryAgainLater || !strings.Contains(cerr.Msg, "shop/db-0") || !strings.Contains(cerr.Msg, "not reachable") {
		t.Fatalf("err = %v, want a try-again-later error naming the pod and the unreachable node proxy", err)
	}
	var printed cni.Error
	if jerr := json.Unmarshal([]byte(out), &printed); jerr != nil || printed.Code != cni.CodeTryAgainLater || printed.CNIVersion != "1.0.0" {
		t.Errorf("stdout = %s, want the CNI error result (code 11, the config's version)", out)
	}
	// failClosed: false lets the pod start.
	out, err = run(t, addEnv(), conf(missing, `,"failClosed":false`))
	if err != nil || strings.TrimSpace(out) != prev {
		t.Errorf("failClosed=false: %v, stdout %s; want prevResult", err, out)
	}
}

func TestAddFailsWhenTheNodeProxyRefuses(t *testing.T) {
	sock, _ := node(t, errors.New("netns /x is not a namespace file"))
	_, err := run(t, addEnv(), conf(sock, ""))
	if err == nil || !strings.Contains(err.Error(), "not a namespace file") {
		t.Fatalf("err = %v, want the node proxy's reason", err)
	}
}

func TestExcludedNamespaceIsNotReported(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.sock")
	out, err := run(t, addEnv(), conf(missing, `,"excludeNamespaces":["kube-system","shop"]`))
	if err != nil || strings.TrimSpace(out) != prev {
		t.Fatalf("excluded: %v, stdout %s; want prevResult without asking the node", err, out)
	}
}

func TestDelNotifiesAndNeverFails(t *testing.T) {
	sock, events := node(t, errors.New("refused"))
	env := addEnv()
	env.Command, env.Netns = "DEL", ""
	if out, err := run(t, env, conf(sock, "")); err != nil || out != "" {
		t.Fatalf("DEL: %v, stdout %q; want success and no output", err, out)
	}
	if got := <-events; got.Command != "DEL" || got.UID != "u-1" || got.Name != "db-0" {
		t.Errorf("node got %+v", got)
	}
	if _, err := run(t, env, conf(filepath.Join(t.TempDir(), "absent.sock"), "")); err != nil {
		t.Errorf("DEL with the node proxy down: %v, want success", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, cni.Env{Command: "VERSION"}, `{"cniVersion":"1.0.0"}`)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.CNIVersion == "" || len(v.SupportedVersions) == 0 {
		t.Fatalf("VERSION printed %s (%v)", out, err)
	}
	for _, want := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		if !strings.Contains(strings.Join(v.SupportedVersions, ","), want) {
			t.Errorf("supportedVersions %v lacks %s", v.SupportedVersions, want)
		}
	}
}

func TestCheckAndStatusSucceedSilently(t *testing.T) {
	for _, c := range []string{"CHECK", "STATUS", "GC"} {
		env := addEnv()
		env.Command = c
		if out, err := run(t, env, conf("/nonexistent.sock", "")); err != nil || out != "" {
			t.Errorf("%s: %v, stdout %q", c, err, out)
		}
	}
}

func TestErrorsNameWhatIsMissing(t *testing.T) {
	sock, _ := node(t, nil)
	for _, tc := range []struct {
		name  string
		env   func(*cni.Env)
		stdin string
		code  int
		want  []string
	}{
		{"no command", func(e *cni.Env) { e.Command = "" }, conf(sock, ""), cni.CodeInvalidEnv, []string{"CNI_COMMAND"}},
		{"unknown command", func(e *cni.Env) { e.Command = "FROB" }, conf(sock, ""), cni.CodeInvalidEnv, []string{`"FROB"`}},
		{"no netns", func(e *cni.Env) { e.Netns = "" }, conf(sock, ""), cni.CodeInvalidEnv, []string{"CNI_NETNS"}},
		{"no pod", func(e *cni.Env) { e.Args = "IgnoreUnknown=1"; e.ContainerID = "" }, conf(sock, ""), cni.CodeInvalidEnv,
			[]string{"CNI_CONTAINERID", "K8S_POD_NAMESPACE", "K8S_POD_NAME"}},
		{"relative netns", func(e *cni.Env) { e.Netns = "netns/x" }, conf(sock, ""), cni.CodeInvalidEnv, []string{"netns/x"}},
		{"bad json", func(*cni.Env) {}, `{"cniVersion":`, cni.CodeDecoding, []string{"decoding the network config"}},
		{"no version", func(*cni.Env) {}, `{"name":"n","type":"ward-cni"}`, cni.CodeInvalidConfig, []string{"cniVersion is missing"}},
		{"old version", func(*cni.Env) {}, `{"cniVersion":"0.2.0","name":"n","type":"ward-cni"}`, cni.CodeIncompatibleVersion, []string{`"0.2.0"`, "1.0.0"}},
		{"prevResult not an object", func(*cni.Env) {}, `{"cniVersion":"1.0.0","name":"n","type":"ward-cni","socket":"` + sock + `","prevResult":[1]}`, cni.CodeDecoding, []string{"prevResult"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := addEnv()
			tc.env(&env)
			out, err := run(t, env, tc.stdin)
			var cerr *cni.Error
			if !errors.As(err, &cerr) || cerr.Code != tc.code {
				t.Fatalf("err = %v, want a CNI error with code %d", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(cerr.Error(), w) || !strings.Contains(out, strings.ReplaceAll(w, `"`, `\"`)) {
					t.Errorf("error %q (stdout %s) does not name %s", cerr.Error(), out, w)
				}
			}
		})
	}
}

func TestAddWithoutPrevResultPrintsAnEmptyResult(t *testing.T) {
	sock, _ := node(t, nil)
	out, err := run(t, addEnv(), `{"cniVersion":"1.0.0","name":"n","type":"ward-cni","socket":"`+sock+`"}`)
	if err != nil || strings.TrimSpace(out) != `{"cniVersion":"1.0.0"}` {
		t.Fatalf("ADD first in chain: %v, stdout %s", err, out)
	}
}
