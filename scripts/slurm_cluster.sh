#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, to run hookbench sweeps through a real Slurm
# (hydra/launcher=slurm_local) in tests and CI. Root only: it installs Debian's slurm-wlm,
# slurmdbd, munge and mariadb-server when missing, writes /etc/slurm/slurm.conf and slurmdbd.conf
# for this host and starts munged, MariaDB, slurmdbd, slurmctld and slurmd. Accounting goes
# through slurmdbd into MariaDB, so plain `sacct` lists finished jobs (Slurm 22.05 has no
# accounting_storage/filetxt; jobcomp/filetxt + `sacct -c` garbles job arrays, which submitit uses).
#
#   scripts/slurm_cluster.sh start    # install if missing, configure, start, wait for the node to be idle
#   scripts/slurm_cluster.sh status   # daemons and node state; exit 0 when the node takes jobs
#   scripts/slurm_cluster.sh stop     # stop the daemons this script started
#
# `start` exits 2 with the reason on stderr when the cluster cannot be started here (not root,
# no apt-get, a slurm.conf this script did not write, a node that never becomes idle).
set -euo pipefail
export PATH="/usr/sbin:/sbin:$PATH"  # the daemons live in sbin

CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by hookbench scripts/slurm_cluster.sh"
STATE=/var/lib/hookbench-slurm
MUNGE_STARTED=$STATE/munged.started-by-us
MARIADB_STARTED=$STATE/mariadb.started-by-us
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

say() { echo "slurm_cluster: $*" >&2; }
cannot() { say "cannot start a Slurm cluster here: $*"; exit 2; }

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -N -o %T 2>/dev/null | head -n1; }

install_packages() {
  local missing=()
  for c in slurmctld slurmd slurmdbd munged sacct mariadbd; do command -v $c >/dev/null || missing+=("$c"); done
  [[ ${#missing[@]} == 0 ]] && return
  command -v apt-get >/dev/null || cannot "${missing[*]} not installed and there is no apt-get"
  say "installing ${PACKAGES[*]} (apt-get; missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # one apt at a time: tests run in parallel (pytest -n) and another may be installing Chromium
  flock /tmp/hookbench-apt.lock sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
    apt "${PACKAGES[@]}"
}

# slurm.conf for this host; `slurmd -C` gives the node's real CPUs and memory, so it is never
# drained for having less than configured.
config() {
  local node
  node=$(slurmd -C | head -n1)
  cat <<EOF
$MARK; rewritten by every start
ClusterName=hookbench
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=60 State=UP
EOF
}

dbd_config() {
  cat <<EOF
$MARK; rewritten by every start
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=hookbench_slurm_acct
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
}

# MariaDB as Debian runs it; root connects over its unix socket without a password.
start_mariadb() {
  mariadb-admin ping >/dev/null 2>&1 && return
  say "starting MariaDB"
  /etc/init.d/mariadb start >/dev/null
  touch "$MARIADB_STARTED"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  say "starting munged"
  install -d -o munge -g munge -m 0755 /run/munge
  [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
  runuser -u munge -- munged
  touch "$MUNGE_STARTED"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  cannot "munged does not answer"
}

stop() {
  local pidfile pid
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/slurmdbd.pid"; do
    if running "$pidfile"; then
      pid=$(cat "$pidfile")
      say "stopping $(basename "$pidfile" .pid) (pid $pid)"
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  if [[ -f $MUNGE_STARTED ]] && running /run/munge/munged.pid; then
    say "stopping munged (pid $(cat /run/munge/munged.pid))"
    kill "$(cat /run/munge/munged.pid)"
  fi
  if [[ -f $MARIADB_STARTED ]]; then
    say "stopping MariaDB"
    /etc/init.d/mariadb stop >/dev/null
  fi
  rm -f "$MUNGE_STARTED" "$MARIADB_STARTED"
}

start() {
  [[ $(id -u) == 0 ]] || cannot "needs root (installs packages, writes $CONF, runs slurmctld and slurmd)"
  install_packages
  for f in "$CONF" "$DBD_CONF"; do
    if [[ -f $f ]] && ! grep -qF "$MARK" "$f"; then
      cannot "$f exists and was not written by this script; not touching a real cluster's config"
    fi
  done
  mkdir -p "$STATE/ctld" "$STATE/d"
  local new new_dbd
  new=$(config)
  new_dbd=$(dbd_config)
  if [[ $new != "$(cat "$CONF" 2>/dev/null)" || $new_dbd != "$(cat "$DBD_CONF" 2>/dev/null)" ]]; then
    say "writing $CONF and $DBD_CONF"
    stop
    printf '%s\n' "$new" > "$CONF"
    (umask 077; printf '%s\n' "$new_dbd" > "$DBD_CONF")
  fi
  start_munge
  start_mariadb
  if ! running "$STATE/slurmdbd.pid"; then
    say "starting slurmdbd"
    slurmdbd
    for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  # the cluster must be known to slurmdbd before slurmctld registers, or jobs are not recorded
  sacctmgr -n -P list cluster format=cluster | grep -qx hookbench || sacctmgr -i add cluster hookbench >/dev/null
  if ! running "$STATE/slurmctld.pid"; then say "starting slurmctld"; slurmctld; fi
  if ! running "$STATE/slurmd.pid"; then say "starting slurmd"; slurmd; fi
  local state=""
  for _ in $(seq 60); do
    state=$(node_state)
    case $state in
      idle|mixed|allocated) say "node $(hostname -s) is $state; partition debug"; return 0 ;;
      down*|drain*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  cannot "the node did not become idle in 60 s (state: ${state:-none}); see $STATE/slurmctld.log and $STATE/slurmd.log"
}

status() {
  local ok=0
  for d in slurmdbd slurmctld slurmd; do
    if running "$STATE/$d.pid"; then echo "$d: running (pid $(cat "$STATE/$d.pid"))"; else echo "$d: stopped"; ok=1; fi
  done
  if command -v sinfo >/dev/null && [[ $ok == 0 ]]; then
    sinfo
    case $(node_state) in idle|mixed|allocated) ;; *) ok=1 ;; esac
  fi
  return $ok
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
