package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// DefaultSocket is where the node proxy listens and the plugin dials
// unless the network config's "socket" says otherwise.
const DefaultSocket = "/var/run/ward/cni.sock"

// maxMessage bounds one message on the socket (a few hundred bytes in
// practice).
const maxMessage = 64 << 10

// Event is what the plugin tells the node proxy: one pod's sandbox was
// added (with its network namespace) or deleted.
type Event struct {
	Command     string `json:"command"` // "ADD" or "DEL"
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	UID         string `json:"uid,omitempty"`
	ContainerID string `json:"containerID"`
	Netns       string `json:"netns,omitempty"` // ADD only: the path the runtime gave
}

// Reply is the node proxy's answer. An Error fails the plugin's call.
type Reply struct {
	Error string `json:"error,omitempty"`
}

// Validate checks an event before the node acts on it; the node proxy
// only ever opens an absolute, clean path.
func (e Event) Validate() error {
	var errs []error
	if e.Command != CmdAdd && e.Command != CmdDel {
		errs = append(errs, fmt.Errorf("command %q is not ADD or DEL", e.Command))
	}
	if e.Namespace == "" || e.Name == "" {
		errs = append(errs, errors.New("pod namespace and name are required"))
	}
	if e.Command == CmdAdd && (e.Netns == "" || !filepath.IsAbs(e.Netns) || filepath.Clean(e.Netns) != e.Netns) {
		errs = append(errs, fmt.Errorf("netns %q is not a clean absolute path", e.Netns))
	}
	return errors.Join(errs...)
}

func decode(r io.Reader, v any) error {
	return json.NewDecoder(io.LimitReader(r, maxMessage)).Decode(v)
}
