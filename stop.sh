#!/usr/bin/env bash
# Stops the cluster ./startup.sh started: exactly the pids it recorded under run/pids (peers
# first, then their memcached backends), with SIGTERM, waiting up to STOP_TIMEOUT seconds
# (default 10) for each group before SIGKILL; then removes the pid files. A pid whose process
# is no longer memcord or memcached (reused by the system) is left alone.
#
# Environment: MEMCORD_RUN_DIR (default: run/ beside this script), STOP_TIMEOUT.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
run="${MEMCORD_RUN_DIR:-$root/run}"
timeout_s="${STOP_TIMEOUT:-10}"

alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ "$state" != "Z" ]
}

# Whether pid $1 still runs the program named $2 (memcord or memcached).
runs() {
    alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "$2"
}

stopped=0
# Stops every process of one group ("peer" or "memcached") and waits for it.
stop_group() {
    local group="$1" program="$2" file pid i
    local pids=()
    for file in "$run"/pids/"$group"-*.pid; do
        [ -e "$file" ] || continue
        pid="$(cat "$file")"
        if runs "$pid" "$program"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            echo "stop.sh: stopping $(basename "$file" .pid) (pid $pid)"
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for ((i = 0; i < timeout_s * 10; i++)); do
        local left=()
        for pid in "${pids[@]}"; do
            alive "$pid" && left+=("$pid")
        done
        [ ${#left[@]} -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if alive "$pid"; then
            echo "stop.sh: pid $pid did not stop within ${timeout_s}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    # SIGKILL cannot be refused; wait for the kernel to take the processes down.
    for ((i = 0; i < 50; i++)); do
        local left=0
        for pid in "${pids[@]}"; do
            alive "$pid" && left=1
        done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    stopped=$((stopped + ${#pids[@]}))
}

if ! compgen -G "$run/pids/*.pid" >/dev/null; then
    echo "stop.sh: no cluster started by startup.sh is recorded in $run/pids"
    exit 0
fi
stop_group peer memcord
stop_group memcached memcached
rm -f "$run"/pids/*.pid
echo "stop.sh: stopped $stopped process(es)"
