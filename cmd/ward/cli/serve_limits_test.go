package cli

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadyzStuckReloads: /readyz turns unready while config reloads are
// stuck, with the reason, and ready again when they recover.
func TestReadyzStuckReloads(t *testing.T) {
	ready := true
	var stuck error
	h := readyz(func() bool { return ready }, func() error { return stuck })
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("healthy: %d", code)
	}
	stuck = errors.New("config reload of cfg running for 42s (stuck)")
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "stuck") {
		t.Errorf("stuck reloads: %d %q, want 503 naming the reason", code, body)
	}
	stuck = nil
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("recovered: %d", code)
	}
	ready = false
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("before the first snapshot: %d", code)
	}
	// Kubernetes-only mode has no file source.
	if code, _ := func() (int, string) {
		rec := httptest.NewRecorder()
		readyz(func() bool { return true }, nil)(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}(); code != http.StatusOK {
		t.Errorf("no file source: %d", code)
	}
}
