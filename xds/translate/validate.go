package translate

import (
	"errors"
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// Register every extension type the translators (and the hooks) pack
	// into Any, so the walker can unpack and validate them.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

type allValidator interface{ ValidateAll() error }

// Validate runs ValidateAll on every resource and on every message packed
// in an Any anywhere inside it (PGV's generated validators stop at Any),
// then checks that every referenced route config, cluster and endpoint set
// exists. It returns every problem found.
func (r *Resources) Validate() error {
	err := r.ValidateEach()
	fatal, _ := r.consistency()
	return errors.Join(append([]error{err}, fatal...)...)
}

// ValidateEach runs ValidateDeep on every resource, without the reference
// checks (for one side of a config whose references cross sides).
func (r *Resources) ValidateEach() error {
	var errs []error
	check := func(kind, name string, m proto.Message) {
		if err := ValidateDeep(m); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	for _, l := range r.Listeners {
		check("listener", l.GetName(), l)
	}
	for _, rc := range r.Routes {
		check("route", rc.GetName(), rc)
	}
	for _, c := range r.Clusters {
		check("cluster", c.GetName(), c)
	}
	for _, e := range r.Endpoints {
		check("endpoints", e.GetClusterName(), e)
	}
	return errors.Join(errs...)
}

// Consistent reports the fatal reference errors only (missing route
// configs and endpoint sets); Validate includes it.
func (r *Resources) Consistent() error {
	fatal, _ := r.consistency()
	return errors.Join(fatal...)
}

// Dangling lists routes and tcp_proxy filters naming clusters that were not
// generated (a VirtualService pointing at an unknown host or subset, or at
// a host the proxy's Sidecar hides). Envoy answers those requests with 503
// and grpc fails just those RPCs, so they do not block a push; the server
// logs them.
func (r *Resources) Dangling() []error {
	_, d := r.consistency()
	return d
}

// ValidateDeep validates m and, recursively, every Any inside it.
func ValidateDeep(m proto.Message) error {
	if v, ok := m.(allValidator); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	return walkAnys(m.ProtoReflect(), func(path string, a *anypb.Any) error {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: unpack %s: %w", path, a.GetTypeUrl(), err)
		}
		if err := ValidateDeep(inner); err != nil {
			return fmt.Errorf("%s (%s): %w", path, a.GetTypeUrl(), err)
		}
		return nil
	}, "")
}

// walkAnys calls f for every Any directly or transitively set in m (but
// not inside the Anys themselves: f recurses through ValidateDeep).
func walkAnys(m protoreflect.Message, f func(string, *anypb.Any) error, path string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = visitMessage(l.Get(i).Message(), f, fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = visitMessage(mv.Message(), f, fmt.Sprintf("%s[%s]", p, k.String()))
				return err == nil
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			err = visitMessage(v.Message(), f, p)
		}
		return err == nil
	})
	return err
}

func visitMessage(m protoreflect.Message, f func(string, *anypb.Any) error, path string) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		return f(path, a)
	}
	return walkAnys(m, f, path)
}

// consistency checks r's references against r itself (see Refs).
func (r *Resources) consistency() (fatal, dangling []error) {
	x := r.Refs()
	return x.Resolve(x).Errors()
}

func listenerHCMs(l *listener.Listener) []*hcmv3.HttpConnectionManager {
	var out []*hcmv3.HttpConnectionManager
	if a := l.GetApiListener().GetApiListener(); a != nil {
		h := &hcmv3.HttpConnectionManager{}
		if a.UnmarshalTo(h) == nil {
			out = append(out, h)
		}
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			h := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig().MessageIs(h) && f.GetTypedConfig().UnmarshalTo(h) == nil {
				out = append(out, h)
			}
		}
	}
	return out
}

func listenerTCPClusters(l *listener.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			tp := &tcpv3.TcpProxy{}
			if !f.GetTypedConfig().MessageIs(tp) || f.GetTypedConfig().UnmarshalTo(tp) != nil {
				continue
			}
			if c := tp.GetCluster(); c != "" {
				out = append(out, c)
			}
			for _, w := range tp.GetWeightedClusters().GetClusters() {
				out = append(out, w.GetName())
			}
		}
	}
	return out
}
