package mesh

import "strings"

// Protocol is an application protocol as Istio names it on a port.
type Protocol string

// Protocols Istio recognises on ports (ServiceEntry ports, Gateway servers).
const (
	ProtocolHTTP    Protocol = "HTTP"
	ProtocolHTTP2   Protocol = "HTTP2"
	ProtocolHTTPS   Protocol = "HTTPS"
	ProtocolGRPC    Protocol = "GRPC"
	ProtocolGRPCWeb Protocol = "GRPC-Web"
	ProtocolTCP     Protocol = "TCP"
	ProtocolTLS     Protocol = "TLS"
	ProtocolMongo   Protocol = "Mongo"
	ProtocolMySQL   Protocol = "MySQL"
	ProtocolRedis   Protocol = "Redis"
	ProtocolUDP     Protocol = "UDP"
	ProtocolUnknown Protocol = ""
)

var protocols = map[string]Protocol{
	"http": ProtocolHTTP, "http2": ProtocolHTTP2, "https": ProtocolHTTPS,
	"grpc": ProtocolGRPC, "grpc-web": ProtocolGRPCWeb, "tcp": ProtocolTCP,
	"tls": ProtocolTLS, "mongo": ProtocolMongo, "mysql": ProtocolMySQL,
	"redis": ProtocolRedis, "udp": ProtocolUDP,
}

// ParseProtocol parses a protocol name case-insensitively; unknown names
// give ProtocolUnknown.
func ParseProtocol(s string) Protocol { return protocols[strings.ToLower(s)] }

// ProtocolFromPort returns the declared protocol, or the one implied by an
// Istio port-name prefix ("http-web", "grpc"), or ProtocolUnknown.
func ProtocolFromPort(protocol, name string) Protocol {
	if p := ParseProtocol(protocol); p != ProtocolUnknown {
		return p
	}
	prefix, _, _ := strings.Cut(name, "-")
	return ParseProtocol(prefix)
}

// IsHTTP reports whether the protocol is served by an HTTP connection manager.
func (p Protocol) IsHTTP() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolGRPCWeb:
		return true
	}
	return false
}

// IsTCP reports whether the protocol is proxied as opaque TCP (including TLS
// passthrough and unknown protocols).
func (p Protocol) IsTCP() bool { return !p.IsHTTP() && p != ProtocolUDP }
