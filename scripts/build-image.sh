#!/usr/bin/env bash
# Build a lakeport image from images/lakeport/Dockerfile:
#
#   scripts/build-image.sh TAG [TARGET]
#
# TARGET: empty for the platform image (with the demo), `base` for the base image that a
# team's code location builds FROM.
#
# With docker when its engine answers, else with podman. PYTHON_IMAGE (the Dockerfile's
# build argument) picks the base: unset, the Dockerfile's python:3.11 slim image from a
# registry; a name, that image (a base of your own, e.g. with a corporate CA); `local`,
# a base made on this machine by scripts/build-base-image.sh, for machines that reach no
# registry (root, podman only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${1:?usage: build-image.sh TAG [TARGET]}"
TARGET="${2:-}"
LOCAL_BASE="localhost/lakeport-python:3.11-bookworm"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/cluster/containers.conf}"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null 2>&1; then
  engine=podman
else
  die "neither a docker engine nor podman is available to build $TAG"
fi

args=()
base="${PYTHON_IMAGE:-}"
if [ "$base" = local ]; then
  [ "$engine" = podman ] || die "PYTHON_IMAGE=local needs podman (scripts/build-base-image.sh)"
  bash "$ROOT/scripts/build-base-image.sh" "$LOCAL_BASE"
  base="$LOCAL_BASE"
fi
if [ -n "$base" ]; then args+=(--build-arg "PYTHON_IMAGE=$base"); fi
if [ -n "$TARGET" ]; then args+=(--target "$TARGET"); fi

log "building $TAG${TARGET:+ (target $TARGET)} with $engine${base:+ on $base}"
started=$SECONDS
"$engine" build --quiet "${args[@]}" --file "$ROOT/images/lakeport/Dockerfile" --tag "$TAG" "$ROOT" >/dev/null
log "built $TAG in $((SECONDS - started)) s"
