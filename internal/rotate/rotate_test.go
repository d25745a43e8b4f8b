package rotate

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRotateKeepsBoundedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.log")
	f, err := Open(path, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n"} {
		if _, err := f.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"": "gggg\n", ".1": "eeee\nffff\n", ".2": "cccc\ndddd\n"}
	for suffix, content := range want {
		b, err := os.ReadFile(path + suffix)
		if err != nil || !bytes.Equal(b, []byte(content)) {
			t.Errorf("%s = %q, %v; want %q", path+suffix, b, err, content)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists: more than MaxFiles kept", path)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("write after close succeeded")
	}
}

func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.log")
	for _, s := range []string{"one\n", "two\n"} {
		f, err := Open(path, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(s))
		f.Close()
	}
	if b, _ := os.ReadFile(path); string(b) != "one\ntwo\n" {
		t.Errorf("content %q", b)
	}
}
