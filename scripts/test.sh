#!/usr/bin/env bash
# The whole test suite: lints, then every test of every crate.
# Later issues add real services here (PostgreSQL, Slurm); this script
# installs and starts whatever the tests need, so it passes on a fresh
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all --check

echo "== clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -q -- -D warnings

echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
