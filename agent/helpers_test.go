package agent

import (
	"context"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
)

func mustID(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// staticReviewer accepts "sa-token" as kns/ksa with the ward-ca audience.
type staticReviewer struct{}

func (staticReviewer) Review(_ context.Context, tok string, aud []string) (*authnv1.TokenReview, error) {
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok, Audiences: aud}}
	if tok == "sa-token" {
		tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: aud,
			User: authnv1.UserInfo{Username: "system:serviceaccount:kns:ksa"}}
	}
	return tr, nil
}
