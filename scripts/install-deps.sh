#!/usr/bin/env bash
# Installs what building and testing berth needs on a fresh Debian 12 machine (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(busybox-static runc libseccomp-dev pkg-config gcc make iproute2 ca-certificates python3 python3-venv tini bsdutils procps)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# docker-py, for the end-to-end tests that drive berthd as Python clients do.
venv="$(dirname "$0")/../target/pyenv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import docker' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'docker==7.1.0'
fi
# The registry the pull/push tests run (distribution 2.8) and htpasswd for its Basic auth.
# The package's own service (on :5000) is not wanted: the tests start registries of their
# own on free loopback ports.
for p in docker-registry apache2-utils; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    apt-get update -qq
    apt-get install -y -qq "$p"
  fi
done
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/docker-registry ]; then
  /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi
