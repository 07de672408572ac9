#!/usr/bin/env bash
# Starts a memcord cluster as separate processes: one `memcord peer` per [peer.N] section of
# the config (config.ini: three peers, clients on 8000-8002), each in front of its own
# memcached when the `memcached` binary is installed (started here on the peer's kv_addr port,
# 11201-11203) and on the embedded store otherwise. Pids, logs and data go under run/ (ignored
# by git); ./stop.sh stops exactly what this script started.
#
# Usage: ./startup.sh [-c|--consistency linearizable|sequential|eventual]
#
# Environment (all optional):
#   CONSISTENCY      the mode, like -c (default: the config's [cluster] consistency)
#   MEMCORD_CONFIG   the config file (default: config.ini beside this script); the addresses
#                    are read from its [peer.N] client_addr and kv_addr lines
#   MEMCORD_BIN      the memcord binary (default: target/release/memcord, built if missing)
#   MEMCORD_RUN_DIR  where pids, logs and data go (default: run/ beside this script)
#   KV_TYPE          memory | memcached (default: memcached when installed, else memory)
#   MEMCACHED_BIN    the memcached binary (default: memcached on the PATH)
#   START_TIMEOUT    seconds each process gets to answer (default: 30)
#
# Re-running it while the cluster runs says so and does nothing (exit 0).
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"

consistency="${CONSISTENCY:-}"
while [ $# -gt 0 ]; do
    case "$1" in
    -c | --consistency | -cons)
        [ $# -ge 2 ] || { echo "startup.sh: $1 needs a mode" >&2; exit 2; }
        consistency="$2"
        shift 2
        ;;
    -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "startup.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
done

config="${MEMCORD_CONFIG:-$root/config.ini}"
run="${MEMCORD_RUN_DIR:-$root/run}"
timeout_s="${START_TIMEOUT:-30}"
[ -f "$config" ] || { echo "startup.sh: no config file at $config" >&2; exit 1; }
config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
mkdir -p "$run/pids" "$run/logs" "$run/data"
run="$(cd "$run" && pwd)"

# A process that exists and is not a zombie.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ "$state" != "Z" ]
}

