package node

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

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
type Sandboxes struct {
	mu      sync.Mutex
	pods    map[mesh.Key]sandbox
	changed chan struct{}
	// isNetns checks an ADD's path names a network namespace.
	isNetns func(path string) error
}

type sandbox struct{ uid, containerID, netns string }

// NewSandboxes returns an empty record.
func NewSandboxes() *Sandboxes {
	return &Sandboxes{pods: map[mesh.Key]sandbox{}, changed: make(chan struct{}, 1), isNetns: isNetns}
}

var _ cni.Handler = (*Sandboxes)(nil).Handle

// Handle records an ADD (replacing an earlier sandbox of the same pod)
// or forgets the pod on a DEL of its current sandbox; a DEL naming
// another pod UID (or, without a UID, another container) is stale and
// ignored.
func (s *Sandboxes) Handle(_ context.Context, ev cni.Event) error {
	k := PodWorkload(ev.Namespace, ev.Name)
	if ev.Command == cni.CmdAdd {
		if err := s.isNetns(ev.Netns); err != nil {
			return fmt.Errorf("pod %s/%s: %w", ev.Namespace, ev.Name, err)
		}
		s.mu.Lock()
		s.pods[k] = sandbox{uid: ev.UID, containerID: ev.ContainerID, netns: ev.Netns}
		s.mu.Unlock()
		s.signal()
		return nil
	}
	s.mu.Lock()
	cur, ok := s.pods[k]
	current := ok && ((ev.UID != "" && ev.UID == cur.uid) || (ev.UID == "" && ev.ContainerID == cur.containerID))
	if current {
		delete(s.pods, k)
	}
	s.mu.Unlock()
	if current {
		s.signal()
	}
	return nil
}

// netns returns the workload's recorded namespace path.
func (s *Sandboxes) netns(k mesh.Key) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.pods[k]
	return sb.netns, ok
}

func (s *Sandboxes) signal() {
	select {
	case s.changed <- struct{}{}:
	default: // one pending signal covers every change since
	}
}

// isNetns reports whether path is a network namespace (a bind mount of
// one, as runtimes make under /var/run/netns, or /proc/<pid>/ns/net).
func isNetns(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("netns %s is not a namespace file (nsfs)", path)
	}
	return nil
}
