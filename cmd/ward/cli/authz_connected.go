package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

// ackedDump is the header of /debug/config_dump?acked=true: which
// connection it is and, per type, the ACKed and latest versions.
type ackedDump struct {
	Proxy      string             `json:"proxy"`
	Connection string             `json:"connection"`
	View       string             `json:"view"`
	Versions   translate.Versions `json:"versions"`
	Latest     translate.Versions `json:"latest"`
	Unacked    []string           `json:"unacked"`
}

// warnings say which types the simulation cannot take from an ACK, and
// which the proxy has not ACKed the latest version of.
func (d ackedDump) warnings() []string {
	var out []string
	if d.View != "acked" {
		return []string{"the server does not keep ACKed config (older ward serve): simulating the config it last generated, which the proxy may not have ACKed"}
	}
	for _, t := range d.simulatedUnacked() {
		out = append(out, fmt.Sprintf("%s: the proxy has ACKed no version Ward still knows: simulated without %s resources, as the proxy may hold none from this stream", t, t))
	}
	for _, t := range []struct{ name, acked, latest string }{
		{"lds", d.Versions.Listeners, d.Latest.Listeners}, {"rds", d.Versions.Routes, d.Latest.Routes},
		{"cds", d.Versions.Clusters, d.Latest.Clusters},
	} {
		if t.acked != "" && t.latest != "" && t.acked != t.latest {
			out = append(out, fmt.Sprintf("%s: the proxy has not ACKed the latest version %s (sent or pending): simulating the ACKed version %s", t.name, t.latest, t.acked))
		}
	}
	return out
}

// lagging reports whether some simulated type's ACKed version is not the
// latest (endpoints are not simulated).
func (d ackedDump) lagging() bool {
	a, l := d.Versions, d.Latest
	return d.View != "acked" || len(d.simulatedUnacked()) > 0 || a.Listeners != l.Listeners || a.Routes != l.Routes || a.Clusters != l.Clusters
}

// simulatedUnacked are the un-ACKed types the simulation reads: eds is
// not one (endpoints do not change what a proxy decides).
func (d ackedDump) simulatedUnacked() []string {
	var out []string
	for _, t := range d.Unacked {
		if t != "eds" {
			out = append(out, t)
		}
	}
	return out
}

// runConnectedCheck runs the request through the config a connected
// proxy ACKed, fetched from the running control plane, and compares with
// the policy engine when --config is given.
func runConnectedCheck(cmd *cobra.Command, o authzCheckOptions) error {
	hdr, res, c, err := fetchACKed(o.server, o.proxyID)
	if err != nil {
		return err
	}
	run := &proxyRun{Mode: "connected", Type: c.Type, Warnings: hdr.warnings(), Lagging: hdr.lagging(),
		Proxy: fmt.Sprintf("%s %s (connection %s, namespace %s; the config it ACKed from %s)", c.Type, c.Proxy, c.Connection, c.Namespace, o.server)}
	var pc *policyCheck
	var checker *engineChecker
	if o.configDir != "" {
		if pc, err = o.connectedPolicy(cmd, c); err != nil {
			return err
		}
		if checker, err = newEngineChecker(pc.snap); err != nil {
			return err
		}
	}
	req, err := o.connectedRequest(cmd, c, res, pc)
	if err != nil {
		return err
	}
	run.simulate(res, checker, req)
	if pc != nil {
		if err := pc.alignWith(cmd, run); err != nil {
			return err
		}
	}
	if checker == nil && strings.HasPrefix(run.Enforcement, "ext_authz") {
		run.Enforcement = "ext_authz, unanswered without --config (each check fails; the filter's failure mode decides)"
	}
	return finish(cmd, o, run, pc)
}

// fetchACKed reads what proxy ACKed from the server: the dump's header,
// its resources and the proxy's connection row.
func fetchACKed(server, proxy string) (ackedDump, *translate.Resources, debugConnection, error) {
	var hdr ackedDump
	body, err := fetchDebug(server, "/debug/config_dump?acked=true&proxy="+url.QueryEscape(proxy), "config dump of "+proxy)
	if err != nil {
		return hdr, nil, debugConnection{}, err
	}
	if err := json.Unmarshal(body, &hdr); err != nil {
		return hdr, nil, debugConnection{}, fmt.Errorf("authz check: decode config dump of %s: %w", proxy, err)
	}
	res, err := decodeDump(body)
	if err != nil {
		return hdr, nil, debugConnection{}, err
	}
	c, err := connectionOf(server, hdr.Connection)
	return hdr, res, c, err
}

// connectedRequest is the simulated request to the connected proxy: at
// its first IP, on --port (else, without --config, the one port it
// serves), speaking the port's protocol when --config declares it.
func (o *authzCheckOptions) connectedRequest(cmd *cobra.Command, c debugConnection, res *translate.Resources, pc *policyCheck) (simulate.Request, error) {
	dstIP, portProto, name := defaultWorkloadIP, mesh.ProtocolUnknown, ""
	if len(c.IPs) > 0 {
		dstIP = c.IPs[0]
	}
	if pc != nil {
		portProto, name = pc.port.Protocol, pc.w.Name
	} else if !cmd.Flags().Changed("port") {
		p, err := onlyServedPort(res, c.Type)
		if err != nil {
			return simulate.Request{}, err
		}
		o.port = p
	}
	return o.simRequest(c.Type, dstIP, o.hostFor(name), portProto)
}

// connectedPolicy decides the request with the policy engine over
// --config, for --to or else the connected proxy's own workload.
func (o *authzCheckOptions) connectedPolicy(cmd *cobra.Command, c debugConnection) (*policyCheck, error) {
	if o.to == "" {
		o.to = c.Namespace
		if len(o.labels) == 0 {
			for k, v := range c.Labels {
				o.labels = append(o.labels, k+"="+v)
			}
		}
	}
	return o.evalPolicy(cmd)
}

// debugConnection is the part of a /debug/connections row the check needs.
type debugConnection struct {
	Proxy      string         `json:"proxy"`
	Connection string         `json:"connection"`
	Type       mesh.ProxyType `json:"type"`
	Namespace  string         `json:"namespace"`
	Labels     mesh.Labels    `json:"labels"`
	IPs        []string       `json:"ips"`
}

// connectionOf finds connection key on the server's /debug/connections.
func connectionOf(server, key string) (debugConnection, error) {
	body, err := fetchDebug(server, "/debug/connections", "connections")
	if err != nil {
		return debugConnection{}, err
	}
	var rows []debugConnection
	if err := json.Unmarshal(body, &rows); err != nil {
		return debugConnection{}, fmt.Errorf("authz check: decode connections: %w", err)
	}
	for _, r := range rows {
		if r.Connection == key {
			return r, nil
		}
	}
	return debugConnection{}, fmt.Errorf("authz check: connection %s is gone from %s/debug/connections (the proxy disconnected?)", key, server)
}

// fetchDebug GETs a debug page of a running ward serve.
func fetchDebug(server, path, what string) ([]byte, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(strings.TrimRight(server, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("fetch %s: %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return body, nil
}

// onlyServedPort is the one port the proxy's config serves inbound (a
// sidecar's virtualInbound chains, a gateway's or proxyless server's
// listeners), for --port without --config; several are an error that
// lists them.
func onlyServedPort(res *translate.Resources, pt mesh.ProxyType) (uint32, error) {
	seen := map[uint32]bool{}
	for _, l := range res.Listeners {
		if pt == mesh.ProxySidecar {
			if l.GetName() != "virtualInbound" {
				continue
			}
			for _, fc := range l.GetFilterChains() {
				if p := fc.GetFilterChainMatch().GetDestinationPort().GetValue(); p != 0 {
					seen[p] = true
				}
			}
			continue
		}
		if p := l.GetAddress().GetSocketAddress().GetPortValue(); p != 0 {
			seen[p] = true
		}
	}
	ports := make([]uint32, 0, len(seen))
	for p := range seen {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	if len(ports) == 1 {
		return ports[0], nil
	}
	return 0, fmt.Errorf("authz check: the proxy serves ports %v; choose one with --port", ports)
}
