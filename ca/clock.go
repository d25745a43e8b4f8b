package ca

import "time"

// Clock tells the time. Certificate lifetimes, token expiry and rotation
// phases are all evaluated on it, so tests can move time forward.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
