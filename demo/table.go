package demo

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// table prints calls as they happen: every kind of call (who, to whom,
// how, outcome, deciding rule) on the first time it is seen, and counts of
// all of them at the end.
type table struct {
	mu     sync.Mutex
	out    io.Writer
	start  time.Time
	seen   map[string]int // row key → count
	order  []string
	events map[string]Event
}

func newTable(out io.Writer) *table {
	return &table{out: out, start: time.Now(), seen: map[string]int{}, events: map[string]Event{}}
}

const rowFormat = "  %-6s  %-10s  %-13s  %-13s  %-27s  %-8s  %s\n"

func (t *table) header() {
	fmt.Fprintf(t.out, "\nCalls (each kind printed the first time it happens; all of them counted below)\n\n")
	fmt.Fprintf(t.out, rowFormat, "TIME", "FROM", "TO", "METHOD", "CALLER", "RESULT", "DECIDED BY")
}

func (t *table) phase(name string) {
	fmt.Fprintf(t.out, "  -- %s\n", name)
}

// verdict names the outcome of a call.
func verdict(ev Event) string {
	switch {
	case ev.Code == "OK":
		return "ALLOW"
	case ev.From == "outsider":
		return "REFUSED"
	case ev.Code == "PermissionDenied":
		return "DENY"
	case ev.Code == "Unauthenticated":
		return "DENY 401"
	}
	return "ERROR"
}

func shortMethod(m string) string { return strings.TrimPrefix(m, "/bookinfo.") }

func dest(ev Event) string {
	if ev.Served != "" {
		return ev.To + " (" + ev.Served + ")"
	}
	return ev.To
}

func (t *table) row(ev Event, res *Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch verdict(ev) {
	case "ALLOW":
		res.Allowed++
	case "REFUSED":
		res.Refused++
	case "ERROR":
		res.Failed++
	default:
		res.Denied++
	}
	key := strings.Join([]string{ev.From, dest(ev), ev.Method, ev.Caller, ev.Code, ev.Rule}, "\x00")
	t.seen[key]++
	if t.seen[key] > 1 {
		return
	}
	t.order = append(t.order, key)
	t.events[key] = ev
	rule := ev.Rule
	if verdict(ev) == "ERROR" {
		rule = ev.Code + ": " + rule
	}
	fmt.Fprintf(t.out, rowFormat, fmt.Sprintf("%.1fs", time.Since(t.start).Seconds()), ev.From, dest(ev), shortMethod(ev.Method), ev.Caller, verdict(ev), rule)
}

// summary prints the counts of every kind of call and the canary split.
func (t *table) summary(res *Result) {
	if res == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "\nTotals: %d allowed, %d denied, %d refused, %d failed\n", res.Allowed, res.Denied, res.Refused, res.Failed)
	tw := tabwriter.NewWriter(t.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  COUNT\tFROM\tTO\tMETHOD\tCALLER\tRESULT")
	for _, k := range t.order {
		ev := t.events[k]
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", t.seen[k], ev.From, dest(ev), shortMethod(ev.Method), ev.Caller, verdict(ev))
	}
	tw.Flush()
	fmt.Fprintln(t.out, "\nCanary (answers from reviews by subset; a phase starts when its VirtualService is written)")
	for i, p := range phases {
		var parts []string
		for _, s := range []string{"v1", "v2", "v3"} {
			parts = append(parts, fmt.Sprintf("%s %d", s, res.Split[i][s]))
		}
		fmt.Fprintf(t.out, "  %-24s %s\n", p.name+":", strings.Join(parts, "  "))
	}
}

// expectation is an outcome the demo must have shown.
type expectation struct {
	what                 string
	from, to, method     string
	callerHas, verdictIs string
}

var expectations = []expectation{
	{"strict mTLS refuses plaintext", "outsider", "reviews-v1", MethodReviewsList, "plaintext", "REFUSED"},
	{"frontend may list reviews", "frontend", "reviews", MethodReviewsList, "", "ALLOW"},
	{"reviews may read ratings", "reviews-", "ratings", MethodRatingsGet, "", "ALLOW"},
	{"frontend is denied ratings (DENY policy)", "frontend", "ratings", MethodRatingsGet, "", "DENY"},
	{"admin method without a token is denied", "frontend", "ratings", MethodRatingsAdm, "no token", "DENY"},
	{"admin method with the ops JWT is allowed", "frontend", "ratings", MethodRatingsAdm, "JWT", "ALLOW"},
	{"details, with no ALLOW policy yet, is open to mesh identities", "frontend", "details", MethodDetailsGet, "", "ALLOW"},
}

// check reports each expectation and fails for the unmet ones and for
// calls that ended in errors rather than decisions.
func (t *table) check(res *Result) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(t.out, "\nChecks")
	var errs []error
	for _, x := range expectations {
		ok := slices.ContainsFunc(t.order, func(k string) bool {
			ev := t.events[k]
			return strings.HasPrefix(ev.From, x.from) && ev.To == x.to && ev.Method == x.method &&
				strings.Contains(ev.Caller, x.callerHas) && verdict(ev) == x.verdictIs
		})
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			errs = append(errs, fmt.Errorf("demo: not observed: %s (%s)", x.what, x.verdictIs))
		}
		fmt.Fprintf(t.out, "  %s %s\n", mark, x.what)
	}
	if res.Failed > 0 {
		errs = append(errs, fmt.Errorf("demo: %d calls failed with errors instead of a decision (see ERROR rows)", res.Failed))
	}
	return errors.Join(errs...)
}
