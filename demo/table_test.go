package demo

import (
	"strings"
	"testing"
)

func allExpected() []Event {
	return []Event{
		{From: "outsider", To: "reviews-v1", Method: MethodReviewsList, Caller: "plaintext, no identity", Code: "Unavailable"},
		{From: "frontend", To: "reviews", Served: "v1", Method: MethodReviewsList, Caller: "mTLS as frontend", Code: "OK", Rule: "r"},
		{From: "reviews-v2", To: "ratings", Method: MethodRatingsGet, Caller: "mTLS as reviews", Code: "OK", Rule: "r"},
		{From: "frontend", To: "ratings", Method: MethodRatingsGet, Caller: "mTLS as frontend", Code: "PermissionDenied", Rule: "deny"},
		{From: "frontend", To: "ratings", Method: MethodRatingsAdm, Caller: "mTLS as frontend, no token", Code: "PermissionDenied"},
		{From: "frontend", To: "ratings", Method: MethodRatingsAdm, Caller: "mTLS as frontend + ops JWT", Code: "OK"},
		{From: "frontend", To: "details", Method: MethodDetailsGet, Caller: "mTLS as frontend", Code: "OK"},
	}
}

func TestCheckPassesWhenEveryOutcomeWasSeen(t *testing.T) {
	var b strings.Builder
	tb, res := newTable(&b), &Result{}
	for _, ev := range allExpected() {
		tb.row(ev, res)
		tb.row(ev, res) // a repeat is counted, not printed again
	}
	if err := tb.check(res); err != nil {
		t.Fatalf("check: %v\n%s", err, b.String())
	}
	if res.Allowed != 8 || res.Denied != 4 || res.Refused != 2 || res.Failed != 0 {
		t.Fatalf("counts %+v", res)
	}
	if n := strings.Count(b.String(), "ratings-deny") + strings.Count(b.String(), " deny\n"); n != 1 {
		t.Fatalf("the DENY row was printed %d times:\n%s", n, b.String())
	}
}

func TestCheckNamesWhatWasNotSeen(t *testing.T) {
	evs := allExpected()
	// The JWT call was denied instead of allowed, and one call errored.
	evs[5].Code = "PermissionDenied"
	evs = append(evs, Event{From: "frontend", To: "reviews", Method: MethodReviewsList, Code: "Unavailable", Rule: "no healthy upstream"})
	var b strings.Builder
	tb, res := newTable(&b), &Result{}
	for _, ev := range evs {
		tb.row(ev, res)
	}
	err := tb.check(res)
	if err == nil {
		t.Fatal("check passed without the allowed JWT call")
	}
	for _, want := range []string{"admin method with the ops JWT is allowed", "1 calls failed with errors"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !strings.Contains(b.String(), "ERROR     Unavailable: no healthy upstream") {
		t.Errorf("the failed call is not shown as an ERROR row:\n%s", b.String())
	}
}
