package schema

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

func init() { validators[mesh.KindGateway] = validateGateway }

func validateGateway(c *mesh.Config, e *errs) {
	gw, ok := c.Spec.(*networking.Gateway)
	if !ok {
		wrongType(e, c, "*v1alpha3.Gateway")
		return
	}
	if !dns1123Label.MatchString(c.Name) || len(c.Name) > 63 {
		e.add("metadata.name", "invalid gateway name %q: must be a DNS-1123 label (no dots)", c.Name)
	}
	if len(gw.GetServers()) == 0 {
		e.add("spec.servers", "gateway must have at least one server")
	}
	portNames := map[string]int{}
	for i, s := range gw.GetServers() {
		p := idx("spec.servers", i)
		if s == nil {
			e.add(p, "server must not be null")
			continue
		}
		checkServer(e, p, s)
		if s.GetPort() == nil {
			continue
		}
		if first, dup := portNames[s.GetPort().GetName()]; dup {
			e.add(p+".port.name", "port names in servers must be unique: %q is also used by spec.servers[%d]", s.GetPort().GetName(), first)
		} else {
			portNames[s.GetPort().GetName()] = i
		}
		if !mesh.ParseProtocol(s.GetPort().GetProtocol()).IsHTTP() && s.GetTls().GetHttpsRedirect() {
			e.warn(p+".tls.httpsRedirect", "httpsRedirect should only be used with HTTP servers")
		}
	}
}

func isTLSProtocol(p string) bool {
	pr := mesh.ParseProtocol(p)
	return pr == mesh.ProtocolHTTPS || pr == mesh.ProtocolTLS
}

func checkServer(e *errs, p string, s *networking.Server) {
	if len(s.GetHosts()) == 0 {
		e.add(p+".hosts", "server must have at least one host")
	}
	for i, h := range s.GetHosts() {
		addAll(e, idx(p+".hosts", i), NamespacedHost(h, true))
	}
	portOK := checkServerPort(e, p+".port", s.GetPort(), s.GetBind())
	checkServerBind(e, p+".bind", s.GetPort(), s.GetBind())
	checkServerTLS(e, p+".tls", s.GetTls())
	if !portOK {
		return
	}
	proto := s.GetPort().GetProtocol()
	tls := s.GetTls()
	switch {
	case isTLSProtocol(proto) && tls == nil:
		e.add(p+".tls", "server must have TLS settings for %s port %d", proto, s.GetPort().GetNumber())
	case !isTLSProtocol(proto) && tls != nil && mesh.ParseProtocol(proto).IsHTTP():
		passthrough := tls.GetMode() == networking.ServerTLSSettings_PASSTHROUGH || tls.GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH
		if !passthrough || tls.GetCaCertificates() != "" || tls.GetPrivateKey() != "" || tls.GetServerCertificate() != "" {
			e.add(p+".tls", "server cannot have TLS settings for plain text HTTP port %d (only httpsRedirect)", s.GetPort().GetNumber())
		}
	case !isTLSProtocol(proto) && tls != nil:
		e.add(p+".tls", "server cannot have TLS settings for non-HTTPS/TLS protocol %q", proto)
	}
}

// checkServerPort reports whether the port is usable for the TLS checks.
func checkServerPort(e *errs, p string, port *networking.Port, bind string) bool {
	if port == nil {
		e.add(p, "port is required")
		return false
	}
	ok := true
	if mesh.ParseProtocol(port.GetProtocol()) == mesh.ProtocolUnknown {
		e.add(p+".protocol", "invalid protocol %q, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, HTTPS, TLS, TCP, MONGO, REDIS, MYSQL", port.GetProtocol())
		ok = false
	}
	if port.GetNumber() > 0 || !strings.HasPrefix(bind, unixPrefix) {
		if n := port.GetNumber(); n < 1 || n > 65535 {
			checkPort(e, p+".number", int64(n))
			ok = false
		}
	}
	if port.GetTargetPort() > 0 { //nolint:staticcheck // rejected as Istio does
		e.add(p+".targetPort", "targetPort has no effect on gateways")
		ok = false
	}
	if port.GetName() == "" {
		e.add(p+".name", "port name must be set")
		ok = false
	}
	return ok
}

func checkServerBind(e *errs, p string, port *networking.Port, bind string) {
	if rest, ok := strings.CutPrefix(bind, unixPrefix); ok {
		checkErr(e, p, unixAddress(rest))
		if port.GetNumber() != 0 {
			e.add(p, "port number must be 0 for a unix domain socket bind, got %d", port.GetNumber())
		}
	} else if bind != "" && !isIP(bind) {
		e.add(p, "bind %q is not a valid IP address", bind)
	}
}

