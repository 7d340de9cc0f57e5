#!/usr/bin/env bash
# A container runtime for the local executor's container tests: Debian's
# podman with runc, and a small image built here (no registry is
# reachable): busybox-static's applets in an otherwise empty root file
# system, imported as localhost/skyward-test:busybox-2. Installs what is
# missing (as root, with apt-get). The runtime is a wrapper that gives
# podman runc and a containers.conf that leaves resource limits as they
# are (a sandboxed machine may refuse to raise them), as a site's
# operator would. Prints the exports the tests read:
#   eval "$(scripts/podman.sh)"
set -euo pipefail
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "podman.sh: installing ${need[*]} from Debian packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
  else
    echo "podman.sh: missing ${need[*]}; install Debian's packages" >&2
    exit 1
  fi
fi
dir=/tmp/skyward-podman
mkdir -p "$dir"
cat > "$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
cat > "$dir/podman" <<WRAP
#!/bin/sh
exec env CONTAINERS_CONF=$dir/containers.conf $(command -v podman) "\$@"
WRAP
chmod 755 "$dir/podman"
image=localhost/skyward-test:busybox-2
if ! "$dir/podman" image exists "$image" 2>/dev/null; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  echo "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh" > "$root/etc/passwd"
  tar -C "$root" -cf "$dir/rootfs.tar" .
  rm -rf "$root"
  "$dir/podman" import "$dir/rootfs.tar" "$image" >&2
fi
"$dir/podman" run --rm --network host "$image" /bin/sh -c 'echo podman.sh: a container runs' >&2
echo "export SKYWARD_TEST_CONTAINER_RUNTIME=$dir/podman SKYWARD_TEST_CONTAINER_IMAGE=$image"
