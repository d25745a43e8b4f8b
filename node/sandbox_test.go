package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardmesh/ward/node/cni"
)

func TestSandboxesKeepTheCurrentPodSandbox(t *testing.T) {
	s, err := NewSandboxes("")
	if err != nil {
		t.Fatal(err)
	}
	s.isNetns = func(string) (uint64, error) { return 1, nil }
	k := PodWorkload("shop", "db-0")
	if k.Name != "pod.db-0" || k.Namespace != "shop" {
		t.Fatalf("PodWorkload = %v, want the kube source's name pod.db-0", k)
	}
	do := func(ev cni.Event) {
		t.Helper()
		ev.Namespace, ev.Name = "shop", "db-0"
		if err := s.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	do(cni.Event{Command: "ADD", UID: "u1", ContainerID: "c1", Netns: "/run/netns/cni-1"})
	do(cni.Event{Command: "ADD", UID: "u2", ContainerID: "c2", Netns: "/run/netns/cni-2"}) // the pod was recreated
	if p, _ := s.netns(k); p != "/run/netns/cni-2" {
		t.Fatalf("netns = %q, want the newer sandbox's", p)
	}
	<-s.changed                                                 // coalesced into one signal
	do(cni.Event{Command: "DEL", UID: "u1", ContainerID: "c1"}) // the old pod's late DEL
	if _, ok := s.netns(k); !ok {
		t.Fatal("a stale DEL removed the current sandbox")
	}
	do(cni.Event{Command: "DEL", ContainerID: "c1"}) // no UID: matched by container
	if _, ok := s.netns(k); !ok {
		t.Fatal("a stale DEL without UID removed the current sandbox")
	}
	select {
	case <-s.changed:
		t.Fatal("a stale DEL signalled a change")
	default:
	}
	do(cni.Event{Command: "DEL", UID: "u2", ContainerID: "c2"})
	if _, ok := s.netns(k); ok {
		t.Fatal("DEL did not remove the sandbox")
	}
	<-s.changed
}

func TestSandboxesRejectAPathThatIsNotANamespace(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "netns")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err := NewSandboxes("")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Handle(context.Background(), cni.Event{Command: "ADD", Namespace: "shop", Name: "db-0", Netns: f.Name()})
	if err == nil || !strings.Contains(err.Error(), "not a namespace file") || !strings.Contains(err.Error(), "shop/db-0") {
		t.Fatalf("err = %v, want it to name the pod and say the file is not a namespace", err)
	}
	if _, err := isNetns("/proc/self/ns/net"); err != nil {
		t.Errorf("/proc/self/ns/net: %v", err)
	}
}

func TestSandboxesSurviveARestartWhileTheirNamespaceDoes(t *testing.T) {
	state := filepath.Join(t.TempDir(), "run", "pods.json")
	inodes := map[string]uint64{"/run/netns/cni-a": 7, "/run/netns/cni-b": 8, "/proc/42/ns/net": 9}
	fake := func(path string) (uint64, error) {
		if ino, ok := inodes[path]; ok {
			return ino, nil
		}
		return 0, os.ErrNotExist
	}
	s, err := newSandboxes(state, fake)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []cni.Event{
		{Command: "ADD", Namespace: "shop", Name: "a", UID: "ua", ContainerID: "ca", Netns: "/run/netns/cni-a"},
		{Command: "ADD", Namespace: "shop", Name: "b", UID: "ub", ContainerID: "cb", Netns: "/run/netns/cni-b"},
		{Command: "ADD", Namespace: "shop", Name: "c", UID: "uc", ContainerID: "cc", Netns: "/proc/42/ns/net"},
		{Command: "ADD", Namespace: "shop", Name: "d", UID: "ud", ContainerID: "cd", Netns: "/run/netns/cni-a"},
		{Command: "DEL", Namespace: "shop", Name: "d", UID: "ud", ContainerID: "cd"},
	} {
		if err := s.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v, want 0600", fi, err)
	}
	// While no node proxy ran: b's pod went, pid 42 now is another process.
	delete(inodes, "/run/netns/cni-b")
	inodes["/proc/42/ns/net"] = 99
	r, err := newSandboxes(state, fake)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := r.netns(PodWorkload("shop", "a")); !ok || p != "/run/netns/cni-a" {
		t.Errorf("a after restart: %q %v", p, ok)
	}
	for _, name := range []string{"b", "c", "d"} {
		if p, ok := r.netns(PodWorkload("shop", name)); ok {
			t.Errorf("%s restored with %s", name, p)
		}
	}
}
