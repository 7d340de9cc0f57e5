#!/usr/bin/env bash
# nginx for `skyward bench gateway`'s comparison and its test (Debian's
# nginx-light). Installs it when missing (as root, with apt-get) and prints
# the export the tests read:
#   eval "$(scripts/nginx.sh)"
set -euo pipefail
BIN=""
for b in /usr/sbin/nginx /usr/bin/nginx; do
  if [ -x "$b" ]; then BIN=$b; break; fi
done
if [ -z "$BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "nginx.sh: installing nginx-light from Debian packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2; }
    BIN=/usr/sbin/nginx
  else
    echo "nginx.sh: no nginx; install Debian's nginx-light package" >&2
    exit 1
  fi
fi
# The package starts a system nginx on port 80; the bench runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx >&2 || true
fi
echo "export SKYWARD_TEST_NGINX=$BIN"
