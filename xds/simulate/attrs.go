package simulate

import (
	"net/netip"
	"strings"
)

// attrs is what filters see of a connection and, once the HCM runs, of
// the request.
type attrs struct {
	req      *Request
	ssl      bool // TLS terminated by the chain's transport socket
	srcIP    netip.Addr
	dstIP    netip.Addr
	remoteIP netip.Addr
	sni      string
	http     bool
	headers  map[string]string // lower-case keys, pseudo-headers included
	path     string            // :path after normalisation, query included
	meta     metadata
}

func newConnAttrs(req *Request) *attrs {
	a := &attrs{req: req, meta: metadata{}, sni: req.SNI}
	a.srcIP, _ = netip.ParseAddr(req.SrcIP)
	a.dstIP, _ = netip.ParseAddr(req.DstIP)
	a.remoteIP = a.srcIP
	if req.RemoteIP != "" {
		a.remoteIP, _ = netip.ParseAddr(req.RemoteIP)
	}
	if !req.TLS {
		a.sni = ""
	}
	return a
}

// urlPath is the path without query, as RBAC url_path sees it.
func (a *attrs) urlPath() string {
	p, _, _ := strings.Cut(a.path, "?")
	return p
}

// peerNames are the peer certificate's names in the order Envoy's
// authenticated principal matcher tries them: URI SANs, DNS SANs, subject.
func (a *attrs) peerNames() []string {
	var out []string
	if a.req.PeerURISAN != "" {
		out = append(out, a.req.PeerURISAN)
	}
	out = append(out, a.req.PeerDNSSANs...)
	if a.req.PeerSubject != "" {
		out = append(out, a.req.PeerSubject)
	}
	return out
}
