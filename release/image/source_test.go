package image

import (
	"context"
	"testing"
	"time"
)

func TestGitSourceDateEpoch(t *testing.T) {
	src, err := GitSource(context.Background(), t.TempDir(), "1767225600")
	if err != nil {
		t.Fatal(err)
	}
	// Not a checkout: no revision, version dev, the given time.
	if src.Revision != "" || src.Version != "dev" || !src.Created.Equal(time.Unix(1767225600, 0)) || src.URL != DefaultSourceURL {
		t.Errorf("GitSource outside a checkout = %+v", src)
	}
	if _, err := GitSource(context.Background(), t.TempDir(), "yesterday"); err == nil {
		t.Error("SOURCE_DATE_EPOCH=yesterday accepted")
	}
}