// cipherSuites Envoy (BoringSSL) accepts in server.tls.cipherSuites.
var cipherSuites = map[string]bool{
	"ECDHE-ECDSA-AES128-GCM-SHA256": true, "ECDHE-RSA-AES128-GCM-SHA256": true,
	"ECDHE-ECDSA-AES256-GCM-SHA384": true, "ECDHE-RSA-AES256-GCM-SHA384": true,
	"ECDHE-ECDSA-CHACHA20-POLY1305": true, "ECDHE-RSA-CHACHA20-POLY1305": true,
	"ECDHE-ECDSA-AES128-SHA": true, "ECDHE-RSA-AES128-SHA": true, "ECDHE-ECDSA-AES256-SHA": true,
	"ECDHE-RSA-AES256-SHA": true, "AES128-GCM-SHA256": true, "AES256-GCM-SHA384": true,
	"AES128-SHA": true, "AES256-SHA": true, "DES-CBC3-SHA": true,
}

func checkServerTLS(e *errs, p string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	checkCiphers(e, p, t)
	checkServerTLSExtras(e, p, t)
	credName := t.GetCredentialName() != "" || len(t.GetCredentialNames()) > 0
	if boolCount(t.GetCredentialName() != "", len(t.GetCredentialNames()) > 0, len(t.GetTlsCertificates()) > 0) > 1 {
		e.add(p, "only one of credentialName, credentialNames or tlsCertificates can be set")
	}
	if len(t.GetCredentialNames()) > 2 || len(t.GetTlsCertificates()) > 2 {
		e.add(p, "at most 2 credentialNames or tlsCertificates (one RSA, one ECDSA)")
	}
	switch t.GetMode() {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		for _, f := range []struct{ name, v string }{
			{"serverCertificate", t.GetServerCertificate()}, {"privateKey", t.GetPrivateKey()},
			{"caCertificates", t.GetCaCertificates()}, {"credentialName", t.GetCredentialName()},
		} {
			if f.v != "" {
				e.add(p+"."+f.name, "ISTIO_MUTUAL TLS cannot have an associated %s", f.name)
			}
		}
		return
	case networking.ServerTLSSettings_PASSTHROUGH, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		if t.GetCaCrl() != "" || t.GetServerCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" || credName {
			e.warn(p, "%s mode does not use certificates, they will be ignored", t.GetMode())
		}
		return
	}
	checkServerCerts(e, p, t, credName)
}

func checkCiphers(e *errs, p string, t *networking.ServerTLSSettings) {
	v := t.GetMinProtocolVersion()
	if (v == networking.ServerTLSSettings_TLSV1_0 || v == networking.ServerTLSSettings_TLSV1_1) && len(t.GetCipherSuites()) == 0 {
		e.warn(p+".minProtocolVersion", "TLS versions below TLSV1_2 require compatible cipherSuites to be set")
	}
	seen := map[string]bool{}
	for i, cs := range t.GetCipherSuites() {
		custom := cs == "" || cs == "ALL" || !(cs[0] >= 'A' && cs[0] <= 'Z' || cs[0] >= 'a' && cs[0] <= 'z' || cs[0] >= '0' && cs[0] <= '9')
		switch {
		case !custom && !cipherSuites[cs]:
			e.warn(idx(p+".cipherSuites", i), "ignoring invalid cipher suite %q", cs)
		case seen[cs]:
			e.warn(idx(p+".cipherSuites", i), "ignoring duplicate cipher suite %q", cs)
		}
		seen[cs] = true
	}
}

func checkServerCerts(e *errs, p string, t *networking.ServerTLSSettings, credName bool) {
	mode := t.GetMode()
	mutual := mode == networking.ServerTLSSettings_MUTUAL || mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	if t.GetCaCrl() != "" {
		if credName {
			e.add(p+".caCrl", "caCrl is not supported with credentialName; put the CRL in the credential")
		}
		if mode == networking.ServerTLSSettings_SIMPLE {
			e.add(p+".caCrl", "caCrl is not supported with SIMPLE TLS")
		}
	}
	if credName || len(t.GetTlsCertificates()) > 0 {
		return
	}
	if mode == networking.ServerTLSSettings_SIMPLE || mutual {
		if t.GetServerCertificate() == "" {
			e.add(p+".serverCertificate", "%s TLS requires serverCertificate (or credentialName)", mode)
		}
		if t.GetPrivateKey() == "" {
			e.add(p+".privateKey", "%s TLS requires privateKey (or credentialName)", mode)
		}
	}
	if mutual && t.GetCaCertificates() == "" {
		e.add(p+".caCertificates", "%s TLS requires caCertificates (or credentialName)", mode)
	}
}

func boolCount(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
