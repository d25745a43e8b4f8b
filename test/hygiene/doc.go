// Package hygiene holds repository-wide checks: every package documents what
// it owns, and imports flow one way (sources → mesh → translators →
// servers → cmd).
package hygiene
