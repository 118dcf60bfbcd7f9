#!/usr/bin/env bash
# README's second command: the whole test suite (units, router/spec check, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --bins --tests
cargo nextest run --workspace --no-fail-fast
