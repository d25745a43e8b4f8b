package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/ambient"
)

// nodeSyncTypes are a node proxy's config types (ambient.ShortType), in
// the order proxy-status prints them.
var nodeSyncTypes = []string{"mesh", "workloads", "services", "peerauthn", "authz"}

// nodeProxyPrefix names node proxies in proxy-status and proxy-config:
// node~<node name>.
const nodeProxyPrefix = "node~"

// fetchNodes reads /debug/nodez: the node proxies connected over ADS. A
// server without the page (before ambient ADS) has none.
func fetchNodes(ctx context.Context, server string) ([]ambient.NodeConn, error) {
	var nodes []ambient.NodeConn
	err := getJSON(ctx, server, "/debug/nodez", &nodes)
	if se := (*httpStatusError)(nil); errors.As(err, &se) && se.code == http.StatusNotFound {
		return nil, nil
	}
	return nodes, err
}

// nodeSyncOf classifies a node proxy's types like a sidecar's: the server
// diffs against the latest snapshot when it sends, so what it sent last is
// the latest.
func nodeSyncOf(n ambient.NodeConn, now time.Time) proxySync {
	p := proxySync{Proxy: nodeProxyPrefix + n.Node, Type: n.Type, ConnectedAt: n.ConnectedAt, SnapshotVersion: n.Snapshot, Types: map[string]typeState{}}
	for _, t := range nodeSyncTypes {
		ts, ok := n.Types[t]
		if !ok {
			p.Types[t] = typeState{Status: stateNotSent}
			continue
		}
		p.Types[t] = classify(&xds.TypeSync{Sent: ts.Sent, Acked: ts.Acked, Latest: ts.Sent, Nacks: ts.Nacks, NackedVer: ts.NackedVer, LastNack: ts.LastNack}, now)
	}
	return p
}

// nodeTable prints the node proxies after the Envoy/gRPC proxies.
func nodeTable(w io.Writer, nodes []proxySync, now time.Time) error {
	if len(nodes) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return syncTable(w, nodes, now, "NODE PROXY\tTYPE\tMESH\tWORKLOADS\tSERVICES\tPEERAUTHN\tAUTHZ\tSNAPSHOT\tCONNECTED", nodeSyncTypes,
		func(p proxySync) string { return p.Proxy + "\t" + p.Type }, "the node proxy")
}

// nodeDetail prints one node proxy's types.
func nodeDetail(w io.Writer, p proxySync, now time.Time) error {
	fmt.Fprintf(w, "Proxy:      %s\nType:       %s\n", p.Proxy, p.Type)
	fmt.Fprintf(w, "Connected:  %s (%s ago)\nSnapshot:   %s\n\n", p.ConnectedAt.Format(time.RFC3339), age(p.ConnectedAt, now), p.SnapshotVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSTATUS\tSENT\tACKED\tNACKS")
	for _, t := range nodeSyncTypes {
		s := p.Types[t]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", strings.ToUpper(t), s.cell(), dash(s.Sent), dash(s.Acked), s.Nacks)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range nodeSyncTypes {
		if s := p.Types[t]; s.Status == stateNack {
			fmt.Fprintf(w, "\n%s rejected version %s:\n  %s\n", strings.ToUpper(t), s.Sent, s.Error)
		}
	}
	return nil
}
