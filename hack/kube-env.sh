#!/usr/bin/env bash
# Starts (or stops) a real Kubernetes control plane for tests: etcd and
# kube-apiserver on 127.0.0.1 with generated certificates, service-account
# signing keys (TokenRequest and TokenReview work), RBAC, and the
# MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins. There is
# no kubelet and no controller manager: pods stay Pending, and nothing
# creates the "default" ServiceAccount of a namespace.
#
#   hack/kube-env.sh up DIR     start; prints KEY=VALUE lines (KUBECONFIG, ...)
#   hack/kube-env.sh down DIR   stop what "up DIR" started
#
# Both binaries are built once from the Go module proxy and cached by
# version (hack/build-kube-apiserver.sh, hack/build-etcd.sh). Ports are
# free ports unless ETCD_PORT, ETCD_PEER_PORT or APISERVER_PORT are set.
# With KUBE_ENV_PARENT=<pid>, both are stopped when that process exits.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 up|down DIR" >&2
  exit 2
fi

stop() {
  pids=""
  for name in kube-apiserver etcd; do
    [ -f "$dir/$name.pid" ] && pids="$pids $(cat "$dir/$name.pid")"
  done
  for pid in $pids; do
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$dir/kube-apiserver.pid" "$dir/etcd.pid"
}

if [ "$cmd" = down ]; then
  stop
  exit 0
fi
[ "$cmd" = up ] || { echo "unknown command $cmd" >&2; exit 2; }

apiserver=$("$here/build-kube-apiserver.sh")
etcd=$("$here/build-etcd.sh")
mkdir -p "$dir/pki" "$dir/etcd"
dir="$(cd "$dir" && pwd)"

# freeport prints a TCP port no socket uses (listening or connected,
# checked with ss), below the kernel's ephemeral range so that the many
# outgoing connections of tests running beside us cannot take it between
# this check and the bind.
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$ephemeral_low" -gt 12000 ] || ephemeral_low=32768
freeport() {
  local span=$(( ephemeral_low - 10000 ))
  while :; do
    p=$(( 10000 + (RANDOM * 32768 + RANDOM) % span ))
    if ! ss -tanH "( sport = :$p )" 2>/dev/null | grep -q .; then
      echo "$p"
      return
    fi
  done
}
fixed_ports=""
[ -n "${ETCD_PORT:-}${ETCD_PEER_PORT:-}${APISERVER_PORT:-}" ] && fixed_ports=1
pick_ports() {
  ETCD_PORT="${fixed_etcd:-$(freeport)}"
  ETCD_PEER_PORT="${fixed_peer:-$(freeport)}"
  APISERVER_PORT="${fixed_api:-$(freeport)}"
}
fixed_etcd="${ETCD_PORT:-}" fixed_peer="${ETCD_PEER_PORT:-}" fixed_api="${APISERVER_PORT:-}"

pki="$dir/pki"
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=ward-test-kube-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt"
leaf() { # name subject extensions
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr"
  printf '%s\n' "$3" > "$pki/$1.ext"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
}
leaf apiserver "/CN=kube-apiserver" \
  "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth"
leaf admin "/O=system:masters/CN=ward-test-admin" "extendedKeyUsage=clientAuth"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

for attempt in 1 2 3; do
pick_ports
"$etcd" --name default --data-dir "$dir/etcd" --unsafe-no-fsync \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" >"$dir/etcd.log" 2>&1 &
echo $! > "$dir/etcd.pid"

"$apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --authorization-mode RBAC \
  --enable-admission-plugins MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
  --endpoint-reconciler-type none \
  --profiling=false --cert-dir "$dir/pki" >"$dir/kube-apiserver.log" 2>&1 &
echo $! > "$dir/kube-apiserver.pid"

cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ward-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: ward-test
  context: {cluster: ward-test, user: admin}
current-context: ward-test
KC

# Bounded wait for readiness (etcd and every post-start hook).
for _ in $(seq 1 600); do
  if kubectl --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    echo "KUBECONFIG=$dir/kubeconfig"
    echo "KUBE_CA=$pki/ca.crt"
    echo "APISERVER=https://127.0.0.1:$APISERVER_PORT"
    echo "KUBE_APISERVER_LOG=$dir/kube-apiserver.log"
    if [ -n "${KUBE_ENV_PARENT:-}" ]; then
      # Tear down when the parent (a test binary) dies without "down",
      # e.g. after a panic.
      ( while kill -0 "$KUBE_ENV_PARENT" 2>/dev/null; do sleep 1; done; stop ) \
        </dev/null >/dev/null 2>&1 &
    fi
    exit 0
  fi
  for name in etcd kube-apiserver; do
    if ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
      if [ -z "$fixed_ports" ] && [ "$attempt" -lt 3 ] && grep -q "address already in use" "$dir/$name.log"; then
        # Lost a race for a port: start again on other ports.
        echo "$name: port taken, retrying on other ports" >&2
        stop
        rm -rf "$dir/etcd" && mkdir -p "$dir/etcd"
        continue 3
      fi
      echo "$name exited; last log lines:" >&2
      tail -20 "$dir/$name.log" >&2
      stop
      exit 1
    fi
  done
  sleep 0.1
done
echo "kube-apiserver not ready after 60s; last log lines:" >&2
tail -20 "$dir/kube-apiserver.log" >&2
stop
exit 1
done
