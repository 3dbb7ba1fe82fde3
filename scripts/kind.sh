#!/usr/bin/env bash
# lakeport on kind: `make kind-up | images | deploy | e2e | down` run this script.
#
#   scripts/kind.sh up       kind cluster from kind/kind-config.yaml + ingress-nginx (pinned)
#   scripts/kind.sh images   docker build the lakeport image, kind load it into the cluster
#   scripts/kind.sh deploy   helm upgrade --install the chart with platform-config/kind/platform.yaml
#   scripts/kind.sh e2e      up, images, deploy, then pytest -m e2e tests/e2e
#   scripts/kind.sh down     delete the cluster
#   scripts/kind.sh check TOOL...   only check that the tools are there
#
# Every subcommand checks its tools first, names exactly the ones that are missing, and
# can be run again: an existing cluster, a loaded image or an installed release is fine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# helm comes from `make install` (.tools/bin) unless the machine has its own.
command -v helm >/dev/null 2>&1 || PATH="${LAKEPORT_TOOLS_BIN:-$ROOT/.tools/bin}:$PATH"

CLUSTER="${KIND_CLUSTER_NAME:-lakeport}"
CONTEXT="kind-$CLUSTER"
KIND_CONFIG="$ROOT/kind/kind-config.yaml"
NAMESPACE="lakeport"
RELEASE="lakeport"
PLATFORM_FILE="$ROOT/platform-config/kind/platform.yaml"
# Must match images.lakeport in $PLATFORM_FILE (tests/e2e checks that it does).
IMAGE="lakeport:dev"
# What a team's code location builds FROM (`lakeport new-location`); built beside it.
BASE_IMAGE="lakeport-base:dev"
DOCKERFILE="$ROOT/images/lakeport/Dockerfile"
INGRESS_NGINX_VERSION="controller-v1.14.3"
INGRESS_NGINX_MANIFEST="https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
HELM_TIMEOUT="${HELM_TIMEOUT:-15m}"

log() { printf 'kind.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

install_hint() {
  case "$1" in
    docker) echo "https://docs.docker.com/engine/install/" ;;
    kind) echo "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
    kubectl) echo "https://kubernetes.io/docs/tasks/tools/" ;;
    helm) echo "run 'make install' (puts helm v3.19.0 in .tools/bin) or see https://helm.sh/docs/intro/install/" ;;
    *) echo "install it and put it on PATH" ;;
  esac
}

# require TOOL...: every tool on PATH, and a reachable engine when docker is one of them.
require() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    for tool in "${missing[@]}"; do
      log "missing tool: $tool is not on PATH ($(install_hint "$tool"))"
    done
    die "cannot continue without: ${missing[*]}"
  fi
  for tool in "$@"; do
    if [ "$tool" = docker ] && ! docker info >/dev/null 2>&1; then
      die "docker is installed but its engine is not reachable ('docker info' failed): start Docker, or check DOCKER_HOST and your permissions on the socket"
    fi
  done
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER"
}

require_cluster() {
  cluster_exists || die "no kind cluster named '$CLUSTER': run 'make kind-up' first"
  # A kubeconfig that lost the context (another KUBECONFIG, a cleanup) gets it back.
  kubectl config get-contexts "$CONTEXT" >/dev/null 2>&1 || kind export kubeconfig --name "$CLUSTER" >/dev/null
}

cmd_up() {
  require docker kind kubectl
  if cluster_exists; then
    log "kind cluster '$CLUSTER' exists; keeping it"
    kind export kubeconfig --name "$CLUSTER" >/dev/null
  else
    local image_args=()
    if [ -n "${KIND_NODE_IMAGE:-}" ]; then
      image_args=(--image "$KIND_NODE_IMAGE")
    fi
    log "creating kind cluster '$CLUSTER' from ${KIND_CONFIG#"$ROOT"/}"
    # (the +-expansion keeps bash 3.2, macOS's /bin/bash, happy with an empty array)
    kind create cluster --name "$CLUSTER" --config "$KIND_CONFIG" --wait 180s ${image_args[@]+"${image_args[@]}"}
  fi
  log "installing ingress-nginx $INGRESS_NGINX_VERSION"
  kubectl --context "$CONTEXT" apply -f "$INGRESS_NGINX_MANIFEST" >/dev/null
  # The admission webhook must answer before the chart's Ingress can be created.
  kubectl --context "$CONTEXT" -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s
  kubectl --context "$CONTEXT" -n ingress-nginx wait pod \
    --selector=app.kubernetes.io/component=controller --for=condition=Ready --timeout=300s >/dev/null
  log "cluster '$CLUSTER' is ready; kubectl context: $CONTEXT"
}

