# Shared by the scripts that start test services (sourced, not run).
# SCRIPT: the calling script's name, for messages.

# A free loopback port (the kernel's pick).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for WHAT SECONDS COMMAND…: runs COMMAND every 0.1 s until it
# succeeds; fails saying WHAT did not come up.
wait_for() {
  local what=$1 secs=$2; shift 2
  local i
  for i in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$SCRIPT: $what did not come up in ${secs}s" >&2
  return 1
}
