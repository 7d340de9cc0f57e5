#!/usr/bin/env bash
# Headless Chromium for the report's browser test (Debian's chromium).
# Installs it when missing (as root, with apt-get) and prints the export
# the tests read:
#   eval "$(scripts/chromium.sh)"
set -euo pipefail
BIN=""
for b in /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -x "$b" ]; then BIN=$b; break; fi
done
if [ -z "$BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "chromium.sh: installing Chromium from Debian packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }
    BIN=/usr/bin/chromium
  else
    echo "chromium.sh: no Chromium; install Debian's chromium package" >&2
    exit 1
  fi
fi
echo "export SKYWARD_TEST_CHROMIUM=$BIN"
