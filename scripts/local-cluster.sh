#!/usr/bin/env bash
# A real single-node Kubernetes 1.34 on this machine, for CI and `make e2e-local`:
#
#   scripts/local-cluster.sh build     build (or take from the cache) the cluster's binaries
#   scripts/local-cluster.sh up        start it; kubeconfig at $STATE/admin.kubeconfig
#   scripts/local-cluster.sh load IMAGE...   put podman images into the node's containerd
#   scripts/local-cluster.sh down      stop everything, remove the network, keep the caches
#   scripts/local-cluster.sh status    what runs
#
# What runs, each as a process on the host (root): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (Debian's, CRI plugin) with runc, the
# kubelet, kube-proxy (iptables) and CoreDNS. Pods get addresses on the CNI bridge
# $BRIDGE ($POD_CIDR); the host is $NODE_IP on it, which is also the node's address, the
# API server's advertised address and where CoreDNS answers. Traffic from pods to anything
# but the pod and service networks and this host is dropped (FORWARD), so nothing a pod
# does leaves the machine.
#
# The Kubernetes, etcd and CoreDNS parts are one executable built from cluster/ (see
# cluster/cmd/lakeport-kube/main.go), from the pinned modules of cluster/go.mod via the Go
# module proxy. Builds are cached in $CACHE ($GOCACHE, $GOMODCACHE, and the binaries keyed
# by a hash of their sources), so only the first run on a machine compiles.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then CACHE="${LAKEPORT_CACHE_DIR:-/var/cache/lakeport}"
else CACHE="${LAKEPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lakeport}"; fi
STATE="${LAKEPORT_CLUSTER_DIR:-/var/lib/lakeport-cluster}"
RUN_DIR="/run/lakeport-cluster"
KUBE_VERSION="v1.34.4"
CONTEXT="lakeport-local"
NODE_NAME="lakeport-node"
BRIDGE="lkp0"
NODE_IP="10.244.0.1"
POD_CIDR="10.244.0.0/24"
SERVICE_CIDR="10.96.0.0/16"
API_SERVICE_IP="10.96.0.1"
API_PORT=6443
PAUSE_IMAGE="localhost/lakeport-pause:1"
CONTAINERD_SOCK="$RUN_DIR/containerd.sock"
BIN="$STATE/bin"
PKI="$STATE/pki"
LOGS="$STATE/logs"
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"
AUDIT_LOG="$LOGS/audit.log"
TOOLS_BIN="$ROOT/.tools/bin"
# The parts, in start order; `down` stops them in reverse.
PARTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() { [ "$(id -u)" = 0 ] || die "needs root (containerd, kubelet, iptables, network)"; }

require_tools() {
  local tool missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (scripts/install-system-deps.sh installs them)"
}

# --- build -----------------------------------------------------------------------------------

sources_hash() {
  (cd "$ROOT/cluster" && { cat go.mod go.sum; find cmd -type f -print0 | sort -z | xargs -0 cat; go env GOVERSION; }) \
    | sha256sum | cut -c1-16
}

