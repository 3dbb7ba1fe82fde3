#!/usr/bin/env bash
# lakeport on the local single-node Kubernetes (scripts/local-cluster.sh), end to end:
#
#   scripts/e2e-local.sh up          images, cluster, host services, Secrets, helm install
#   scripts/e2e-local.sh run CMD...  up, then CMD with the e2e environment, then down;
#                                    exits with CMD's status (`make test`, `make e2e-local`)
#   scripts/e2e-local.sh env         the environment the e2e tests need, as shell exports
#   scripts/e2e-local.sh down        uninstall, stop the services and the cluster
#
# The image is built with podman from images/lakeport/Dockerfile on a base made on this
# machine (scripts/build-base-image.sh: nothing can be pulled here). PostgreSQL, S3 and the
# Iceberg REST catalog run on the host (tests/support/host_services.py), which makes the
# chart's external-services path (platform-config/local-cluster/platform.yaml) the one this
# proves. Root only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${LAKEPORT_CLUSTER_DIR:-/var/lib/lakeport-cluster}"
SERVICES="$STATE/host-services"
NAMESPACE="lakeport"
RELEASE="lakeport"
CONTEXT="lakeport-local"
NODE_IP="10.244.0.1"
PLATFORM_FILE="$ROOT/platform-config/local-cluster/platform.yaml"
# Must match images.lakeport in $PLATFORM_FILE (tests/e2e checks that it does).
IMAGE="localhost/lakeport:dev"
BASE_IMAGE="localhost/lakeport-base:dev"
# A second team's code location, as a team makes one: `lakeport new-location` over a dbt
# project the demo did not write, built FROM the base image (codeLocations[shop]).
SHOP_IMAGE="localhost/shop:dev"
SHOP_PROJECT="$ROOT/tests/fixtures/shop_dbt_project"
BUILD="$ROOT/test-artifacts/local-cluster-build"
HELM_TIMEOUT="${HELM_TIMEOUT:-15m}"
PY="${PY:-$ROOT/.venv/bin/python}"
export CONTAINERS_CONF="$ROOT/cluster/containers.conf"
export KUBECONFIG="$STATE/admin.kubeconfig"
PATH="$ROOT/.tools/bin:$PATH"

