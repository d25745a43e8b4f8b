package authn

import (
	security "istio.io/api/security/v1beta1"
)

// Mode is a PeerAuthentication mutual TLS mode. The zero value is Unset,
// which inherits from the enclosing level.
type Mode string

// The mutual TLS modes, spelled as in Istio's API.
const (
	ModeUnset      Mode = ""
	ModePermissive Mode = "PERMISSIVE"
	ModeStrict     Mode = "STRICT"
	ModeDisable    Mode = "DISABLE"
)

// String renders the mode; Unset renders as "UNSET".
func (m Mode) String() string {
	if m == ModeUnset {
		return "UNSET"
	}
	return string(m)
}

// modeOf converts an API mtls block; a nil block or UNSET gives ModeUnset.
func modeOf(m *security.PeerAuthentication_MutualTLS) Mode {
	switch m.GetMode() {
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return ModePermissive
	case security.PeerAuthentication_MutualTLS_STRICT:
		return ModeStrict
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return ModeDisable
	}
	return ModeUnset
}

// AcceptsMTLS reports whether a server in this mode terminates mTLS.
func (m Mode) AcceptsMTLS() bool { return m == ModeStrict || m == ModePermissive }

// AcceptsPlaintext reports whether a server in this mode accepts plaintext.
func (m Mode) AcceptsPlaintext() bool { return m == ModePermissive || m == ModeDisable }
