package cli

import (
	"net"
	"testing"
)

// TestServeDefaultBinds: plaintext ADS and the debug server listen on
// loopback unless told otherwise, and Kubernetes mode serves no plaintext
// ADS unless --xds-addr is given.
func TestServeDefaultBinds(t *testing.T) {
	cmd := newServeCmd()
	for _, name := range []string{"xds-addr", "debug-addr"} {
		def := cmd.Flags().Lookup(name).DefValue
		host, _, err := net.SplitHostPort(def)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("--%s defaults to %q, want a loopback address", name, def)
		}
	}
	if def := cmd.Flags().Lookup("debug-tls-addr").DefValue; def != "" {
		t.Errorf("--debug-tls-addr defaults to %q, want disabled", def)
	}
	o := serveOptions{xdsAddr: "127.0.0.1:15010"}
	if got := plainXDSAddr(o); got != o.xdsAddr {
		t.Errorf("file mode: plaintext ADS on %q, want %q", got, o.xdsAddr)
	}
	o.kube.enabled = true
	if got := plainXDSAddr(o); got != "" {
		t.Errorf("--kube without --xds-addr: plaintext ADS on %q, want off", got)
	}
	o.xdsAddrSet = true
	if got := plainXDSAddr(o); got != o.xdsAddr {
		t.Errorf("--kube with --xds-addr: plaintext ADS on %q, want %q", got, o.xdsAddr)
	}
}
