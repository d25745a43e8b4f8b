package translate_test

import (
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/wardmesh/ward/xds/translate"
)

// serverListeners are the proxy's grpc server listeners by name.
func serverListeners(r *translate.Resources) map[string]*listener.Listener {
	out := map[string]*listener.Listener{}
	for _, l := range r.Listeners {
		if l.GetApiListener() == nil {
			out[l.GetName()] = l
		}
	}
	return out
}

// A grpc xDS server asks for its template with the address it listens on:
// the bound IP, or 0.0.0.0 / [::] when it listens on ":port". Ward answers
// every one of them, under grpc-go's and Istio's templates, with a listener
// whose address is the one asked for (grpc-go refuses any other) and whose
// chains are the same.
func TestGRPCServerListenerNames(t *testing.T) {
	res := generate(t, load(t, "grpc"), goldenCases[2].proxy)
	got := serverListeners(res)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	var want []string
	for _, prefix := range []string{translate.GRPCServerListenerPrefix, translate.IstioGRPCServerListenerPrefix} {
		for _, addr := range []string{"127.0.0.1:17070", "0.0.0.0:17070", "[::]:17070"} {
			want = append(want, prefix+addr)
		}
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("server listener names (-want +got):\n%s", diff)
	}
	first := got[want[0]]
	for _, name := range want {
		l := got[name]
		addr := strings.TrimPrefix(strings.TrimPrefix(name, translate.GRPCServerListenerPrefix), translate.IstioGRPCServerListenerPrefix)
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		sa := l.GetAddress().GetSocketAddress()
		if sa.GetAddress() != host || strconv.FormatUint(uint64(sa.GetPortValue()), 10) != port {
			t.Errorf("%s: address %s:%d, want the one asked for", name, sa.GetAddress(), sa.GetPortValue())
		}
		if diff := cmp.Diff(first.GetFilterChains(), l.GetFilterChains(), protocmp.Transform()); diff != "" {
			t.Errorf("%s: filter chains differ from %s:\n%s", name, first.GetName(), diff)
		}
	}
}
