package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/wardmesh/ward/node/cni"
)

// FuzzPlugin feeds arbitrary network configs and CNI_ARGS: the plugin
// never panics, and when it fails it prints a CNI error result.
func FuzzPlugin(f *testing.F) {
	f.Add("ADD", `{"cniVersion":"1.0.0","name":"n","type":"ward-cni","prevResult":{"cniVersion":"1.0.0"}}`, "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b")
	f.Add("DEL", `{"cniVersion":"0.4.0"}`, "")
	f.Add("VERSION", `{}`, "=;;==")
	f.Fuzz(func(t *testing.T, cmd, stdin, args string) {
		var out bytes.Buffer
		p := cni.Plugin{Dial: func(context.Context, string) (net.Conn, error) { return nil, errors.New("no node proxy") }}
		env := cni.Env{Command: cmd, ContainerID: "c", Netns: "/var/run/netns/x", Args: args}
		err := p.Run(context.Background(), env, strings.NewReader(stdin), &out)
		var cerr *cni.Error
		if err != nil && errors.As(err, &cerr) {
			var printed cni.Error
			if jerr := json.Unmarshal(out.Bytes(), &printed); jerr != nil || printed.Code != cerr.Code {
				t.Fatalf("error %v printed as %q", err, out.String())
			}
		}
	})
}

// FuzzServer sends arbitrary bytes to the node proxy's socket: it
// answers or hangs up, never calls the handler with an invalid event.
func FuzzServer(f *testing.F) {
	f.Add(`{"command":"ADD","namespace":"a","name":"b","containerID":"c","netns":"/x"}`)
	f.Add(`{"command":"ADD","netns":"../x"}`)
	f.Fuzz(func(t *testing.T, msg string) {
		sock, events := node(t, nil)
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(msg))
		c.(*net.UnixConn).CloseWrite()
		var r cni.Reply
		json.NewDecoder(c).Decode(&r)
		select {
		case ev := <-events:
			if err := ev.Validate(); err != nil {
				t.Fatalf("handler got invalid %+v: %v", ev, err)
			}
		default:
		}
	})
}
