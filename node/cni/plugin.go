package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"
)

// CNI commands (CNI_COMMAND).
const (
	CmdAdd     = "ADD"
	CmdDel     = "DEL"
	CmdCheck   = "CHECK"
	CmdVersion = "VERSION"
	CmdGC      = "GC"
	CmdStatus  = "STATUS"
)

// SupportedVersions are the CNI spec versions the plugin speaks: every
// version with chaining (prevResult); the result is passed through
// unchanged, so its schema does not matter to us.
var SupportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// Well-known CNI error codes the plugin returns.
const (
	CodeIncompatibleVersion = 1
	CodeInvalidEnv          = 4
	CodeIOFailure           = 5
	CodeDecoding            = 6
	CodeInvalidConfig       = 7
	CodeTryAgainLater       = 11
)

// Env is the runtime's CNI_* environment.
type Env struct {
	Command, ContainerID, Netns, IfName, Args string
}

// EnvFrom reads Env with getenv (os.Getenv).
func EnvFrom(getenv func(string) string) Env {
	return Env{Command: getenv("CNI_COMMAND"), ContainerID: getenv("CNI_CONTAINERID"), Netns: getenv("CNI_NETNS"),
		IfName: getenv("CNI_IFNAME"), Args: getenv("CNI_ARGS")}
}

