#!/usr/bin/env bash
# Ambient mode in one minute (docs/ambient.md, `make demo-ambient`; root).
#
# Builds a small "node" on this machine: three network namespaces as pods
# joined by a bridge (addresses from 10.254.77.0/24, inside those
# namespaces only), a plain HTTP server (demo/ambient/hello) in two of
# them, `ward serve` on loopback and one `ward node` that gets its config
# and certificates from it. Then it shows, with the same app as a client in the pods:
#   1. web (ambient) -> db (ambient): mTLS over HBONE, db's node proxy sees
#      web's SPIFFE ID; allowed by db's ALLOW-from-namespace policy; the app
#      in db sees web's address as the caller (IP_TRANSPARENT);
#   2. legacy (not ambient, plaintext) -> db: refused, PeerAuthentication STRICT;
#   3. a DENY for web's principal written into ward serve's config: web -> db
#      refused, with the policy named in the node's decision log.
# Everything it creates is removed on exit, also on failure or ^C.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "demo-ambient: needs root (network namespaces and redirect rules)" >&2; exit 2; }
for cmd in ip go; do # ip builds the namespaces; ward node needs no binary
	command -v "$cmd" >/dev/null || { echo "demo-ambient: $cmd not found (hack/install-iproute2.sh)" >&2; exit 2; }
done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ward-demo-ambient.XXXXXX)
p=wd$$ # namespace prefix, unique per run
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in a b c fab; do ip netns del "$p-$n" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ -t 1 ]; then
	step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	step() { printf '\n== %s\n' "$*"; }
fi
# waitfor FILE PATTERN: bounded wait for a log line.
waitfor() {
	for _ in $(seq 600); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "demo-ambient: timed out waiting for '$2' in $1:" >&2; tail -20 "$1" >&2; exit 1
}

step "build ward and the demo app"
go build -o "$work/ward" "$root/cmd/ward"
go build -o "$work/hello" "$root/demo/ambient/hello"
ward=$work/ward

step "three pods on a bridge: $p-a (web, ambient), $p-b (db, ambient), $p-c (legacy, not ambient)"
ip netns add "$p-fab"
ip -n "$p-fab" link add br0 type bridge
ip -n "$p-fab" link set br0 up
i=0
for n in a b c; do
	i=$((i + 1))
	ip netns add "$p-$n"
	ip -n "$p-fab" link add "v$n" type veth peer name eth0 netns "$p-$n"
	ip -n "$p-fab" link set "v$n" master br0 up
	ip -n "$p-$n" addr add "10.254.77.$i/24" dev eth0
	ip -n "$p-$n" link set eth0 up
	ip -n "$p-$n" link set lo up
done
web=10.254.77.1 db=10.254.77.2

mkdir -p "$work/mesh"
cat >"$work/mesh/mesh.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: $p-a, namespace: frontend}
spec:
  address: $web
  serviceAccount: web
  labels: {app: web, istio.io/dataplane-mode: ambient, ward.io/node: demo-node}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: $p-b, namespace: shop}
spec:
  address: $db
  serviceAccount: db
  labels: {app: db, istio.io/dataplane-mode: ambient, ward.io/node: demo-node}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-from-frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules: [{from: [{source: {namespaces: [frontend]}}], to: [{operation: {ports: ["8080"]}}]}]
EOF

addr=${WARD_DEMO_ADDR:-127.0.0.1:15112} debug=${WARD_DEMO_DEBUG_ADDR:-127.0.0.1:15114}
step "ward serve (config from $work/mesh, CA and ADS on $addr)"
"$ward" serve --config "$work/mesh" --state "$work/state" --secure-addr "$addr" \
	--debug-addr "$debug" --xds-addr "" --authz-addr "" >"$work/serve.log" 2>&1 &
pids+=($!)
waitfor "$work/serve.log" "secure_addr="
"$ward" ca token create --node demo-node --state "$work/state" >"$work/node.token"
"$ward" ca bundle --state "$work/state" >"$work/root.pem"

step "the app in db, unmodified: $db:8080"
ip netns exec "$p-b" "$work/hello" --addr :8080 --name db >"$work/db.log" 2>&1 &
pids+=($!)

step "ward node --name demo-node: enrols with a join token, gets config over ADS and a certificate per pod"
"$ward" node --name demo-node --xds-addr "$addr" --ca-addr "$addr" \
	--ca-root "$work/root.pem" --join-token-file "$work/node.token" \
	--decision-log "$work/decisions.log" --remove-rules-on-exit >"$work/node.log" 2>&1 &
pids+=($!)
waitfor "$work/node.log" "first config from the control plane"
waitfor "$work/node.log" "workload enrolled.*$p-a"
waitfor "$work/node.log" "workload enrolled.*$p-b"

get() { ip netns exec "$1" "$work/hello" --get "http://$db:8080/"; }

step "1. web ($web) -> db over HBONE (mTLS with web's certificate; db sees web's address)"
get "$p-a"
grep -m1 -o 'spiffe://cluster.local/ns/frontend/sa/web' "$work/decisions.log" | sed 's/^/   db'"'"'s node proxy saw: /'

step "2. legacy (plaintext, not in ambient) -> db: refused by STRICT mTLS"
if get "$p-c" 2>/dev/null; then echo "demo-ambient: legacy reached db in plaintext" >&2; exit 1; fi
echo "   refused"

step "3. a DENY for web's principal, written where ward serve reads its config"
cat >"$work/mesh/deny.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-web, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/frontend/sa/web]}}]}]
EOF
waitfor "$work/node.log" "node config applied.*AuthorizationPolicy.*resources=2"
if get "$p-a" 2>/dev/null; then echo "demo-ambient: web reached db after the DENY" >&2; exit 1; fi
echo "   refused; the node's decision log says:"
grep '"deny' "$work/decisions.log" | grep -m1 -o '"policy":"[^"]*"' | sed 's/^/   /' || grep -m1 deny-web "$work/decisions.log"

step "done: every namespace, rule and process is removed on exit"
