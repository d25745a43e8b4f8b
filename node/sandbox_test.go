package node

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/wardmesh/ward/node/cni"
)

func TestSandboxesKeepTheCurrentPodSandbox(t *testing.T) {
	s := NewSandboxes()
	s.isNetns = func(string) error { return nil }
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
	err = NewSandboxes().Handle(context.Background(), cni.Event{Command: "ADD", Namespace: "shop", Name: "db-0", Netns: f.Name()})
	if err == nil || !strings.Contains(err.Error(), "not a namespace file") || !strings.Contains(err.Error(), "shop/db-0") {
		t.Fatalf("err = %v, want it to name the pod and say the file is not a namespace", err)
	}
	if err := isNetns("/proc/self/ns/net"); err != nil {
		t.Errorf("/proc/self/ns/net: %v", err)
	}
}
