package image

import "testing"

func TestH1Hex(t *testing.T) {
	got, ok := h1Hex("h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	if !ok || got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("h1Hex = %q %v", got, ok)
	}
	for _, bad := range []string{"", "h1:", "h1:!!", "h2:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "h1:AAAA"} {
		if _, ok := h1Hex(bad); ok {
			t.Errorf("h1Hex(%q) accepted", bad)
		}
	}
}
