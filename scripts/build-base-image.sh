#!/usr/bin/env bash
# A local Python base image for images/lakeport/Dockerfile where no registry can be reached:
#
#   scripts/build-base-image.sh [IMAGE]     (default localhost/lakeport-python:3.11-bookworm)
#
# debootstrap (minbase) of Debian bookworm from this machine's own Debian mirror, imported
# into podman as localhost/lakeport-rootfs:bookworm, then images/base/Containerfile adds
# Debian's python3.11 and this machine's CA bundle. Root only (debootstrap, rootful podman).
# Kept when it exists: remove the image (podman rmi IMAGE) to make it again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${1:-localhost/lakeport-python:3.11-bookworm}"
ROOTFS_IMAGE="localhost/lakeport-rootfs:bookworm"
SUITE="bookworm"
CA_BUNDLE="${LAKEPORT_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { printf 'build-base-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and rootful podman)"
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-system-deps.sh installs it)"
done
[ -s "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set LAKEPORT_CA_BUNDLE)"

if podman image exists "$IMAGE"; then
  log "$IMAGE exists; keeping it"
  exit 0
fi

# The first deb822 or one-line Debian mirror this machine's apt uses.
mirror() {
  local uri
  uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
  if [ -z "$uri" ]; then
    uri="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
  fi
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"
  printf '%s\n' "$uri"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$ROOTFS_IMAGE"; then
  url="$(mirror)"
  log "debootstrap $SUITE (minbase) from $url"
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$url" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  tar -C "$work/rootfs" -c . | podman import --quiet - "$ROOTFS_IMAGE" >/dev/null
  rm -rf "$work/rootfs"
fi

mkdir -p "$work/context"
cp "$ROOT/images/base/Containerfile" "$CA_BUNDLE" "$work/context/"
[ "$(basename "$CA_BUNDLE")" = ca-certificates.crt ] || mv "$work/context/$(basename "$CA_BUNDLE")" "$work/context/ca-certificates.crt"
log "building $IMAGE"
podman build --quiet --build-arg "ROOTFS=$ROOTFS_IMAGE" -t "$IMAGE" "$work/context" >/dev/null
log "built $IMAGE"
