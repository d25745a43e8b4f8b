package authz

import (
	"errors"
	"testing"

	"github.com/wardmesh/ward/mesh"
)

// TestNormalizePath holds NormalizePath to what Envoy's HCM does at each
// of Istio's levels (normalize_path = Chromium's path canonicaliser,
// merge_slashes, path_with_escaped_slashes_action UNESCAPE_AND_FORWARD).
func TestNormalizePath(t *testing.T) {
	const (
		none   = mesh.PathNormalizationNone
		base   = mesh.PathNormalizationBase
		merge  = mesh.PathNormalizationMergeSlashes
		decode = mesh.PathNormalizationDecodeAndMergeSlashes
	)
	bad := "<rejected>"
	for _, tc := range []struct {
		in                        string
		none, base, merge, decode string
	}{
		{"/a/b", "/a/b", "/a/b", "/a/b", "/a/b"},
		{"/a/b?x=/../y", "/a/b", "/a/b", "/a/b", "/a/b"},
		{"/a/../b", "/a/../b", "/b", "/b", "/b"},
		{"/public/../admin", "/public/../admin", "/admin", "/admin", "/admin"},
		{"/a/./b", "/a/./b", "/a/b", "/a/b", "/a/b"},
		{"/../a", "/../a", "/a", "/a", "/a"},
		{"/a/b/..", "/a/b/..", "/a/", "/a/", "/a/"},
		{"/a/.", "/a/.", "/a/", "/a/", "/a/"},
		{"/a/..x/.y", "/a/..x/.y", "/a/..x/.y", "/a/..x/.y", "/a/..x/.y"},
		{"/a/...", "/a/...", "/a/...", "/a/...", "/a/..."},
		{"/a/%2e%2e/admin", "/a/%2e%2e/admin", "/admin", "/admin", "/admin"},
		{"/a/%2E./admin", "/a/%2E./admin", "/admin", "/admin", "/admin"},
		{"/a%2eb", "/a%2eb", "/a.b", "/a.b", "/a.b"},
		{"/%61dmin", "/%61dmin", "/admin", "/admin", "/admin"},
		{"/%41%7e%2D%5f%30", "/%41%7e%2D%5f%30", "/A~-_0", "/A~-_0", "/A~-_0"},
		{"/a%20b", "/a%20b", "/a%20b", "/a%20b", "/a%20b"},
		{"/a%zzb%", "/a%zzb%", "/a%zzb%", "/a%zzb%", "/a%zzb%"},
		{"/a{b}|^`\"<>", "/a{b}|^`\"<>", "/a%7Bb%7D%7C%5E%60%22%3C%3E", "/a%7Bb%7D%7C%5E%60%22%3C%3E", "/a%7Bb%7D%7C%5E%60%22%3C%3E"},
		{"/caf\xc3\xa9", "/caf\xc3\xa9", "/caf%C3%A9", "/caf%C3%A9", "/caf%C3%A9"},
		{"//admin", "//admin", "//admin", "/admin", "/admin"},
		{"/a//b///c/", "/a//b///c/", "/a//b///c/", "/a/b/c/", "/a/b/c/"},
		{"/admin/", "/admin/", "/admin/", "/admin/", "/admin/"},
		{"/a\\..\\admin", "/a\\..\\admin", "/admin", "/admin", "/admin"},
		{"/x\\admin", "/x\\admin", "/x/admin", "/x/admin", "/x/admin"},
		{"/a%2Fadmin", "/a%2Fadmin", "/a%2Fadmin", "/a%2Fadmin", "/a/admin"},
		{"/a%2f..%2fadmin", "/a%2f..%2fadmin", "/a%2f..%2fadmin", "/a%2f..%2fadmin", "/admin"},
		{"/a%5cb", "/a%5cb", "/a%5cb", "/a%5cb", "/a/b"},
		{"/%2F%2Fadmin", "/%2F%2Fadmin", "/%2F%2Fadmin", "/%2F%2Fadmin", "/admin"},
		{"/a%00b", "/a%00b", bad, bad, bad},
		{"admin", bad, bad, bad, bad},
		{"", bad, bad, bad, bad},
		{"*", bad, bad, bad, bad},
		{"/a#frag", bad, bad, bad, bad},
		{"/a b", bad, bad, bad, bad},
		{"/a\tb", bad, bad, bad, bad},
		{"/a\x7fb", bad, bad, bad, bad},
	} {
		for level, want := range map[mesh.PathNormalization]string{none: tc.none, base: tc.base, merge: tc.merge, decode: tc.decode} {
			got, err := NormalizePath(tc.in, level)
			if want == bad {
				if !errors.Is(err, ErrBadPath) {
					t.Errorf("NormalizePath(%q, %s) = %q, %v; want ErrBadPath", tc.in, level, got, err)
				}
				continue
			}
			if err != nil || got != want {
				t.Errorf("NormalizePath(%q, %s) = %q, %v; want %q", tc.in, level, got, err, want)
			}
			// Envoy normalises once; normalising its output again must
			// not change it (the ext_authz server re-normalises what the
			// HCM already did).
			if again, err := NormalizePath(got, level); err != nil || again != got {
				t.Errorf("NormalizePath(%q, %s) not idempotent: %q -> %q, %v", tc.in, level, got, again, err)
			}
		}
	}
	if _, err := NormalizePath("/a", "SOMETIMES"); err == nil {
		t.Error("an unknown level normalised")
	}
	if got, err := NormalizePath("/a/../b", ""); err != nil || got != "/b" {
		t.Errorf("the empty level is not BASE: %q %v", got, err)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/a/../b", "/%2e%2e/x", "//a\\b%2F%5c", "/a?b#c", "/%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, level := range []mesh.PathNormalization{mesh.PathNormalizationNone, mesh.PathNormalizationBase, mesh.PathNormalizationMergeSlashes, mesh.PathNormalizationDecodeAndMergeSlashes} {
			got, err := NormalizePath(p, level)
			if err != nil {
				continue
			}
			if got == "" || got[0] != '/' {
				t.Fatalf("NormalizePath(%q, %s) = %q: not absolute", p, level, got)
			}
			if level != mesh.PathNormalizationNone {
				if again, err := NormalizePath(got, level); err != nil || again != got {
					t.Fatalf("NormalizePath(%q, %s) = %q, again %q %v", p, level, got, again, err)
				}
			}
		}
	})
}
