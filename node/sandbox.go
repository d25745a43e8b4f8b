package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/wardmesh/ward/internal/atomicfile"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node/cni"
)

// PodWorkload is the WorkloadEntry the Kubernetes source makes of a pod
// (kube's syntheticMeta names it "pod.<name>" in the pod's namespace), so
// a CNI event about pod namespace/name finds its workload.
func PodWorkload(namespace, name string) mesh.Key {
	return mesh.Key{Kind: mesh.KindWorkloadEntry, Namespace: namespace, Name: "pod." + name}
}

// Sandboxes records each pod's network namespace as the CNI plugin
// reports it (ward cni → cni.Server → Handle). With Config.Sandboxes set,
// the proxy takes a workload's namespace from here instead of
// <NetnsDir>/<name>, and enrols a workload only once both its config and
// its namespace are known, in either order. It exists before the proxy
// (which is built from the first config) so no event is lost meanwhile.
//
// The runtime reports a pod once, when its sandbox is made, so the record
// is kept in a state file (rewritten on every change) that a restarted
// node proxy reloads: an entry whose namespace file no longer names the
// same namespace (its inode) is dropped, so a reused /proc/<pid> or a pod
// deleted while no node proxy ran is never mistaken for the pod.
type Sandboxes struct {
	mu      sync.Mutex
	pods    map[mesh.Key]sandbox
	changed chan struct{}
	state   string // "" keeps the record in memory only
	// isNetns checks an ADD's path names a network namespace and returns
	// its inode.
	isNetns func(path string) (uint64, error)
}

type sandbox struct {
	UID         string `json:"uid,omitempty"`
	ContainerID string `json:"containerID"`
	Netns       string `json:"netns"`
	Inode       uint64 `json:"inode"`
}

// stateEntry is one pod in the state file.
type stateEntry struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	sandbox
}

// NewSandboxes returns the record kept in stateFile ("": in memory only),
// loading what a previous run left there.
func NewSandboxes(stateFile string) (*Sandboxes, error) { return newSandboxes(stateFile, isNetns) }

func newSandboxes(stateFile string, check func(string) (uint64, error)) (*Sandboxes, error) {
	s := &Sandboxes{pods: map[mesh.Key]sandbox{}, changed: make(chan struct{}, 1), state: stateFile, isNetns: check}
	if stateFile == "" {
		return s, nil
	}
	b, err := os.ReadFile(stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: sandboxes: %w", err)
	}
	var entries []stateEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("node: sandboxes %s: %w", stateFile, err)
	}
	for _, e := range entries {
		if ino, err := s.isNetns(e.Netns); err == nil && ino == e.Inode {
			s.pods[PodWorkload(e.Namespace, e.Name)] = e.sandbox
		}
	}
	return s, nil
}

// save writes the record to the state file; the caller holds mu.
func (s *Sandboxes) save() error {
	if s.state == "" {
		return nil
	}
	entries := make([]stateEntry, 0, len(s.pods))
	for k, sb := range s.pods {
		entries = append(entries, stateEntry{Namespace: k.Namespace, Name: strings.TrimPrefix(k.Name, "pod."), sandbox: sb})
	}
	slices.SortFunc(entries, func(a, b stateEntry) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	b, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.state, b, 0o600, 0o700); err != nil {
		return fmt.Errorf("node: sandboxes: %w", err)
	}
	return nil
}

var _ cni.Handler = (*Sandboxes)(nil).Handle

// Handle records an ADD (replacing an earlier sandbox of the same pod)
// or forgets the pod on a DEL of its current sandbox; a DEL naming
// another pod UID (or, without a UID, another container) is stale and
// ignored.
func (s *Sandboxes) Handle(_ context.Context, ev cni.Event) error {
	k := PodWorkload(ev.Namespace, ev.Name)
	if ev.Command == cni.CmdAdd {
		ino, err := s.isNetns(ev.Netns)
		if err != nil {
			return fmt.Errorf("pod %s/%s: %w", ev.Namespace, ev.Name, err)
		}
		s.mu.Lock()
		s.pods[k] = sandbox{UID: ev.UID, ContainerID: ev.ContainerID, Netns: ev.Netns, Inode: ino}
		err = s.save()
		s.mu.Unlock()
		s.signal()
		return err // recorded in memory either way; the plugin reports a failed save
	}
	s.mu.Lock()
	cur, ok := s.pods[k]
	current := ok && ((ev.UID != "" && ev.UID == cur.UID) || (ev.UID == "" && ev.ContainerID == cur.ContainerID))
	var err error
	if current {
		delete(s.pods, k)
		err = s.save()
	}
	s.mu.Unlock()
	if current {
		s.signal()
	}
	return err
}

// netns returns the workload's recorded namespace path.
func (s *Sandboxes) netns(k mesh.Key) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.pods[k]
	return sb.Netns, ok
}

func (s *Sandboxes) signal() {
	select {
	case s.changed <- struct{}{}:
	default: // one pending signal covers every change since
	}
}

// isNetns checks path is a network namespace (a bind mount of one, as
// runtimes make under /var/run/netns, or /proc/<pid>/ns/net) and returns
// the namespace's inode.
func isNetns(path string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("netns %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return 0, fmt.Errorf("netns %s is not a namespace file (nsfs)", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("netns %s: %w", path, err)
	}
	return st.Ino, nil
}
