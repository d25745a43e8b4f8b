package editdist

import "testing"

func TestOSA(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"same", "same", 0},
		{"STRIKT", "STRICT", 1}, {"slector", "selector", 1},
		{"ab", "ba", 1}, {"abcd", "acbd", 1}, // one transposition, not two substitutions
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // optimal string alignment: no edit of a transposed pair
	} {
		if got := OSA(c.a, c.b); got != c.d {
			t.Errorf("OSA(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
