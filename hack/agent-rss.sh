#!/usr/bin/env bash
# agent-rss.sh: resident memory of the workload agent with one workload
# (SDS socket + proxyless files) after enrolment against a local
# `ward serve`, for the slim ward-agent binary and for `ward agent`.
# Usage: make build && hack/agent-rss.sh   (binaries from ./bin)
set -euo pipefail
bin=${BIN:-bin}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
base=${PORT_BASE:-25000}
"$bin/ward" serve --config examples --state "$tmp/cp" --secure-addr 127.0.0.1:$((base+12)) --xds-addr 127.0.0.1:$((base+10)) \
	--debug-addr 127.0.0.1:$((base+14)) --authz-addr "" --log-level warn 2>"$tmp/serve.log" &
for _ in $(seq 100); do [ -s "$tmp/cp/ca/ca.json" ] && curl -sf "http://127.0.0.1:$((base+14))/readyz" >/dev/null && break; sleep 0.1; done
"$bin/ward" ca bundle --state "$tmp/cp" >"$tmp/root.pem"
measure() { # name, then the agent command line
	local name=$1; shift
	local dir="$tmp/$name"; mkdir -p "$dir"
	"$bin/ward" ca token create --state "$tmp/cp" --ns shop --sa cart >"$dir/token"
	"$@" --ca-addr 127.0.0.1:$((base+12)) --ca-root "$tmp/root.pem" --join-token-file "$dir/token" --state "$dir" \
		--output-dir "$dir/out" --xds-addr 127.0.0.1:$((base+10)) --xds-insecure --log-level warn &
	local pid=$!
	for _ in $(seq 200); do [ -s "$dir/out/grpc-bootstrap.json" ] && break; sleep 0.05; done
	[ -S "$dir/var/run/ward/sds.sock" ] || { echo "$name: no SDS socket" >&2; exit 1; }
	sleep 1 # settle after enrolment
	printf '%-12s %s\n' "$name" "$(grep -E '^(VmRSS|RssAnon|RssFile):' /proc/$pid/status | tr -s ' \t' ' ' | paste -sd' ')"
	printf '%-12s smaps_rollup: %s\n' "" "$(grep -E '^(Rss|Pss|Shared_Clean|Private_Clean|Private_Dirty|Anonymous):' /proc/$pid/smaps_rollup | tr -s ' \t' ' ' | paste -sd' ')"
	kill -INT $pid; wait $pid || true
}
measure ward-agent "$bin/ward-agent"
measure "ward agent" "$bin/ward" agent