// NetConf is the network config on stdin: the standard fields, the
// previous plugin's result, and Ward's own.
type NetConf struct {
	CNIVersion string          `json:"cniVersion"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	PrevResult json.RawMessage `json:"prevResult,omitempty"`
	// Socket is the node proxy's socket (default DefaultSocket).
	Socket string `json:"socket,omitempty"`
	// FailClosed (default true) fails a pod's ADD when the node proxy
	// cannot be reached, so no pod starts uncaptured; false lets it start
	// (and, if ambient, run unproxied until it is restarted).
	FailClosed *bool `json:"failClosed,omitempty"`
	// ExcludeNamespaces are never reported (the node proxy's own, whose
	// pods start before any node proxy runs, and kube-system).
	ExcludeNamespaces []string `json:"excludeNamespaces,omitempty"`
}

// Error is a CNI error result; the plugin prints it and exits non-zero.
type Error struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Details
}

// Plugin runs one CNI call.
type Plugin struct {
	// Dial connects to the node proxy's socket (default: net.Dialer).
	Dial func(ctx context.Context, path string) (net.Conn, error)
	// Timeout bounds the exchange with the node proxy (default 10s).
	Timeout time.Duration
}

// Run performs the call env.Command with the network config on stdin and
// writes its result to stdout. On failure it writes the CNI error result
// to stdout and returns it.
func (p Plugin) Run(ctx context.Context, env Env, stdin io.Reader, stdout io.Writer) error {
	out, err := p.run(ctx, env, stdin)
	var cerr *Error
	if err != nil && errors.As(err, &cerr) {
		if cerr.CNIVersion == "" {
			cerr.CNIVersion = SupportedVersions[len(SupportedVersions)-1]
		}
		out, _ = json.Marshal(cerr)
	}
	if len(out) > 0 {
		if _, werr := stdout.Write(append(out, '\n')); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func (p Plugin) run(ctx context.Context, env Env, stdin io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return nil, &Error{Code: CodeIOFailure, Msg: "reading the network config from stdin", Details: err.Error()}
	}
	if env.Command == "" {
		return nil, &Error{Code: CodeInvalidEnv, Msg: "CNI_COMMAND is not set (ward cni is run by the container runtime as a chained CNI plugin)"}
	}
	if env.Command == CmdVersion {
		return json.Marshal(map[string]any{"cniVersion": SupportedVersions[len(SupportedVersions)-1], "supportedVersions": SupportedVersions})
	}
	conf, err := parseConf(raw)
	if err != nil {
		return nil, err
	}
	switch env.Command {
	case CmdAdd:
		return p.add(ctx, env, conf)
	case CmdDel:
		p.del(ctx, env, conf)
		return nil, nil
	case CmdCheck, CmdGC, CmdStatus:
		return nil, nil // nothing of ours to check or collect: the node proxy reconciles
	}
	return nil, &Error{CNIVersion: conf.CNIVersion, Code: CodeInvalidEnv, Msg: fmt.Sprintf("CNI_COMMAND %q is not one of ADD, DEL, CHECK, VERSION, GC, STATUS", env.Command)}
}

func parseConf(raw []byte) (NetConf, error) {
	var conf NetConf
	if err := json.Unmarshal(raw, &conf); err != nil {
		return conf, &Error{Code: CodeDecoding, Msg: "decoding the network config on stdin", Details: err.Error()}
	}
	if conf.CNIVersion == "" {
		return conf, &Error{Code: CodeInvalidConfig, Msg: "network config: cniVersion is missing"}
	}
	if !slices.Contains(SupportedVersions, conf.CNIVersion) {
		return conf, &Error{Code: CodeIncompatibleVersion, Msg: fmt.Sprintf("network config: cniVersion %q is not supported (supported: %s)", conf.CNIVersion, strings.Join(SupportedVersions, ", "))}
	}
	if conf.Socket == "" {
		conf.Socket = DefaultSocket
	}
	return conf, nil
}

// add reports the pod to the node proxy and passes the previous result
// through.
func (p Plugin) add(ctx context.Context, env Env, conf NetConf) ([]byte, error) {
	result, err := passThrough(conf)
	if err != nil {
		return nil, err
	}
	ev, err := event(CmdAdd, env)
	if err != nil {
		return nil, &Error{CNIVersion: conf.CNIVersion, Code: CodeInvalidEnv, Msg: "ADD", Details: err.Error()}
	}
	if slices.Contains(conf.ExcludeNamespaces, ev.Namespace) {
		return result, nil
	}
	err = p.send(ctx, conf.Socket, ev)
	var unreachable *unreachableError
	switch {
	case err == nil:
		return result, nil
	case errors.As(err, &unreachable) && conf.FailClosed != nil && !*conf.FailClosed:
		return result, nil // fail open, by configuration
	case errors.As(err, &unreachable):
		return nil, &Error{CNIVersion: conf.CNIVersion, Code: CodeTryAgainLater, Msg: fmt.Sprintf("pod %s/%s: the Ward node proxy is not reachable at %s; the pod is not started uncaptured (failClosed)", ev.Namespace, ev.Name, conf.Socket), Details: err.Error()}
	}
	return nil, &Error{CNIVersion: conf.CNIVersion, Code: CodeIOFailure, Msg: fmt.Sprintf("pod %s/%s: the Ward node proxy refused it", ev.Namespace, ev.Name), Details: err.Error()}
}

// del tells the node proxy, best effort: DEL must not fail, or the
// runtime could never remove the sandbox.
func (p Plugin) del(ctx context.Context, env Env, conf NetConf) {
	ev, err := event(CmdDel, env)
	if err != nil || slices.Contains(conf.ExcludeNamespaces, ev.Namespace) {
		return
	}
	_ = p.send(ctx, conf.Socket, ev)
}

// passThrough is the result ADD prints: the previous plugin's, unchanged,
// or, if Ward is first in the chain, an empty one of the config's version.
func passThrough(conf NetConf) ([]byte, error) {
	if len(bytes.TrimSpace(conf.PrevResult)) == 0 || bytes.Equal(bytes.TrimSpace(conf.PrevResult), []byte("null")) {
		return json.Marshal(map[string]string{"cniVersion": conf.CNIVersion})
	}
	var check map[string]json.RawMessage
	if err := json.Unmarshal(conf.PrevResult, &check); err != nil {
		return nil, &Error{CNIVersion: conf.CNIVersion, Code: CodeDecoding, Msg: "network config: prevResult is not a JSON object", Details: err.Error()}
	}
	return conf.PrevResult, nil
}

// event builds the message from the runtime's environment; the pod comes
// from CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID).
func event(cmd string, env Env) (Event, error) {
	args := parseArgs(env.Args)
	ev := Event{Command: cmd, Namespace: args["K8S_POD_NAMESPACE"], Name: args["K8S_POD_NAME"], UID: args["K8S_POD_UID"], ContainerID: env.ContainerID, Netns: env.Netns}
	var missing []string
	for _, f := range []struct{ name, v string }{{"CNI_CONTAINERID", ev.ContainerID}, {"K8S_POD_NAMESPACE in CNI_ARGS", ev.Namespace}, {"K8S_POD_NAME in CNI_ARGS", ev.Name}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if cmd == CmdAdd && ev.Netns == "" {
		missing = append(missing, "CNI_NETNS")
	}
	if len(missing) > 0 {
		return ev, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if cmd == CmdDel {
		ev.Netns = "" // may be gone already; the node keys by pod
	}
	return ev, ev.Validate()
}

// parseArgs splits CNI_ARGS ("K1=V1;K2=V2").
func parseArgs(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[strings.TrimSpace(k)] = v
		}
	}
	return out
}

// unreachableError is a failure to reach the node proxy at all (as
// opposed to its refusal).
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// send delivers ev and waits, bounded, for the node proxy's reply.
func (p Plugin) send(ctx context.Context, socket string, ev Event) error {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := p.Dial
	if dial == nil {
		dial = func(ctx context.Context, path string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	c, err := dial(ctx, socket)
	if err != nil {
		return &unreachableError{err}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(ev); err != nil {
		return &unreachableError{fmt.Errorf("sending to the node proxy: %w", err)}
	}
	var r Reply
	if err := decode(c, &r); err != nil {
		return &unreachableError{fmt.Errorf("no reply from the node proxy: %w", err)}
	}
	if r.Error != "" {
		return errors.New(r.Error)
	}
	return nil
}
