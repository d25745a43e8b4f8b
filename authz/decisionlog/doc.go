// Package decisionlog writes authorization decisions as JSON lines: one
// entry per decision with its id, time, workload, principals, request,
// verdict, deciding policy and rule, dry-run and audit flags and latency.
// Sensitive headers are masked, the write rate is bounded by a token
// bucket and files are rotated by size (internal/rotate).
package decisionlog
