#!/usr/bin/env bash
# Headless Chromium and ChromeDriver for the browser tests (Debian's
# chromium and chromium-driver): the ledger report's page, and the
# dashboard driven through WebDriver. Installs them when missing (as root,
# with apt-get) and prints the exports the tests read:
#   eval "$(scripts/chromium.sh)"
set -euo pipefail
BIN=""
for b in /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -x "$b" ]; then BIN=$b; break; fi
done
DRIVER=""
if [ -x /usr/bin/chromedriver ]; then DRIVER=/usr/bin/chromedriver; fi
if [ -z "$BIN" ] || [ -z "$DRIVER" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "chromium.sh: installing Chromium and ChromeDriver from Debian packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2; }
    BIN=/usr/bin/chromium
    DRIVER=/usr/bin/chromedriver
  else
    echo "chromium.sh: no Chromium or ChromeDriver; install Debian's chromium and chromium-driver packages" >&2
    exit 1
  fi
fi
echo "export SKYWARD_TEST_CHROMIUM=$BIN"
echo "export SKYWARD_TEST_CHROMEDRIVER=$DRIVER"
