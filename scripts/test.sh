#!/usr/bin/env bash
# The whole test suite: lints, then every test of every crate.
# It installs and starts the real services the tests need (a PostgreSQL
# server for the control plane's PostgreSQL tests, headless Chromium for
# the ledger report's browser test), so it passes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all --check

echo "== clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -q -- -D warnings

echo "== services"
if [ -z "${SKYWARD_TEST_DATABASE_URL:-}" ]; then
  eval "$(scripts/postgres.sh start)"
  trap 'scripts/postgres.sh stop "$SKYWARD_TEST_PG_DIR"' EXIT
fi
echo "PostgreSQL for tests: $SKYWARD_TEST_DATABASE_URL"
if [ -z "${SKYWARD_TEST_CHROMIUM:-}" ]; then
  eval "$(scripts/chromium.sh)"
fi
echo "Chromium for tests: $SKYWARD_TEST_CHROMIUM"

echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
