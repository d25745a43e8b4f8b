package kubetest

import (
	"fmt"
	"sync/atomic"
	"testing"
)

var namespaceSeq atomic.Int64

// UniqueNamespace creates a namespace named base-N, N counting up per test
// process, and returns its name. The API server is shared by every test of
// a package run and has no namespace controller to finish deletions, so a
// test that runs again (go test -count=2) needs a fresh namespace rather
// than the one it left behind.
func (e *Env) UniqueNamespace(t testing.TB, base string, labels map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", base, namespaceSeq.Add(1))
	e.Namespace(t, name, labels)
	return name
}
