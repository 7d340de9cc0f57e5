#!/usr/bin/env bash
# Starts a throwaway Slurm cluster for the tests: munge, slurmctld and two
# slurmd nodes (n1, n2), each node in its own network namespace and host
# name, so that a 2-node job really spans two slurmd, and slurmrestd on a
# UNIX socket (rest_auth/local, as nobody: slurmrestd refuses root; its
# jobs run as nobody). Debian's packages (slurmctld, slurmd, slurm-client,
# munge, slurmrestd), installed first if missing and we may. Needs root
# (network namespaces). Prints the variables to export:
#   eval "$(scripts/slurm.sh start)"   …   scripts/slurm.sh stop DIR
# SKYWARD_TEST_SLURM_CONF: the slurm.conf (export SLURM_CONF=it for the
# Slurm commands); SKYWARD_TEST_SLURM_DIR: the cluster's directory;
# SKYWARD_TEST_SLURMRESTD: slurmrestd's socket (unix:PATH), API v0.0.38.
set -euo pipefail

NODES=(n1 n2)
# Each node: accelerators (GRES gpu, no devices) and CPUs.
GPUS_PER_NODE=2

need() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmrestd >/dev/null || missing+=(slurmrestd)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "slurm.sh: installing ${missing[*]} from Debian packages" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
    else
      echo "slurm.sh: missing ${missing[*]} (Debian packages slurmctld slurmd slurm-client munge)" >&2
      exit 1
    fi
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "slurm.sh: needs root (network namespaces for the nodes)" >&2
    exit 1
  fi
}

SCRIPT=slurm.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

start() {
  need
  DIR=$(mktemp -d /tmp/skyward-slurm.XXXXXX)
  chmod 755 "$DIR"
  # A start that fails half-way leaves nothing behind.
  trap 'echo "slurm.sh: start failed; logs were in $DIR/log" >&2; tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null || true; stop "$DIR"' ERR
  # A free 10.N.0.0/16 for the nodes' links (another cluster may run;
  # two starts at once take the lock in turn). The addresses are read
  # once into a variable: `ip … | grep -q` under pipefail fails when grep
  # stops reading first (SIGPIPE), which made a taken subnet look free.
  exec 9>/tmp/skyward-slurm.lock
  flock 9
  local taken
  taken=$(ip -4 -o addr show)
  NET=""
  for n in $(seq 77 250); do
    case "$taken" in *" 10.$n."*) ;; *) NET=$n; break ;; esac
  done
  [ -n "$NET" ] || { echo "slurm.sh: no free 10.N.0.0/16 for the nodes" >&2; false; }
  TAG=$(basename "$DIR" | tr -dc 'a-zA-Z0-9' | tail -c 6)
  mkdir -p "$DIR/state" "$DIR/log"
  # munge: its own key and socket.
  dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$DIR/munge.key"
  chmod 400 "$DIR/munge.key"
  mkdir -p "$DIR/munge"
  chown munge:munge "$DIR/munge"
  chmod 700 "$DIR/munge"
  runuser -u munge -- munged --key-file "$DIR/munge.key" \
    --socket "$DIR/munge/munge.sock" --pid-file "$DIR/munge/munged.pid" \
    --log-file "$DIR/munge/munged.log" --seed-file "$DIR/munge/seed" --force
  wait_for munged 10 test -S "$DIR/munge/munge.sock"
  chmod 755 "$DIR/munge"

  # The nodes: a network namespace each, on a /30 to the host.
  sysctl -q -w net.ipv4.ip_forward=1
  local i=0 n addrs=()
  for n in "${NODES[@]}"; do
    i=$((i + 1))
    local ns="sky-$TAG-$n" host="10.$NET.$i.1" node="10.$NET.$i.2"
    ip netns add "$ns"
    ip link add "sky$TAG$i" type veth peer name eth0 netns "$ns"
    ip addr add "$host/30" dev "sky$TAG$i"
    ip link set "sky$TAG$i" up
    ip netns exec "$ns" ip addr add "$node/30" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip route add default via "$host"
    addrs+=("$node")
    echo "$ns" >> "$DIR/netns"
    echo "sky$TAG$i" >> "$DIR/links"
  done
  flock -u 9
  local ctl_port
  ctl_port=$(free_port)
  cat > "$DIR/slurm.conf" <<CONF
