#!/usr/bin/env bash
# README's second command: the whole test suite (units, router/spec check, end-to-end).
#
# Tests that need root or a package are marked #[ignore = "<reason>"] so that a plain
# `cargo nextest run` as any user skips them and says why; this script runs everything,
# ignored tests included, and so needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh needs root: most tests start daemons and containers (namespaces, mounts, cgroups)" >&2
  exit 1
fi
bash scripts/install-deps.sh
cargo build --workspace --bins --tests
cargo nextest run --workspace --run-ignored all --no-fail-fast
