#!/usr/bin/env bash
# Debian packages the tests need: PostgreSQL server binaries (integration tests and
# `make dev`), Chromium + ChromeDriver (UI tests), and a Java 17+ runtime with Maven (the
# Iceberg REST catalog server the REST-catalog tests run), and what the local Kubernetes
# cluster and the image build need (scripts/local-cluster.sh, scripts/e2e-local.sh):
# podman, containerd, runc, the CNI plugins, debootstrap, iptables, conntrack. Idempotent:
# installs only what is missing.
set -euo pipefail

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v containerd >/dev/null || missing+=(containerd)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v iptables >/dev/null || missing+=(iptables)
command -v conntrack >/dev/null || missing+=(conntrack)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "install-system-deps: need these Debian packages: ${missing[*]} (run as root or install them yourself)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-system-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian postgresql package starts a cluster of its own; the project runs its own servers.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v service >/dev/null; then
  $SUDO service postgresql stop >/dev/null 2>&1 || true
fi