ClusterName=skyward
SlurmctldHost=$(hostname -s)(10.$NET.1.1)
MailProg=/bin/true
SlurmctldPort=$ctl_port
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=600
KillWait=2
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=n1 NodeAddr=${addrs[0]} CPUs=2 Gres=gpu:$GPUS_PER_NODE State=UNKNOWN
NodeName=n2 NodeAddr=${addrs[1]} CPUs=2 Gres=gpu:$GPUS_PER_NODE State=UNKNOWN
PartitionName=main Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
  # Slurm drops GPUs without device files: stand-ins (copies of
  # /dev/null) for each node's accelerators.
  mkdir -p "$DIR/dev"
  for g in $(seq 0 $((GPUS_PER_NODE - 1))); do mknod "$DIR/dev/gpu$g" c 1 3; done
  cat > "$DIR/gres.conf" <<CONF
Name=gpu File=$DIR/dev/gpu[0-$((GPUS_PER_NODE - 1))]
CONF
  export SLURM_CONF="$DIR/slurm.conf"
  slurmctld -f "$DIR/slurm.conf" -i
  wait_for slurmctld 20 scontrol ping
  for n in "${NODES[@]}"; do
    local ns="sky-$TAG-$n"
    mkdir -p "$DIR/spool-$n"
    # nsenter, not `ip netns exec`: that remounts /sys, hiding the
    # cgroup mounts slurmd needs.
    nsenter --net="/var/run/netns/$ns" unshare --uts sh -c "hostname $n; SLURM_CONF=$DIR/slurm.conf exec slurmd -f $DIR/slurm.conf"
  done
  wait_for "two idle nodes" 30 sh -c "[ \"\$(sinfo -h -t idle -o %D)\" = 2 ]"
  # slurmrestd: only the slurm/v0.0.38 plugin (the dbv one needs slurmdbd).
  mkdir -p "$DIR/restd"
  chown nobody "$DIR/restd"
  setsid slurmrestd -f "$DIR/slurm.conf" -u nobody -s openapi/v0.0.38 -a rest_auth/local \
    "unix:$DIR/restd/sock" > "$DIR/log/slurmrestd.log" 2>&1 < /dev/null &
  echo $! > "$DIR/slurmrestd.pid"
  wait_for slurmrestd 20 curl -sf --unix-socket "$DIR/restd/sock" http://slurm/slurm/v0.0.38/ping
  trap - ERR
  echo "export SKYWARD_TEST_SLURM_CONF=$DIR/slurm.conf"
  echo "export SKYWARD_TEST_SLURM_DIR=$DIR"
  echo "export SKYWARD_TEST_SLURMRESTD=unix:$DIR/restd/sock"
}

stop() {
  local DIR=$1
  [ -d "$DIR" ] || return 0
  export SLURM_CONF="$DIR/slurm.conf"
  scontrol shutdown >/dev/null 2>&1 || true
  local f
  for f in "$DIR/slurmrestd.pid" "$DIR"/slurmd-*.pid "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 0.5
  if [ -f "$DIR/netns" ]; then
    while read -r ns; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; done < "$DIR/netns"
  fi
  if [ -f "$DIR/links" ]; then
    while read -r l; do ip link del "$l" 2>/dev/null || true; done < "$DIR/links"
  fi
  rm -rf "$DIR"
}

# Starts slurmctld again (after a crash) on the state it saved.
restart_controller() {
  local DIR=$1
  export SLURM_CONF="$DIR/slurm.conf"
  slurmctld -f "$DIR/slurm.conf"
  wait_for slurmctld 20 scontrol ping
}

case "${1:-}" in
start) start ;;
stop) stop "${2:?usage: slurm.sh stop DIR}" ;;
restart-controller) restart_controller "${2:?usage: slurm.sh restart-controller DIR}" ;;
*) echo "usage: slurm.sh start | stop DIR | restart-controller DIR" >&2; exit 2 ;;
esac
