#!/usr/bin/env bash
# The whole test suite: lints, then every test of every crate.
# It installs and starts the real services the tests need (a PostgreSQL
# server for the control plane's PostgreSQL tests, a two-node Slurm
# cluster for the Slurm executor's tests, moto's S3 server and Azurite for
# the checkpoint stores, headless Chromium and ChromeDriver for the ledger
# report's and the dashboard's browser tests, nginx for the gateway bench's comparison, the official OpenAI Python
# client for the gateway's tests, Redis for the gateway replicas' shared
# limits, podman with runc and an image built from busybox for runs in
# containers), so it passes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean clone gains nothing from incremental compilation, and its cache
# doubles the size of target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== format"
cargo fmt --all --check

echo "== clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -q -- -D warnings

echo "== services"
cleanup() {
  if [ -n "${STARTED_PG:-}" ]; then scripts/postgres.sh stop "$SKYWARD_TEST_PG_DIR" || true; fi
  if [ -n "${STARTED_SLURM:-}" ]; then scripts/slurm.sh stop "$SKYWARD_TEST_SLURM_DIR" || true; fi
  if [ -n "${STARTED_OBJSTORE:-}" ]; then scripts/objstore.sh stop "$SKYWARD_TEST_OBJSTORE_DIR" || true; fi
  if [ -n "${STARTED_REDIS:-}" ]; then scripts/redis.sh stop "$SKYWARD_TEST_REDIS_DIR" || true; fi
}
trap cleanup EXIT
if [ -z "${SKYWARD_TEST_DATABASE_URL:-}" ]; then
  eval "$(scripts/postgres.sh start)"
  STARTED_PG=1
fi
echo "PostgreSQL for tests: $SKYWARD_TEST_DATABASE_URL"
if [ -z "${SKYWARD_TEST_SLURM_CONF:-}" ]; then
  eval "$(scripts/slurm.sh start)"
  STARTED_SLURM=1
fi
echo "Slurm for tests: $SKYWARD_TEST_SLURM_CONF (nodes n1, n2)"
if [ -z "${SKYWARD_TEST_S3_ENDPOINT:-}" ]; then
  eval "$(scripts/objstore.sh start)"
  STARTED_OBJSTORE=1
fi
echo "Object stores for tests: S3 (moto) $SKYWARD_TEST_S3_ENDPOINT, Azure Blob (Azurite) $SKYWARD_TEST_AZURE_ENDPOINT"
if [ -z "${SKYWARD_TEST_CHROMIUM:-}" ] || [ -z "${SKYWARD_TEST_CHROMEDRIVER:-}" ]; then
  eval "$(scripts/chromium.sh)"
fi
echo "Chromium for tests: $SKYWARD_TEST_CHROMIUM, ChromeDriver $SKYWARD_TEST_CHROMEDRIVER"
if [ -z "${SKYWARD_TEST_NGINX:-}" ]; then
  eval "$(scripts/nginx.sh)"
fi
echo "nginx for tests: $SKYWARD_TEST_NGINX"
if [ -z "${SKYWARD_TEST_PYTHON:-}" ]; then
  eval "$(scripts/pyclients.sh)"
fi
echo "OpenAI's Python client for tests: $SKYWARD_TEST_PYTHON"
if [ -z "${SKYWARD_TEST_REDIS_URL:-}" ]; then
  eval "$(scripts/redis.sh start)"
  STARTED_REDIS=1
fi
echo "Redis for tests: $SKYWARD_TEST_REDIS_URL"
if [ -z "${SKYWARD_TEST_CONTAINER_RUNTIME:-}" ] || [ -z "${SKYWARD_TEST_CONTAINER_IMAGE:-}" ]; then
  eval "$(scripts/podman.sh)"
fi
echo "Containers for tests: $SKYWARD_TEST_CONTAINER_RUNTIME, image $SKYWARD_TEST_CONTAINER_IMAGE"

echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
