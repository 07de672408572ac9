#!/usr/bin/env bash
# Benchmarks the eventual (Dynamo) mode at consistency levels ONE, QUORUM and ALL against
# memcached on this machine, in one run; prints one JSON line per point on stdout.
#
#   scripts/bench-dynamo.sh                     # 3 peers, R = 3, 5 s per point
#   PEERS=5 R=3 DURATION=5 scripts/bench-dynamo.sh
#
# Starts (loopback, free ports, only its own processes, killed on exit): one memcached (`-t 1`),
# then for each level one cluster of PEERS `memcord peer`s (memory stores) whose
# `read_consistency` and `write_consistency` are that level, loaded round-robin through every
# peer. Servers are pinned to CPU 0 and `memcord bench` to CPU 1 (as scripts/bench.sh does).
# Settings: DURATION (5), WARMUP (1), CONNS (32), KEYS (10000), PEERS (3), R (3), MEMCORD
# (default target/release/memcord), MEMCACHED (memcached).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
KEYS=${KEYS:-10000}
PEERS=${PEERS:-3}
R=${R:-3}
MEMCORD=${MEMCORD:-$ROOT/target/release/memcord}
MEMCACHED=${MEMCACHED:-memcached}

die() { echo "bench-dynamo.sh: $*" >&2; exit 1; }
command -v "$MEMCACHED" >/dev/null || die "memcached not found"
[[ -x "$MEMCORD" ]] || die "no memcord binary at $MEMCORD (cargo build --release)"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/memcord-bench-dynamo.XXXXXX")
PIDS=()
stop_pids() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() { stop_pids; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pinning (SERVER_PIN, LOAD_PIN), free_port, wait_port, wait_serving.
# shellcheck source=scripts/lib-bench.sh
source "$ROOT/scripts/lib-bench.sh"

# run NAME TARGET LEVEL: both workloads against TARGET, one JSON line each.
run() {
    local name=$1 target=$2 level=$3 workload flags
    for workload in "get90|--get-ratio 0.9" "set100|--get-ratio 0"; do
        flags=${workload#*|}
        # shellcheck disable=SC2086
        "${LOAD_PIN[@]}" "$MEMCORD" bench --target "$target" --connections "$CONNS" \
            --keys "$KEYS" --key-size 64 --value-size 1024 --duration "$DURATION" \
            --warmup "$WARMUP" --threads 1 --json $flags >"$RUN/out.json"
        python3 - "$name" "$level" "${workload%%|*}" "$RUN/out.json" <<'EOF'
import json, sys
name, level, workload, path = sys.argv[1:]
r = json.load(open(path))
print(json.dumps({"target": name, "level": level, "workload": workload, "report": r}))
EOF
    done
}

MC_PORT=$(free_port)
"${SERVER_PIN[@]}" "$MEMCACHED" -p "$MC_PORT" -l 127.0.0.1 -t 1 -m 1024 -U 0 -u "$(id -un)" &
PIDS+=($!)
wait_port "$MC_PORT"
run memcached "127.0.0.1:$MC_PORT" -
stop_pids

for level in one quorum all; do
    config="$RUN/$level.ini"
    {
        printf '[cluster]\nconsistency = eventual\nsecret = bench-secret\n'
        printf 'replication_factor = %s\nread_consistency = %s\nwrite_consistency = %s\n' \
            "$R" "$level" "$level"
        printf 'data_dir = %s/data-%s\n' "$RUN" "$level"
        printf '[kv]\ntype = memory\n[server]\nmemory_limit_mb = 1024\nlog_level = warn\n'
    } >"$config"
    addrs=()
    for ((id = 0; id < PEERS; id++)); do
        client=$(free_port)
        peer=$(free_port)
        printf '[peer.%s]\nclient_addr = 127.0.0.1:%s\npeer_addr = 127.0.0.1:%s\n' \
            "$id" "$client" "$peer" >>"$config"
        addrs+=("127.0.0.1:$client")
    done
    for ((id = 0; id < PEERS; id++)); do
        "${SERVER_PIN[@]}" "$MEMCORD" peer --config "$config" --id "$id" \
            >"$RUN/peer-$level-$id.out" 2>"$RUN/peer-$level-$id.log" &
        PIDS+=($!)
    done
    for addr in "${addrs[@]}"; do wait_serving "$addr"; done
    run "eventual-$PEERS-r$R" "$(IFS=,; echo "${addrs[*]}")" "$level"
    stop_pids
done
