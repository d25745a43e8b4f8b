package version

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testBuildInfo() *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8", Path: "github.com/wardmesh/ward/cmd/ward",
		Main: debug.Module{Path: "github.com/wardmesh/ward", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "google.golang.org/grpc", Version: "v1.85.0", Sum: "h1:abc="},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/new", Version: "v1.0.1", Sum: "h1:def="}},
		},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		},
	}
}

func TestFromBuildInfo(t *testing.T) {
	got := FromBuildInfo(testBuildInfo(), Stamp{Revision: "ignored", Modified: false})
	want := Info{
		Version: "dev", GoVersion: "go1.26.8", Platform: "linux/arm64",
		Revision: "0123abcd", RevisionAt: "2026-12-01T10:00:00Z", Modified: true,
		Path: "github.com/wardmesh/ward/cmd/ward", Module: "github.com/wardmesh/ward",
		Modules: []Module{
			{Path: "google.golang.org/grpc", Version: "v1.85.0", Sum: "h1:abc="},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &Module{Path: "example.com/new", Version: "v1.0.1", Sum: "h1:def="}},
		},
		BuildConfig: []string{"GOOS=linux", "GOARCH=arm64", "vcs.revision=0123abcd", "vcs.time=2026-12-01T10:00:00Z", "vcs.modified=true"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("FromBuildInfo (-want +got):\n%s", d)
	}
	if v := FromBuildInfo(testBuildInfo(), Stamp{Version: "v1.2.3"}).Version; v != "v1.2.3" {
		t.Errorf("stamped version = %q", v)
	}
	bi := testBuildInfo()
	bi.Main.Version = "v1.4.0"
	if v := FromBuildInfo(bi, Stamp{}).Version; v != "v1.4.0" {
		t.Errorf("module version = %q", v)
	}
	if v := FromBuildInfo(nil, Stamp{}); v.Version != "dev" || v.GoVersion == "" {
		t.Errorf("no build info: %+v", v)
	}
	// No VCS stamp from the toolchain (a git worktree): the linker's stamp.
	bi = testBuildInfo()
	bi.Settings = bi.Settings[:2]
	v := FromBuildInfo(bi, Stamp{Revision: "feed", RevisionTime: "2026-12-02T00:00:00Z", Modified: true})
	if v.Revision != "feed" || v.RevisionAt != "2026-12-02T00:00:00Z" || !v.Modified {
		t.Errorf("linker VCS stamp not used: %+v", v)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := FromBuildInfo(testBuildInfo(), Stamp{Version: "v1.2.3"}).WriteText(&b, true); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"version:   v1.2.3", "revision:  0123abcd (modified)", "time:      2026-12-01T10:00:00Z",
		"go:        go1.26.8", "platform:  linux/arm64", "dep:       google.golang.org/grpc v1.85.0 h1:abc="} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("no line %q in:\n%s", line, b.String())
		}
	}
}
