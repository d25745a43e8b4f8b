package simulate

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// unpack decodes a typed config; nil when the type is unknown or the
// bytes are invalid (Envoy would have rejected such config).
func unpack(a *anypb.Any) proto.Message {
	if a == nil {
		return nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil
	}
	if fc, ok := m.(*route.FilterConfig); ok {
		return filterConfig{fc}
	}
	return m
}

// filterConfig wraps route.FilterConfig (a per-route config that may
// disable a filter) so callers can tell it apart.
type filterConfig struct{ *route.FilterConfig }
