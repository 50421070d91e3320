#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on this machine for the SLURM profile tests.
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge (only when missing), creates a
# munge key (only when missing), starts munged, writes /etc/slurm/slurm.conf and gres.conf for one
# node (this host) with two partitions, `cpu` (default) and `gpu`, starts slurmctld and slurmd as
# plain background daemons (no systemd needed) and waits until the node is idle.
#
# Idempotent: running it again when the cluster is already up with the same configuration only
# prints the partitions. A changed configuration restarts both SLURM daemons.
#
# Must run as root. Tested on Debian 12 (slurm-wlm 22.05, munge 0.5.15).
#
# The node advertises one fake GPU (`Gres=gpu:1`, no device file), so that jobs which request
# `--gpus=1` in the `gpu` partition are scheduled and run. Nothing in the test uses a real GPU.
#
# Environment (all optional):
#   WEIGHTSPACE_SLURM_DIR      state, spool, pid and log files (default /var/spool/weightspace-slurm)
#   WEIGHTSPACE_SLURM_TIMEOUT  seconds to wait for the node to become idle (default 90)
#   WEIGHTSPACE_SLURM_FORCE=1  overwrite an /etc/slurm/slurm.conf that this script did not write
set -euo pipefail

STATE_DIR=${WEIGHTSPACE_SLURM_DIR:-/var/spool/weightspace-slurm}
TIMEOUT=${WEIGHTSPACE_SLURM_TIMEOUT:-90}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARKER="# Written by weightspace tests/slurm/start_local_slurm.sh"
PACKAGES=(munge slurm-client slurmctld slurmd)
T0=$(date +%s)

log() { printf '[start_local_slurm] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    for f in "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" /var/log/munge/munged.log; do
        if [[ -s $f ]]; then
            log "---- last lines of $f ----"
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

node_name() { hostname -s; }

# True when the node answers and is usable (idle, mixed or allocated).
node_ready() {
    local state
    state=$(sinfo -h -N -n "$(node_name)" -o '%t' 2>/dev/null | head -n 1) || return 1
    [[ $state =~ ^(idle|mix|mixed|alloc|allocated|comp|completing)$ ]]
}

print_partitions() {
    log "cluster is up after $(($(date +%s) - T0)) s; partitions:"
    sinfo -h -o '%P' | tr -d '*' | sort -u
}

# ----------------------------------------------------------------------------------------------
# 0. Not root: usable only when a cluster is already running.
# ----------------------------------------------------------------------------------------------
if [[ $(id -u) -ne 0 ]]; then
    if command -v sinfo >/dev/null 2>&1 && node_ready; then
        print_partitions
        exit 0
    fi
    die "must run as root to install and start SLURM (no running SLURM found)"
fi

# ----------------------------------------------------------------------------------------------
# 1. Packages.
# ----------------------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    mkdir -p "$STATE_DIR/log"
    APT_LOG=$STATE_DIR/log/apt.log
    : >"$APT_LOG"
    log "installing ${missing[*]} with apt-get"
    t_install=$(date +%s)
    # Keep the packages' maintainer scripts from starting the daemons themselves: this script
    # starts them with its own configuration. Only add a policy if the machine has none.
    policy_added=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    }
    rc=0
    apt_install >"$APT_LOG" 2>&1 || rc=$?
    if ((rc)); then
        log "apt-get install failed (see $APT_LOG); running apt-get update and retrying"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$APT_LOG" 2>&1 || true
        rc=0
        apt_install >>"$APT_LOG" 2>&1 || rc=$?
    fi
    if ((policy_added)); then rm -f /usr/sbin/policy-rc.d; fi
    if ((rc)); then
        tail -n 30 "$APT_LOG" >&2 || true
        die "apt-get install ${missing[*]} failed"
    fi
    log "installed in $(($(date +%s) - t_install)) s"
fi
for cmd in munged munge unmunge slurmctld slurmd sinfo sbatch squeue scontrol; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found after installation"
done

# ----------------------------------------------------------------------------------------------
# 2. munge: key and daemon.
# ----------------------------------------------------------------------------------------------
install -d -m 0700 -o munge -g munge /etc/munge /var/lib/munge
install -d -m 0755 -o munge -g munge /run/munge
install -d -m 0700 -o munge -g munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    # A stale socket or pid file from a killed munged blocks a new one.
    if [[ -f /run/munge/munged.pid ]] && ! kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    fi
    runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || die "munge does not work after starting munged"
fi

