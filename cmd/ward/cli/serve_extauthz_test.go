package cli

import "testing"

// TestExtAuthzTargetTLS: --ext-authz-target-tls decides whether Envoy
// proxies reach ext_authz over mTLS; auto means mTLS exactly when the
// target is the secure port.
func TestExtAuthzTargetTLS(t *testing.T) {
	for _, tc := range []struct {
		target, mode, secure string
		wantTLS, wantErr     bool
	}{
		{"10.0.0.1:15012", extAuthzTLSAuto, ":15012", true, false},
		{"10.0.0.1:9191", extAuthzTLSAuto, ":15012", false, false},
		{"10.0.0.1:9191", extAuthzTLSMTLS, ":15012", true, false},
		{"10.0.0.1:15012", extAuthzTLSPlaintext, ":15012", false, false},
		{"10.0.0.1:15012", "tls", ":15012", false, true},
		{"ward:15012", extAuthzTLSAuto, ":15012", false, true},
	} {
		got, err := extAuthzTarget(serveOptions{authzReach: tc.target, authzTLS: tc.mode, secureAddr: tc.secure})
		if (err != nil) != tc.wantErr {
			t.Errorf("%s %s: error %v, want error %v", tc.target, tc.mode, err, tc.wantErr)
			continue
		}
		if err == nil && got.TLS != tc.wantTLS {
			t.Errorf("%s %s (secure %s): TLS %v, want %v", tc.target, tc.mode, tc.secure, got.TLS, tc.wantTLS)
		}
	}
	if got, err := extAuthzTarget(serveOptions{authzTLS: extAuthzTLSAuto}); got != nil || err != nil {
		t.Errorf("no target: %v %v, want none", got, err)
	}
}
