// Package version reports what a Ward binary was built from: its version,
// the VCS revision and time the Go toolchain stamped into it, the Go
// version, the platform and every module it links. It reads the binary's
// own build info (runtime/debug), so it costs the slim binaries nothing.
package version

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// These are set by the release build (release/image) with -ldflags
// "-X github.com/wardmesh/ward/internal/version.version=v1.2.3" and so on.
// The release build stamps VCS facts this way (with -buildvcs=false, as the
// toolchain's own stamp differs between a clone and a git worktree of the
// same commit); when the toolchain's stamp is present (go build from a
// clone), it wins.
var (
	version      string
	revision     string
	revisionTime string
	modified     string // "true" or ""
)

// Linker variable names the release build sets with -X.
const (
	LinkerVar             = "github.com/wardmesh/ward/internal/version.version"
	LinkerVarRevision     = "github.com/wardmesh/ward/internal/version.revision"
	LinkerVarRevisionTime = "github.com/wardmesh/ward/internal/version.revisionTime"
	LinkerVarModified     = "github.com/wardmesh/ward/internal/version.modified"
)

// Stamp is what the release build stamps into a binary.
type Stamp struct {
	Version, Revision, RevisionTime string
	Modified                        bool
}

// Info is what `ward version` and `ward-agent version` print.
type Info struct {
	Version     string   `json:"version"`
	GoVersion   string   `json:"goVersion"`
	Platform    string   `json:"platform"`
	Revision    string   `json:"revision,omitempty"`
	RevisionAt  string   `json:"revisionTime,omitempty"`
	Modified    bool     `json:"modified,omitempty"`
	Path        string   `json:"path,omitempty"`
	Module      string   `json:"module,omitempty"`
	Modules     []Module `json:"modules,omitempty"`
	BuildConfig []string `json:"buildSettings,omitempty"`
}

// Module is one module the binary links: its path, version and go.sum hash
// (Replace names the module it was replaced by, if any).
type Module struct {
	Path    string  `json:"path"`
	Version string  `json:"version"`
	Sum     string  `json:"sum,omitempty"`
	Replace *Module `json:"replace,omitempty"`
}

// Get returns the running binary's version information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(bi, Stamp{Version: version, Revision: revision, RevisionTime: revisionTime, Modified: modified == "true"})
}

// FromBuildInfo builds Info from a binary's build info (nil when the
// binary has none) and what the linker stamped (zero if nothing).
// Platform, Go version and VCS facts come from the build info when it
// records them.
func FromBuildInfo(bi *debug.BuildInfo, st Stamp) Info {
	info := Info{Version: st.Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Revision: st.Revision, RevisionAt: st.RevisionTime, Modified: st.Modified}
	if bi == nil {
		if info.Version == "" {
			info.Version = "dev"
		}
		return info
	}
	info.GoVersion, info.Path, info.Module = bi.GoVersion, bi.Path, bi.Main.Path
	if info.Version == "" {
		info.Version = mainVersion(bi.Main.Version)
	}
	if hasVCS(bi.Settings) {
		info.Revision, info.RevisionAt, info.Modified = "", "", false
	}
	applySettings(&info, bi.Settings)
	for _, m := range bi.Deps {
		info.Modules = append(info.Modules, module(m))
	}
	return info
}

// mainVersion is the main module's version, or "dev" for a build from a
// work tree (the toolchain says "(devel)" or nothing).
func mainVersion(v string) string {
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
}

func hasVCS(settings []debug.BuildSetting) bool {
	for _, s := range settings {
		if s.Key == "vcs.revision" {
			return true
		}
	}
	return false
}

func applySettings(info *Info, settings []debug.BuildSetting) {
	var goos, goarch string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.RevisionAt = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
		info.BuildConfig = append(info.BuildConfig, s.Key+"="+s.Value)
	}
	if goos != "" && goarch != "" {
		info.Platform = goos + "/" + goarch
	}
}

func module(m *debug.Module) Module {
	out := Module{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		r := module(m.Replace)
		out.Replace = &r
	}
	return out
}

// WriteText prints info for people: the version, then one "key: value"
// line per known fact, then (with modules) one line per linked module.
func (info Info) WriteText(w io.Writer, modules bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "version:   %s\n", info.Version)
	if info.Revision != "" {
		fmt.Fprintf(&b, "revision:  %s%s\n", info.Revision, map[bool]string{true: " (modified)"}[info.Modified])
	}
	if info.RevisionAt != "" {
		fmt.Fprintf(&b, "time:      %s\n", info.RevisionAt)
	}
	fmt.Fprintf(&b, "go:        %s\n", info.GoVersion)
	fmt.Fprintf(&b, "platform:  %s\n", info.Platform)
	if info.Path != "" {
		fmt.Fprintf(&b, "path:      %s\n", info.Path)
	}
	if modules {
		for _, m := range info.Modules {
			fmt.Fprintf(&b, "dep:       %s %s %s\n", m.Path, m.Version, m.Sum)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Released returns the version the release build stamped into this binary
// (the tag its images carry), or "" for a binary built any other way: a
// toolchain pseudo-version names no image.
func Released() string { return version }
