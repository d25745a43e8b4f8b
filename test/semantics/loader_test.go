package semantics

import (
	"net/netip"
	"testing"

	"github.com/wardmesh/ward/authz/authztest"
)

// The suite's data format and loader are authz's (authztest).
type (
	suiteFile    = authztest.SemanticsFile
	suiteCase    = authztest.Case
	suiteRequest = authztest.Request
)

func loadSuite(t *testing.T) map[string]suiteFile { return authztest.LoadSemantics(t) }

func loadSuiteTB(t testing.TB) map[string]suiteFile { return authztest.LoadSemantics(t) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
