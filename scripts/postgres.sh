#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests and prints the
# variables to export (SKYWARD_TEST_DATABASE_URL, SKYWARD_TEST_PG_DIR).
# Uses the installed binaries (Debian's postgresql package); installs the
# package first if it is missing and we may. initdb refuses to run as
# root, so as root the server runs as the `postgres` user (or `nobody`).
#   eval "$(scripts/postgres.sh start)"   …   scripts/postgres.sh stop DIR
set -euo pipefail

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

case "${1:-}" in
start)
  if ! BIN=$(find_bin); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
      BIN=$(find_bin)
    else
      echo "postgres.sh: no PostgreSQL binaries (/usr/lib/postgresql/*/bin); install the postgresql package" >&2
      exit 1
    fi
  fi
  DIR=$(mktemp -d /tmp/skyward-pg.XXXXXX)
  chmod 755 "$DIR"
  RUN=()
  if [ "$(id -u)" = 0 ]; then
    USER_NAME=postgres
    id "$USER_NAME" >/dev/null 2>&1 || USER_NAME=nobody
    chown "$USER_NAME" "$DIR"
    RUN=(runuser -u "$USER_NAME" --)
  fi
  # A free port: ask the kernel for one.
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U skyward --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2 \
    || { cat "$DIR/server.log" >&2; exit 1; }
  echo "export SKYWARD_TEST_DATABASE_URL=postgres://skyward@127.0.0.1:$PORT/postgres"
  echo "export SKYWARD_TEST_PG_DIR=$DIR"
  ;;
stop)
  DIR=${2:?usage: postgres.sh stop DIR}
  BIN=$(find_bin)
  RUN=()
  if [ "$(id -u)" = 0 ]; then RUN=(runuser -u "$(stat -c %U "$DIR")" --); fi
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
  ;;
*)
  echo "usage: postgres.sh start | stop DIR" >&2
  exit 2
  ;;
esac