log() { printf 'e2e-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# timed WHAT COMMAND...: run, then print how long it took (CI logs carry the figures).
timed() {
  local what="$1" started=$SECONDS
  shift
  "$@"
  log "$what: $((SECONDS - started)) s"
}

build_images() {
  PYTHON_IMAGE=local bash "$ROOT/scripts/build-image.sh" "$IMAGE"
  PYTHON_IMAGE=local bash "$ROOT/scripts/build-image.sh" "$BASE_IMAGE" base
  rm -rf "$BUILD/shop"
  mkdir -p "$BUILD"
  "$ROOT/.venv/bin/lakeport" new-location shop --dbt-project "$SHOP_PROJECT" \
    --output "$BUILD/shop" --image-repository localhost/shop --base-image "$BASE_IMAGE" >/dev/null
  local started=$SECONDS
  podman build --quiet --tag "$SHOP_IMAGE" "$BUILD/shop" >/dev/null
  log "built $SHOP_IMAGE from the scaffold in $((SECONDS - started)) s"
}

# Ours only: a pid file left by a killed run may name an unrelated process by now.
services_running() {
  [ -f "$SERVICES/pid" ] && grep -qs support.host_services "/proc/$(cat "$SERVICES/pid")/cmdline"
}

start_services() {
  services_running && return 0
  mkdir -p "$SERVICES"
  rm -f "$SERVICES/ready"
  # PYTHONPATH: the test helpers are the `support` package under tests/.
  PYTHONPATH="$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}" setsid "$PY" -m support.host_services \
    --address "$NODE_IP" --dir "$SERVICES" >"$SERVICES/host-services.log" 2>&1 </dev/null &
  echo $! >"$SERVICES/pid"
  local deadline=$((SECONDS + 180))
  until [ -f "$SERVICES/ready" ]; do
    services_running || { tail -n 30 "$SERVICES/host-services.log" >&2; die "host services exited"; }
    [ $SECONDS -lt $deadline ] || die "host services not ready after 180 s ($SERVICES/host-services.log)"
    sleep 1
  done
}

stop_services() {
  if services_running; then
    local pid
    pid="$(cat "$SERVICES/pid")"
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$SERVICES/pid"
}

# The namespace with Pod Security's restricted level enforced, and the Secrets of the
# external services, from the files host_services.py wrote (values never on a command line).
namespace_and_secrets() {
  local s="$SERVICES/secrets"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$NAMESPACE" --overwrite \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
  secret lakeport-postgres "password=$s/postgres-password"
  secret lakeport-s3 "AWS_ACCESS_KEY_ID=$s/s3-access-key-id" "AWS_SECRET_ACCESS_KEY=$s/s3-secret-access-key"
  secret lakeport-catalog "credential=$s/catalog-credential"
  secret lakeport-lineage "token=$s/lineage-token"
}

secret() {
  local name="$1" args=() pair
  shift
  for pair in "$@"; do args+=("--from-file=$pair"); done
  kubectl -n "$NAMESPACE" create secret generic "$name" "${args[@]}" --dry-run=client -o yaml \
    | kubectl apply -f - >/dev/null
}

deploy() {
  helm upgrade --install "$RELEASE" "$ROOT/charts/lakeport" --namespace "$NAMESPACE" \
    -f "$PLATFORM_FILE" --wait --wait-for-jobs --timeout "$HELM_TIMEOUT" >/dev/null
}

webserver_url() {
  local ip port
  ip="$(kubectl -n "$NAMESPACE" get service "$RELEASE-webserver" -o jsonpath='{.spec.clusterIP}')"
  port="$(kubectl -n "$NAMESPACE" get service "$RELEASE-webserver" -o jsonpath='{.spec.ports[0].port}')"
  printf 'http://%s:%s\n' "$ip" "$port"
}

cmd_env() {
  cat <<EOF
export KUBECONFIG=$KUBECONFIG
export LAKEPORT_E2E_CONTEXT=$CONTEXT
export LAKEPORT_E2E_NAMESPACE=$NAMESPACE
export LAKEPORT_E2E_PLATFORM_FILE=$PLATFORM_FILE
export LAKEPORT_E2E_URL=$(webserver_url)
export LAKEPORT_E2E_REQUIRED=1
export LAKEPORT_E2E_AUDIT_LOG=$STATE/logs/audit.log
export LAKEPORT_E2E_LINEAGE_EVENTS=$SERVICES/lineage-events.jsonl
EOF
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "needs root (the cluster, podman, the host services)"
  local started=$SECONDS
  timed "images (podman)" build_images
  timed "cluster" bash "$ROOT/scripts/local-cluster.sh" up
  timed "image load" bash "$ROOT/scripts/local-cluster.sh" load "$IMAGE" "$SHOP_IMAGE"
  timed "host services" start_services
  namespace_and_secrets
  timed "helm install --wait --wait-for-jobs" deploy
  log "up in $((SECONDS - started)) s; the UI: $(webserver_url) (from this host)"
}

cmd_down() {
  # The cluster's and the services' logs outlive it, for whoever reads a failed run.
  if [ -d "$STATE/logs" ]; then
    mkdir -p "$ROOT/test-artifacts/local-cluster"
    cp -r "$STATE/logs" "$ROOT/test-artifacts/local-cluster/" 2>/dev/null || true
    cp "$SERVICES"/*.log "$SERVICES"/*.jsonl "$ROOT/test-artifacts/local-cluster/" 2>/dev/null || true
  fi
  if [ -f "$KUBECONFIG" ]; then
    helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 5m >/dev/null 2>&1 || true
  fi
  stop_services
  bash "$ROOT/scripts/local-cluster.sh" down
}

cmd_run() {
  [ $# -gt 0 ] || die "usage: $0 run COMMAND..."
  local status=0
  trap cmd_down EXIT
  cmd_up
  eval "$(cmd_env)"
  "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  up) cmd_up ;;
  run) shift; cmd_run "$@" ;;
  env) cmd_env ;;
  down) cmd_down ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