# Already running? Then say so and do nothing; forget pid files of processes that are gone.
running=()
for file in "$run"/pids/*.pid; do
    [ -e "$file" ] || continue
    pid="$(cat "$file")"
    if alive "$pid"; then
        running+=("$(basename "$file" .pid) (pid $pid)")
    else
        rm -f "$file"
    fi
done
if [ ${#running[@]} -gt 0 ]; then
    echo "startup.sh: a cluster is already running: ${running[*]}; stop it with ./stop.sh"
    exit 0
fi

# The binary: MEMCORD_BIN, else the release build (built now if missing).
bin="${MEMCORD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/memcord}"
if [ ! -x "$bin" ]; then
    if [ -n "${MEMCORD_BIN:-}" ]; then
        echo "startup.sh: MEMCORD_BIN=$bin is not an executable" >&2
        exit 1
    fi
    echo "startup.sh: building the release binary (cargo build --release)"
    (cd "$root" && cargo build --release --bin memcord)
fi

# Backends: memcached when installed (or asked for), else the embedded store.
memcached_bin="${MEMCACHED_BIN:-$(command -v memcached || true)}"
kv_type="${KV_TYPE:-}"
if [ -z "$kv_type" ]; then
    if [ -n "$memcached_bin" ]; then kv_type=memcached; else kv_type=memory; fi
fi
if [ "$kv_type" = memcached ] && [ -z "$memcached_bin" ]; then
    echo "startup.sh: KV_TYPE=memcached but no memcached binary (apt-get install memcached)" >&2
    exit 1
fi

# The peers' addresses: "id key value" for client_addr and kv_addr in each [peer.N].
declare -A client_addr kv_addr
ids=()
while read -r id key value; do
    case "$key" in
    client_addr) client_addr[$id]="$value" ;;
    kv_addr) kv_addr[$id]="$value" ;;
    esac
    case " ${ids[*]} " in *" $id "*) ;; *) ids+=("$id") ;; esac
done < <(awk '
    /^[[:space:]]*\[peer\.[0-9]+\][[:space:]]*$/ { id = $0; gsub(/[^0-9]/, "", id); next }
    /^[[:space:]]*\[/ { id = ""; next }
    id != "" && /^[[:space:]]*(client_addr|kv_addr)[[:space:]]*=/ {
        split($0, kv, "="); key = kv[1]; value = kv[2]
        gsub(/[[:space:]]/, "", key); gsub(/[[:space:]]/, "", value)
        print id, key, value
    }' "$config")
[ ${#ids[@]} -gt 0 ] || { echo "startup.sh: no [peer.N] sections in $config" >&2; exit 1; }

host_of() { local h="${1%:*}"; [ "$h" = 0.0.0.0 ] && h=127.0.0.1; echo "${h#[}" | tr -d ']'; }
port_of() { echo "${1##*:}"; }

# The reply to one request, or nothing; bounded by `timeout`.
ask() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "%s\r\nquit\r\n" "$3" >&3 && cat <&3' \
        _ "$1" "$2" "$3" 2>/dev/null || true
}

started=()
# Stops what this run started, after a failure.
abandon() {
    echo "startup.sh: $1" >&2
    for name in "${started[@]}"; do
        local pid
        pid="$(cat "$run/pids/$name.pid")"
        kill -TERM "$pid" 2>/dev/null || true
        rm -f "$run/pids/$name.pid"
    done
    exit 1
}

# Waits until `ask host port request` prints a line matching `pattern` and none matching
# `not_pattern`, while `pid` lives.
wait_answer() {
    local name="$1" pid="$2" host="$3" port="$4" request="$5" pattern="$6" log="$7"
    local not_pattern="${8:-}" i reply
    for ((i = 0; i < timeout_s * 10; i++)); do
        if ! alive "$pid"; then
            abandon "$name exited while starting; $log:
$(tail -n 20 "$log" 2>/dev/null)"
        fi
        reply="$(ask "$host" "$port" "$request" | tr -d '\r')"
        if grep -q "$pattern" <<<"$reply" \
            && { [ -z "$not_pattern" ] || ! grep -q "$not_pattern" <<<"$reply"; }; then
            return 0
        fi
        sleep 0.1
    done
    abandon "$name did not answer on $host:$port within ${timeout_s}s; see $log and $run/logs"
}

if [ "$kv_type" = memcached ]; then
    user=()
    [ "$(id -u)" -eq 0 ] && user=(-u root)
    for id in "${ids[@]}"; do
        addr="${kv_addr[$id]:-}"
        [ -n "$addr" ] || abandon "[peer.$id] has no kv_addr in $config"
        name="memcached-$id"
        "$memcached_bin" -l "$(host_of "$addr")" -p "$(port_of "$addr")" -U 0 -m 64 "${user[@]}" \
            </dev/null >"$run/logs/$name.log" 2>&1 &
        echo $! >"$run/pids/$name.pid"
        started+=("$name")
        wait_answer "$name" $! "$(host_of "$addr")" "$(port_of "$addr")" version '^VERSION' \
            "$run/logs/$name.log"
    done
fi

mode_flag=()
[ -n "$consistency" ] && mode_flag=(--consistency "$consistency")
for id in "${ids[@]}"; do
    name="peer-$id"
    MEMCORD_CLUSTER__DATA_DIR="$run/data" "$bin" peer --config "$config" --id "$id" \
        --kv-type "$kv_type" "${mode_flag[@]}" --log-file "$run/logs/$name.log" \
        </dev/null >"$run/logs/$name.out" 2>&1 &
    echo $! >"$run/pids/$name.pid"
    started+=("$name")
done
# The peers find each other first, so each is waited for only once all are started.
for id in "${ids[@]}"; do
    addr="${client_addr[$id]}"
    pid="$(cat "$run/pids/peer-$id.pid")"
    # Serving, and in the ordered modes with a leader elected; a cluster of one has no
    # `stats cluster` (ERROR) and serves at once.
    wait_answer "peer $id" "$pid" "$(host_of "$addr")" "$(port_of "$addr")" "stats cluster" \
        '^STAT cluster_state serving$\|^ERROR$' "$run/logs/peer-$id.out" \
        '^STAT cluster_leader none$'
done

echo "startup.sh: ${#ids[@]} peers serving (kv: $kv_type, mode: ${consistency:-from $(basename "$config")})"
for id in "${ids[@]}"; do
    line="  peer $id on ${client_addr[$id]}"
    [ "$kv_type" = memcached ] && line+=" (memcached on ${kv_addr[$id]})"
    echo "$line"
done
echo "logs: $run/logs; stop with ./stop.sh"
