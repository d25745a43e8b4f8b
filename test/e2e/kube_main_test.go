package e2e

import (
	"os"
	"testing"

	"github.com/wardmesh/ward/kube/kubetest"
)

// TestMain lets the Kubernetes tests (kube_*_test.go) share one real
// kube-apiserver per package run, started by the first test that needs it.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
