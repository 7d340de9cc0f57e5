#!/usr/bin/env bash
# A Redis server for the gateway's shared-limits tests (Debian's
# redis-server). Installs it when missing (as root, with apt-get), starts
# one on a free loopback port with no persistence, and prints the exports
# the tests read:
#   eval "$(scripts/redis.sh start)"     ...     scripts/redis.sh stop DIR
set -euo pipefail
cmd=${1:-start}
if [ "$cmd" = stop ]; then
  dir=${2:?usage: redis.sh stop DIR}
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "redis.sh: installing redis-server from Debian packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2; }
  else
    echo "redis.sh: no redis-server; install Debian's redis-server package" >&2
    exit 1
  fi
fi
dir=$(mktemp -d /tmp/skyward-redis.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >&2
for _ in $(seq 1 100); do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
  sleep 0.05
done
redis-cli -p "$port" ping >&2
echo "export SKYWARD_TEST_REDIS_URL=redis://127.0.0.1:$port SKYWARD_TEST_REDIS_DIR=$dir"