cmd_images() {
  if ! docker info >/dev/null 2>&1 && command -v podman >/dev/null 2>&1; then
    # No docker engine, so no kind: build with podman (the local cluster's way).
    bash "$ROOT/scripts/build-image.sh" "$IMAGE"
    bash "$ROOT/scripts/build-image.sh" "$BASE_IMAGE" base
    log "built $IMAGE and $BASE_IMAGE with podman; kind needs docker, so it is not loaded anywhere (the local cluster: scripts/local-cluster.sh load localhost/$IMAGE)"
    return 0
  fi
  require docker kind kubectl
  require_cluster
  log "building $IMAGE from ${DOCKERFILE#"$ROOT"/}"
  bash "$ROOT/scripts/build-image.sh" "$IMAGE"
  bash "$ROOT/scripts/build-image.sh" "$BASE_IMAGE" base
  log "loading $IMAGE into kind cluster '$CLUSTER'"
  load_image
  restart_lakeport_workloads
}

# `kind load docker-image` fails with "content digest ... not found" when Docker keeps
# images in its containerd image store (the default since Docker 29; kind issue #3795).
# Then load an archive of the engine's own platform only, which is what the node runs.
load_image() {
  if kind load docker-image "$IMAGE" --name "$CLUSTER"; then
    return 0
  fi
  local platform archive status=0
  platform="$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}')"
  log "kind load docker-image failed; loading a $platform archive of $IMAGE instead"
  archive="$(mktemp "${TMPDIR:-/tmp}/lakeport-image.XXXXXX")"
  docker image save --platform "$platform" --output "$archive" "$IMAGE" \
    && kind load image-archive "$archive" --name "$CLUSTER" || status=$?
  rm -f "$archive"
  [ "$status" -eq 0 ] || die "could not load $IMAGE into kind cluster '$CLUSTER'"
}

# The tag stays `dev` (pullPolicy Never), so pods started before a rebuild keep the old
# image: roll the deployments that run it. Run pods start from the node's current image.
restart_lakeport_workloads() {
  kubectl --context "$CONTEXT" get namespace "$NAMESPACE" >/dev/null 2>&1 || return 0
  local name images
  while IFS=$'\t' read -r name images; do
    [ -n "$name" ] || continue
    case " $images " in
      *" $IMAGE "* | *" docker.io/library/$IMAGE "*)
        log "restarting deployment/$name onto the new image"
        kubectl --context "$CONTEXT" -n "$NAMESPACE" rollout restart "deployment/$name" >/dev/null
        ;;
    esac
  done < <(kubectl --context "$CONTEXT" -n "$NAMESPACE" get deployments \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.spec.template.spec.containers[*].image}{"\n"}{end}')
}

image_in_cluster() {
  local node="${CLUSTER}-control-plane"
  docker exec "$node" crictl inspecti "docker.io/library/$IMAGE" >/dev/null 2>&1
}

cmd_deploy() {
  require docker kind kubectl helm
  require_cluster
  image_in_cluster || die "image $IMAGE is not in kind cluster '$CLUSTER' (its pull policy is Never): run 'make images' first"
  log "helm upgrade --install $RELEASE (namespace $NAMESPACE, timeout $HELM_TIMEOUT)"
  if ! helm upgrade --install "$RELEASE" "$ROOT/charts/lakeport" \
      --kube-context "$CONTEXT" --namespace "$NAMESPACE" --create-namespace \
      --values "$PLATFORM_FILE" --wait --wait-for-jobs --timeout "$HELM_TIMEOUT"; then
    log "deploy failed; the state of namespace $NAMESPACE:"
    kubectl --context "$CONTEXT" -n "$NAMESPACE" get pods,jobs -o wide >&2 || true
    kubectl --context "$CONTEXT" -n "$NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 >&2 || true
    die "helm upgrade --install $RELEASE failed"
  fi
  log "deployed; the Dagster UI is at http://localhost/"
}

cmd_e2e() {
  require docker kind kubectl helm
  local python="$ROOT/.venv/bin/python"
  [ -x "$python" ] || die "no .venv: run 'make install' first"
  cmd_up
  cmd_images
  cmd_deploy
  log "running the end-to-end tests against context $CONTEXT"
  # Required: a missing cluster is a failure here, not a skip.
  LAKEPORT_E2E_REQUIRED=1 LAKEPORT_E2E_CONTEXT="$CONTEXT" \
    "$python" -m pytest -m e2e "$ROOT/tests/e2e" "$@"
}

cmd_down() {
  require docker kind
  if cluster_exists; then
    kind delete cluster --name "$CLUSTER"
  else
    log "no kind cluster named '$CLUSTER'; nothing to delete"
  fi
}

main() {
  local command="${1:-}"
  shift || true
  case "$command" in
    up) cmd_up ;;
    images) cmd_images ;;
    deploy) cmd_deploy ;;
    e2e) cmd_e2e "$@" ;;
    down) cmd_down ;;
    check)
      [ $# -gt 0 ] || die "check: name the tools to check"
      require "$@"
      ;;
    *) die "usage: scripts/kind.sh up|images|deploy|e2e|down|check TOOL..." ;;
  esac
}

main "$@"
