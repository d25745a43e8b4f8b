package jwks

import "time"

// Clock is the resolver's time source; tests inject one they advance.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
