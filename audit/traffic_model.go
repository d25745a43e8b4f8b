package audit

import "time"

// Traffic is what call records show crossed the wire: the evidence
// window, who called whom (edges), plaintext calls per namespace,
// callers per workload, denied calls and calls allowed only because no
// ALLOW policy applies.
type Traffic struct {
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	Calls   int       `json:"calls"`
	Allowed int       `json:"allowed"`
	Denied  int       `json:"denied"`
	// Plaintext counts calls without a peer certificate.
	Plaintext int `json:"plaintext"`
	// Unattributed counts records naming no destination principal
	// (client-side records): they are in Calls and Edges only.
	Unattributed int           `json:"unattributed"`
	Edges        []TrafficEdge `json:"edges"`
	// PlaintextByNamespace is the observed STRICT-readiness list: per
	// destination namespace, the plaintext calls still seen.
	PlaintextByNamespace []NamespacePlaintext `json:"plaintextByNamespace"`
	// Callers are, per destination identity, the identities (or
	// plaintext addresses) that called it.
	Callers []IdentityCallers `json:"callers"`
	// DeniedCalls are the edges with denials.
	DeniedCalls []TrafficEdge `json:"deniedCalls"`
	// OpenAllowed are allowed calls to workloads no enforced ALLOW policy
	// covers: allowed only because nothing restricts them.
	OpenAllowed []TrafficEdge `json:"allowedWithoutAllowPolicy"`
}

// TrafficEdge aggregates the calls from one source to one destination
// over one protocol and security.
type TrafficEdge struct {
	// Source is the caller's SPIFFE ID, or "plaintext <address>" (or
	// "plaintext") without a certificate.
	Source string `json:"source"`
	// Destination is the called workload's SPIFFE ID, else its cluster.
	Destination string    `json:"destination"`
	Protocol    string    `json:"protocol"`
	MTLS        bool      `json:"mtls"`
	Allowed     int       `json:"allowed"`
	Denied      int       `json:"denied"`
	FirstSeen   time.Time `json:"firstSeen"`
	LastSeen    time.Time `json:"lastSeen"`
	// Policies are the deciding policies of the denials (or, for
	// allowed calls, of the allows), as the proxies reported them.
	Policies []string `json:"policies,omitempty"`
}

// NamespacePlaintext lists the plaintext calls into one namespace.
type NamespacePlaintext struct {
	Namespace string        `json:"namespace"`
	Calls     int           `json:"calls"`
	Edges     []TrafficEdge `json:"edges"`
}

// IdentityCallers lists who called one destination identity.
type IdentityCallers struct {
	Destination string `json:"destination"`
	// Workloads are the config's workloads with that identity.
	Workloads []string `json:"workloads,omitempty"`
	Callers   []Count  `json:"callers"`
}
