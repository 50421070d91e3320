#!/usr/bin/env bash
# Stop the single-node SLURM started by start_local_slurm.sh: slurmd and slurmctld, and with
# --munge also munged. Packages, configuration and job state stay; --purge-state also removes the
# state directory (job records, logs). Must run as root.
set -euo pipefail

STATE_DIR=${WEIGHTSPACE_SLURM_DIR:-/var/spool/weightspace-slurm}
stop_munge=0
purge=0
for arg in "$@"; do
    case $arg in
        --munge) stop_munge=1 ;;
        --purge-state) purge=1 ;;
        *) echo "usage: $0 [--munge] [--purge-state]" >&2; exit 2 ;;
    esac
done

# True when the pid file names a live process (not a zombie that pid 1 has yet to reap).
pid_alive() {
    local pid state
    [[ -f $1 ]] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
    [[ $state != Z && $state != X ]]
}

stop_pidfile() { # name pidfile
    local pid
    if pid_alive "$2"; then
        pid=$(cat "$2")
        echo "stopping $1 (pid $pid)" >&2
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            pid_alive "$2" || break
            sleep 0.1
        done
        if pid_alive "$2"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$2"
}

stop_pidfile slurmd "$STATE_DIR/run/slurmd.pid"
stop_pidfile slurmctld "$STATE_DIR/run/slurmctld.pid"
if ((stop_munge)); then
    stop_pidfile munged /run/munge/munged.pid
fi
if ((purge)); then
    rm -rf "$STATE_DIR"
fi
