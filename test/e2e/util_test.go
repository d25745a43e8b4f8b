package e2e

import "sync"

var (
	wardOnce sync.Once
	wardPath string
	wardErr  error
)
