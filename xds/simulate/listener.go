package simulate

import (
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Istio's capture ports.
const (
	virtualInboundPort  = 15006
	virtualOutboundPort = 15001
)

// selectListener finds the listener that accepts the connection.
func (s *Simulator) selectListener(req *Request, res *Result) *listener.Listener {
	var l *listener.Listener
	switch req.Capture {
	case Inbound:
		l = s.listenerOnPort(virtualInboundPort)
		res.tracef("inbound capture → port %d", virtualInboundPort)
	case Outbound:
		l = s.outboundListener(req, res)
	case API:
		l = s.listenerNamed(req.Target)
	default:
		l = s.boundListener(req.DstIP, req.DstPort, false)
	}
	if l == nil {
		res.finish(NoListener, 0, "no_listener")
		return nil
	}
	res.Listener = l.GetName()
	res.tracef("listener %s", l.GetName())
	return l
}

// outboundListener is the virtualOutbound hand-off: the listener bound to
// the original destination ip:port, else 0.0.0.0:port, else
// virtualOutbound's own chains.
func (s *Simulator) outboundListener(req *Request, res *Result) *listener.Listener {
	vo := s.listenerOnPort(virtualOutboundPort)
	if vo == nil {
		return nil
	}
	if !vo.GetUseOriginalDst().GetValue() {
		return vo
	}
	if l := s.boundListener(req.DstIP, req.DstPort, true); l != nil && l != vo {
		res.tracef("%s hands off to %s (original destination %s:%d)", vo.GetName(), l.GetName(), req.DstIP, req.DstPort)
		return l
	}
	res.tracef("%s: no listener for %s:%d, using its own chains", vo.GetName(), req.DstIP, req.DstPort)
	return vo
}

// boundListener is the listener for ip:port: an exact address first, then
// a wildcard one. Listeners with bind_to_port false only take hand-offs.
func (s *Simulator) boundListener(ip string, port uint32, handoff bool) *listener.Listener {
	var wild *listener.Listener
	for _, l := range s.res.Listeners {
		a := l.GetAddress().GetSocketAddress()
		if a.GetPortValue() != port || (!handoff && l.GetBindToPort() != nil && !l.GetBindToPort().GetValue()) {
			continue
		}
		switch a.GetAddress() {
		case ip:
			return l
		case "0.0.0.0", "::":
			if wild == nil {
				wild = l
			}
		}
	}
	return wild
}

func (s *Simulator) listenerOnPort(port uint32) *listener.Listener {
	for _, l := range s.res.Listeners {
		if l.GetAddress().GetSocketAddress().GetPortValue() == port {
			return l
		}
	}
	return nil
}

func (s *Simulator) listenerNamed(name string) *listener.Listener {
	for _, l := range s.res.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	return nil
}
