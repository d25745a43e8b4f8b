package cni_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardmesh/ward/node/cni"
)

func TestSocketIsRootOnlyAndReplacesAStaleOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "cni.sock")
	for i := 0; i < 2; i++ { // the second Listen finds the first's file
		srv, err := cni.Listen(cni.ServerConfig{Path: path, Handler: func(context.Context, cni.Event) error { return nil }})
		if err != nil {
			t.Fatalf("Listen #%d: %v", i, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
		}
		if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
			t.Errorf("socket directory mode %v, want 0700", di.Mode().Perm())
		}
		srv.Close()
	}
}

func TestServerRejectsInvalidEvents(t *testing.T) {
	sock, events := node(t, nil)
	env := addEnv()
	env.Netns = "/var/run/netns/../../etc/passwd"
	if _, err := run(t, env, conf(sock, "")); err == nil {
		t.Fatal("ADD with an unclean netns path succeeded")
	}
	select {
	case ev := <-events:
		t.Fatalf("handler got %+v", ev)
	default:
	}
}
