package main

import "testing"

func TestTag(t *testing.T) {
	for in, want := range map[string]string{
		"v0.3.0":             "v0.3.0",
		"ed3686f0a1b2-dirty": "ed3686f0a1b2-dirty",
		"release/v1+meta":    "release-v1-meta",
		"-x":                 "v-x",
		"":                   "v",
	} {
		if got := tag(in); got != want {
			t.Errorf("tag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSelection(t *testing.T) {
	specs, platforms, err := selection(options{images: "ward-agent, ward", platforms: "linux/amd64,linux/arm64"})
	if err != nil || len(specs) != 2 || specs[0].Name != "ward-agent" || len(platforms) != 2 || platforms[1].Architecture != "arm64" {
		t.Errorf("selection = %v %v %v", specs, platforms, err)
	}
	for _, bad := range []options{{images: "envoy", platforms: "linux/amd64"}, {images: "ward", platforms: "amd64"}} {
		if _, _, err := selection(bad); err == nil {
			t.Errorf("selection(%+v) accepted", bad)
		}
	}
}
