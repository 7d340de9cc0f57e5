#!/usr/bin/env bash
# Starts the object stores the checkpoint tests use: moto's
# S3 server (PyPI moto[server]) and Azurite's Blob service (npm azurite),
# each installed first if missing, with a bucket and a container named
# skyward-test. They listen on every address of this host, so that a
# site in a network namespace reaches them over its link (the printed
# endpoints say 127.0.0.1). Prints the variables to export:
#   eval "$(scripts/objstore.sh start)"   …   scripts/objstore.sh stop DIR
# SKYWARD_TEST_S3_ENDPOINT, SKYWARD_TEST_AZURE_ENDPOINT (the account URL),
# SKYWARD_TEST_AZURE_ACCOUNT, SKYWARD_TEST_AZURE_KEY (Azurite's well-known
# development account), SKYWARD_TEST_OBJSTORE_DIR.
set -euo pipefail

# Azurite's published development account.
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZURITE_VERSION=3.35.0
NPM_DIR=${SKYWARD_AZURITE_DIR:-$HOME/.cache/skyward/azurite-$AZURITE_VERSION}

SCRIPT=objstore.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

need() {
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "objstore.sh: installing moto[server] from PyPI" >&2
    python3 -m pip install -q --disable-pip-version-check 'moto[server]>=5,<6' >&2
  fi
  if [ ! -x "$NPM_DIR/node_modules/.bin/azurite-blob" ]; then
    echo "objstore.sh: installing azurite@$AZURITE_VERSION from npm into $NPM_DIR" >&2
    mkdir -p "$NPM_DIR"
    (cd "$NPM_DIR" && npm install --silent --no-audit --no-fund --no-save "azurite@$AZURITE_VERSION" >&2)
  fi
}

# Creates a Blob container with a Shared Key request (Azurite checks it).
az_create_container() { # endpoint container
  python3 - "$1" "$2" "$AZ_ACCOUNT" "$AZ_KEY" <<'PY'
import base64, hashlib, hmac, sys, urllib.request, urllib.error
from email.utils import formatdate
endpoint, container, account, key = sys.argv[1:5]
url = f"{endpoint}/{container}?restype=container"
path = urllib.parse.urlparse(url).path
date = formatdate(usegmt=True)
version = "2021-08-06"
ctype = "application/octet-stream"  # urllib would add a form type
sts = "\n".join(["PUT", "", "", "", "", ctype] + [""] * 6) + f"\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}{path}\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(url, method="PUT", data=b"", headers={
    "Content-Type": ctype, "x-ms-date": date, "x-ms-version": version, "Authorization": f"SharedKey {account}:{sig}"})
try:
    urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    if e.code != 409:  # exists already
        sys.exit(f"objstore.sh: create container {container}: HTTP {e.code} {e.read()[:300]!r}")
PY
}

start() {
  need
  DIR=$(mktemp -d /tmp/skyward-objstore.XXXXXX)
  trap 'echo "objstore.sh: start failed; logs in $DIR" >&2; tail -n 20 "$DIR"/*.log >&2 2>/dev/null || true; stop "$DIR"' ERR
  local s3_port az_port
  s3_port=$(free_port)
  setsid moto_server -H 0.0.0.0 -p "$s3_port" > "$DIR/moto.log" 2>&1 < /dev/null &
  echo $! > "$DIR/moto.pid"
  az_port=$(free_port)
  mkdir -p "$DIR/azurite"
  setsid "$NPM_DIR/node_modules/.bin/azurite-blob" --blobHost 0.0.0.0 --blobPort "$az_port" \
    --location "$DIR/azurite" --skipApiVersionCheck --silent > "$DIR/azurite.log" 2>&1 < /dev/null &
  echo $! > "$DIR/azurite.pid"
  local s3="http://127.0.0.1:$s3_port" az="http://127.0.0.1:$az_port/$AZ_ACCOUNT"
  wait_for "moto S3 server" 30 curl -sf "$s3/"
  wait_for "Azurite" 30 curl -s -o /dev/null "http://127.0.0.1:$az_port/"
  # moto takes an unsigned CreateBucket.
  curl -sf -X PUT "$s3/skyward-test" > /dev/null
  az_create_container "$az" skyward-test
  trap - ERR
  echo "export SKYWARD_TEST_S3_ENDPOINT=$s3"
  echo "export SKYWARD_TEST_AZURE_ENDPOINT=$az"
  echo "export SKYWARD_TEST_AZURE_ACCOUNT=$AZ_ACCOUNT"
  echo "export SKYWARD_TEST_AZURE_KEY='$AZ_KEY'"
  echo "export SKYWARD_TEST_OBJSTORE_DIR=$DIR"
}

stop() {
  local DIR=$1 f
  [ -d "$DIR" ] || return 0
  for f in "$DIR/moto.pid" "$DIR/azurite.pid"; do
    # setsid: each is its own process group, with its children.
    [ -f "$f" ] && kill -- "-$(cat "$f")" 2>/dev/null || true
  done
  sleep 0.3
  rm -rf "$DIR" 2>/dev/null || { sleep 1; rm -rf "$DIR"; }
}

case "${1:-}" in
start) start ;;
stop) stop "${2:?usage: objstore.sh stop DIR}" ;;
*) echo "usage: objstore.sh start | stop DIR" >&2; exit 2 ;;
esac