# ----------------------------------------------------------------------------------------------
# 3. SLURM configuration.
# ----------------------------------------------------------------------------------------------
NODE=$(node_name)
# The hardware as slurmd itself will report it when it registers (a node configured with more
# CPUs or memory than slurmd finds is rejected), e.g.
#   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
HW=$(slurmd -C 2>/dev/null | head -n 1 || true)
hw_value() { sed -n "s/.* $1=\([0-9][0-9]*\).*/\1/p" <<<"$HW"; }
CPUS=$(hw_value CPUs)
MEM_TOTAL_MB=$(hw_value RealMemory)
TOPOLOGY=""
if [[ -n $CPUS && -n $(hw_value SocketsPerBoard) && -n $(hw_value CoresPerSocket) && -n $(hw_value ThreadsPerCore) ]]; then
    TOPOLOGY="Boards=$(hw_value Boards) SocketsPerBoard=$(hw_value SocketsPerBoard) CoresPerSocket=$(hw_value CoresPerSocket) ThreadsPerCore=$(hw_value ThreadsPerCore)"
fi
[[ -n $CPUS ]] || CPUS=$(nproc)
[[ -n $MEM_TOTAL_MB ]] || MEM_TOTAL_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# Leave 10 % (at least 512 MB) for the operating system and the daemons.
HEADROOM_MB=$((MEM_TOTAL_MB / 10 > 512 ? MEM_TOTAL_MB / 10 : 512))
REAL_MEM_MB=$((MEM_TOTAL_MB - HEADROOM_MB))
((REAL_MEM_MB > 256)) || die "too little memory for a SLURM node (${MEM_TOTAL_MB} MB total)"
DEF_MEM_PER_CPU=$((REAL_MEM_MB / CPUS / 2))

mkdir -p "$CONF_DIR" "$STATE_DIR"/{ctld,slurmd,log,run}
new_conf=$(
    cat <<EOF
$MARKER
# Single-node test cluster: controller and compute node on this host, no accounting, no cgroups.
ClusterName=weightspace
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$DEF_MEM_PER_CPU
# Finished jobs stay visible to squeue for an hour: without an accounting database the
# Snakemake SLURM executor polls job states with squeue.
MinJobAge=3600
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS $TOPOLOGY RealMemory=$REAL_MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
)
new_gres=$(
    cat <<EOF
$MARKER
# One GPU that exists only for the scheduler: no device file, nothing to bind.
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null Count=1
EOF
)

if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF" && [[ ${WEIGHTSPACE_SLURM_FORCE:-0} != 1 ]]; then
    die "$CONF exists and was not written by this script; set WEIGHTSPACE_SLURM_FORCE=1 to replace it"
fi
changed=0
if [[ ! -f $CONF ]] || [[ $(cat "$CONF") != "$new_conf" ]]; then
    printf '%s\n' "$new_conf" >"$CONF"
    changed=1
fi
if [[ ! -f $GRES_CONF ]] || [[ $(cat "$GRES_CONF") != "$new_gres" ]]; then
    printf '%s\n' "$new_gres" >"$GRES_CONF"
    changed=1
fi
chmod 0644 "$CONF" "$GRES_CONF"
((changed)) && log "wrote $CONF and $GRES_CONF (node $NODE: $CPUS CPUs, $REAL_MEM_MB MB)"

# ----------------------------------------------------------------------------------------------
# 4. Daemons.
# ----------------------------------------------------------------------------------------------
# True when the pid file names a live process (not a zombie that pid 1 has yet to reap).
pid_alive() {
    local pid state
    [[ -f $1 ]] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
    [[ $state != Z && $state != X ]]
}

stop_daemon() { # name pidfile
    local pid
    if pid_alive "$2"; then
        pid=$(cat "$2")
        log "stopping $1 (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            pid_alive "$2" || break
            sleep 0.1
        done
        if pid_alive "$2"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$2"
}

CTLD_PID=$STATE_DIR/run/slurmctld.pid
SLURMD_PID=$STATE_DIR/run/slurmd.pid
if ((changed)); then
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
fi
if ! pid_alive "$CTLD_PID"; then
    log "starting slurmctld"
    # -i: ignore state files that do not match the configuration (e.g. an older node list).
    slurmctld -i -f "$CONF" || die "slurmctld failed to start"
fi
for _ in $(seq 1 100); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.2
done
scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer (scontrol ping)"
if ! pid_alive "$SLURMD_PID"; then
    log "starting slurmd"
    slurmd -f "$CONF" || die "slurmd failed to start"
fi

deadline=$(($(date +%s) + TIMEOUT))
while ! node_ready; do
    state=$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1 || true)
    # A node that was drained or marked down earlier (e.g. by a killed slurmd) is resumed.
    if [[ $state =~ ^(drain|drng|down|fail|maint)\*?$ ]]; then
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    fi
    if (($(date +%s) > deadline)); then
        scontrol show node "$NODE" >&2 || true
        die "node $NODE not idle after ${TIMEOUT} s (state: ${state:-unknown})"
    fi
    sleep 0.5
done
print_partitions
