#!/usr/bin/env bash
# README's first command: install, build, start berthd, load busybox, run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --workspace --bins
install -m 0755 target/release/berthd target/release/berth target/release/berth-shim target/release/berth-runtime /usr/local/bin/
sock=/run/berth/berth.sock
if ! berth version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup berthd >/var/log/berthd.log 2>&1 &
  for _ in $(seq 100); do [ -S "$sock" ] && berth version >/dev/null 2>&1 && break; sleep 0.1; done
fi
bash scripts/make-busybox-image.sh /tmp/berth-busybox.tar --tag busybox:latest
berth load -i /tmp/berth-busybox.tar
berth run --rm busybox echo hello
