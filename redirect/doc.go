// Package redirect installs a sidecar's traffic capture in a network
// namespace with nf_tables, from Go: inbound TCP to the proxy's inbound
// port (15006), outbound TCP to its outbound port (15001), with the
// exclusions Istio's istio-iptables applies by default and the ones its
// traffic.sidecar.istio.io annotations ask for. Everything lives in one
// inet (IPv4 + IPv6) table, so installing replaces it in one netlink
// transaction and removing it is one table delete. No shell, no iptables
// binary: the injected init container runs `ward redirect`.
//
// The rules are planned by a pure function (Plan) into a small rule model
// that renders both as nft syntax (Render, for --dry-run) and as netlink
// expressions (Install).
package redirect
