package oci

import (
	"strings"
	"testing"
	"time"

	"github.com/wardmesh/ward/release/image"
)

func TestLinkerFlags(t *testing.T) {
	src := image.Source{Version: "v1.2.3", Revision: "abc", CommitTime: time.Unix(1767225600, 0), Modified: true}
	got, err := linkerFlags(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-s -w -buildid= ", "internal/version.version=v1.2.3", "internal/version.revision=abc",
		"internal/version.revisionTime=2026-01-01T00:00:00Z", "internal/version.modified=true"} {
		if !strings.Contains(got, want) {
			t.Errorf("linker flags %q lack %q", got, want)
		}
	}
	for _, bad := range []string{"", "v1 -X main.evil=1", "v1'", `v1"`} {
		if _, err := linkerFlags(image.Source{Version: bad}); err == nil {
			t.Errorf("version %q accepted", bad)
		}
	}
}
