// Package audit owns Ward's compliance model — mTLS and authorization
// coverage, JWT-guarded ingress, the certificate inventory, decision
// statistics, findings mapped to control ids and the STRICT-readiness list —
// built only from the matching code the translators use (authn, authz, ca),
// and its renderers: text, JSON, Markdown and self-contained HTML.
package audit