# The binaries for these sources: $CACHED_KUBE and $CACHED_PAUSE, built when missing.
cmd_build() {
  require_tools go
  local go_version
  go_version="$(go env GOVERSION)"
  case "$go_version" in
    go1.2[4-9]*|go1.[3-9][0-9]*) ;;
    *) die "Go 1.24 or newer is needed to build Kubernetes 1.34 (found $go_version)" ;;
  esac
  local hash started
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  export GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod"
  hash="$(sources_hash)"
  CACHED_KUBE="$CACHE/bin/lakeport-kube-$hash"
  CACHED_PAUSE="$CACHE/bin/pause-$hash"
  local cached_kube="$CACHED_KUBE" cached_pause="$CACHED_PAUSE"
  mkdir -p "$CACHE/bin"
  if [ ! -x "$cached_kube" ] || [ ! -x "$cached_pause" ]; then
    started=$SECONDS
    log "building Kubernetes $KUBE_VERSION, etcd and CoreDNS from cluster/go.mod (cold: ~7 min on 2 cores)"
    (cd "$ROOT/cluster" && go build -trimpath -o "$cached_kube.tmp" -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
        -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 \
        -X k8s.io/component-base/version.gitTreeState=clean" ./cmd/lakeport-kube)
    (cd "$ROOT/cluster" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$cached_pause.tmp" ./cmd/pause)
    mv "$cached_kube.tmp" "$cached_kube"
    mv "$cached_pause.tmp" "$cached_pause"
    log "built in $((SECONDS - started)) s"
  else
    log "binaries from the cache ($CACHE/bin, sources $hash)"
  fi
}

# --- certificates and kubeconfigs ------------------------------------------------------------

# cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA.
cert() {
  local name="$1" subject="$2" san="${3:-}" ext="$PKI/$1.ext"
  [ -s "$PKI/$name.crt" ] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

# kubeconfig NAME CERT: a kubeconfig for the client certificate CERT.
kubeconfig() {
  local file="$STATE/$1.kubeconfig" certname="$2"
  [ -s "$file" ] && return 0
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $certname
  user:
    client-certificate: $PKI/$certname.crt
    client-key: $PKI/$certname.key
contexts:
- name: $CONTEXT
  context: {cluster: $CONTEXT, user: $certname}
current-context: $CONTEXT
EOF
  chmod 600 "$file"
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [ ! -s "$PKI/ca.crt" ]; then
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=lakeport-local-ca" -days 30 \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # Group system:masters: the admin, and the API server calling kubelets (logs, exec,
  # port-forward), as kubeadm's apiserver-kubelet-client does.
  cert admin "/O=system:masters/CN=lakeport-admin"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  cert kube-proxy "/CN=system:kube-proxy"
  cert coredns "/CN=lakeport:coredns"
  if [ ! -s "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kubelet kubelet
  kubeconfig kube-proxy kube-proxy
  kubeconfig coredns coredns
}

# --- network ---------------------------------------------------------------------------------

network_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service addresses route to the bridge: kube-proxy DNATs the ones that exist to pods,
  # and any other stays on this machine instead of following the default route out.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  # Routing between pods and services (service VIPs are DNATed on the host); the bridge
  # must pass its frames through iptables, or replies from a pod on the same bridge skip
  # the reverse NAT.
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # Pods reach each other, services and this host, nothing else.
  iptables -C FORWARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP 2>/dev/null \
    || iptables -I FORWARD 1 -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP
  mkdir -p "$STATE/cni"
  write_config "$STATE/cni/10-lakeport.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "lakeport",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP", "rangeStart": "10.244.0.10"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
}

network_down() {
  iptables -D FORWARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP 2>/dev/null || true
  # kube-proxy's own chains; `kube-proxy --cleanup` removes them.
  [ -x "$BIN/lakeport-kube" ] && "$BIN/lakeport-kube" kube-proxy --cleanup >/dev/null 2>&1 || true
  ip link del "$BRIDGE" 2>/dev/null || true
}

# write_config FILE: stdin into FILE, only when it differs. kube-proxy exits when its
# config file changes under it ("content of the proxy server's configuration file was
# updated"), so an `up` on a running cluster must leave unchanged files alone.
write_config() {
  local file="$1" new
  new="$(cat)"
  if [ ! -f "$file" ] || [ "$(cat "$file")" != "$new" ]; then
    printf '%s\n' "$new" >"$file.tmp"
    mv "$file.tmp" "$file"
  fi
}

# --- processes -------------------------------------------------------------------------------

pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }

running() {
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# start NAME COMMAND...: run in the background with its own log, unless it runs already.
start() {
  local name="$1"
  shift
  if running "$name"; then
    return 0
  fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds; fail naming the log.
wait_for() {
  local what="$1" timeout="$2" deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "$what not ready after ${timeout}s (logs in $LOGS)"
    fi
    sleep 1
  done
}

kubectl_admin() { "$TOOLS_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

start_control_plane() {
  local kube="$BIN/lakeport-kube"
  # etcd on loopback only, plain HTTP: only the API server on this host talks to it.
  start etcd "$kube" etcd --name lakeport --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster lakeport=http://127.0.0.1:2380 --log-level warn
  wait_for etcd 60 curl -fsS http://127.0.0.1:2379/health

  # Who creates Jobs, in the audit log: the e2e tests read there that the run launcher's
  # Jobs come from the daemon's ServiceAccount token, not from an admin.
  write_config "$STATE/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create]
    resources:
      - {group: batch, resources: [jobs]}
  - level: None
EOF
  # Pod Security admission, NodeRestriction and the default plugins, as a managed cluster
  # has them; Node and RBAC authorization, so every client holds exactly what it is granted.
  start kube-apiserver "$kube" kube-apiserver \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=false --profiling=false \
    --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$AUDIT_LOG"
  wait_for kube-apiserver 120 kubectl_admin get --raw /readyz

  start kube-controller-manager "$kube" kube-controller-manager \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
  start kube-scheduler "$kube" kube-scheduler \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

start_containerd() {
  mkdir -p "$STATE/containerd"
  write_config "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN_DIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The kubelet gives sandboxes oom_score_adj -998 and Guaranteed pods -997. Lowering it
  # needs CAP_SYS_RESOURCE, which CI machines withhold (runc then fails: "failed to update
  # /proc/self/oom_score_adj: Permission denied"); containerd clamps it to its own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # crun fails on this machine's cgroup layout; Debian's runc works.
        BinaryName = "/usr/bin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
EOF
  start containerd containerd --config "$STATE/containerd/config.toml"
  wait_for containerd 60 ctr --address "$CONTAINERD_SOCK" version
  if ! ctr --address "$CONTAINERD_SOCK" -n k8s.io images check "name==$PAUSE_IMAGE" | grep -q "$PAUSE_IMAGE"; then
    local context
    context="$(mktemp -d)"
    cp "$BIN/pause" "$ROOT/cluster/cmd/pause/Containerfile" "$context/"
    podman build --quiet -t "$PAUSE_IMAGE" "$context" >/dev/null
    rm -rf "$context"
    load_images "$PAUSE_IMAGE"
  fi
}

start_node() {
  local kube="$BIN/lakeport-kube"
  mkdir -p "$STATE/kubelet"
  # Pods resolve through CoreDNS on the host's bridge address; nothing else.
  echo "nameserver $NODE_IP" | write_config "$STATE/resolv.conf"
  write_config "$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
failSwapOn: false
podLogsDir: $STATE/pod-logs
# Images come from 'local-cluster.sh load', never from a registry: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# A shared CI disk: evict only when it is really full.
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
serializeImagePulls: false
EOF
  start kubelet "$kube" kubelet --config "$STATE/kubelet/config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet/root" \
    --cert-dir "$STATE/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"

  write_config "$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
EOF
  start kube-proxy "$kube" kube-proxy --config "$STATE/kube-proxy.yaml"
  wait_for "node $NODE_NAME" 120 node_ready
}

node_ready() {
  kubectl_admin get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

start_dns() {
  local kube="$BIN/lakeport-kube"
  kubectl_admin apply -f "$ROOT/cluster/manifests/coredns-rbac.yaml" >/dev/null
  write_config "$STATE/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig $CONTEXT
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loadbalance
}
# Every other name: no upstream. Nothing outside this machine is resolved.
.:53 {
    bind $NODE_IP
    errors
}
EOF
  start coredns "$kube" coredns -conf "$STATE/Corefile"
  wait_for coredns 60 curl -fsS http://127.0.0.1:18181/ready
}

cmd_up() {
  require_root
  require_tools containerd ctr runc iptables ip openssl curl podman setsid
  [ -x /usr/lib/cni/bridge ] || die "no CNI plugins in /usr/lib/cni (Debian containernetworking-plugins)"
  [ -x "$TOOLS_BIN/kubectl" ] || die "no kubectl in $TOOLS_BIN: run 'make install'"
  local started=$SECONDS
  cmd_build
  mkdir -p "$STATE" "$RUN_DIR" "$LOGS" "$BIN"
  # Renamed into place: a running part keeps its (unchanged) executable.
  cp "$CACHED_KUBE" "$BIN/lakeport-kube.tmp" && mv -f "$BIN/lakeport-kube.tmp" "$BIN/lakeport-kube"
  cp "$CACHED_PAUSE" "$BIN/pause"
  make_pki
  network_up
  start_control_plane
  start_containerd
  start_node
  start_dns
  local name
  for name in "${PARTS[@]}"; do
    running "$name" || { tail -n 5 "$LOGS/$name.log" >&2; die "$name is not running (log: $LOGS/$name.log)"; }
  done
  # Everyone's kubeconfig for this cluster, with the context the e2e tests ask for.
  log "up in $((SECONDS - started)) s: KUBECONFIG=$KUBECONFIG_ADMIN (context $CONTEXT)"
}

load_images() {
  local image
  for image in "$@"; do
    podman image exists "$image" || die "no podman image $image"
  done
  # One docker-archive of them all: the layers they share (a team's image FROM the base)
  # go once. It keeps the names; containerd then knows each as the chart names it.
  podman save --format docker-archive --multi-image-archive "$@" \
    | ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --no-unpack=false - >/dev/null
}

cmd_load() {
  require_root
  running containerd || die "the cluster is not up: run '$0 up' first"
  [ $# -gt 0 ] || die "usage: $0 load IMAGE..."
  load_images "$@"
  log "loaded into the node: $*"
}

cmd_down() {
  require_root
  local i name pid
  for ((i = ${#PARTS[@]} - 1; i >= 0; i--)); do
    name="${PARTS[$i]}"
    if [ "$name" = kubelet ] && running kubelet; then
      # Pods first, while the kubelet still runs: their containers and mounts go with them.
      stop_pods
    fi
    pid="$(pid_of "$name")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/$name.pid"
  done
  # Shims and containers left behind by a killed containerd.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $CONTAINERD_SOCK" 2>/dev/null || true
  network_down
  # Mounts under the kubelet's and containerd's directories, deepest first.
  grep -E " ($STATE|$RUN_DIR)/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$STATE" "$RUN_DIR"
  log "down"
}

stop_pods() {
  # Deleting every namespace's pods lets the kubelet tear down their sandboxes (CNI DEL).
  kubectl_admin delete pods --all --all-namespaces --grace-period 5 --timeout 60s >/dev/null 2>&1 || true
}

cmd_status() {
  local name
  for name in "${PARTS[@]}"; do
    if running "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  load) shift; cmd_load "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
