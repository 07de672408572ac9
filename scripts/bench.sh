#!/usr/bin/env bash
# Benchmarks memcord against memcached on this machine, in one run, and writes BENCHMARKS.md.
#
#   scripts/bench.sh                      # 5 s per point, 1 round
#   DURATION=10 ROUNDS=3 scripts/bench.sh # longer, median of 3 rounds per point
#
# Starts (all on loopback, free ports, killed on exit):
#   memcached            the yardstick, `-t 1`
#   memcord-memory       one `memcord peer --kv-type memory`
#   memcord-memcached    one `memcord peer --kv-type memcached` in front of a second memcached
#   eventual-3           three `memcord peer`s in eventual mode (memory stores, one config),
#                        loaded round-robin
#   linearizable-3       the same in linearizable mode (Raft log under the run folder, fsync on)
#   sequential-3         the same in sequential mode
# Servers are pinned to CPU 0 and the load generators to CPU 1 (taskset, when there are ≥ 2
# CPUs), so memcached and memcord get the same one-core budget. Each workload is driven at every
# target in turn (targets alternate, rounds repeat the alternation), with `memcord bench` and
# with memcached's own `memcaslap`.
#
# Then a connection sweep (get90 at each of SWEEP connections, every target) is drawn as
# docs/bench-throughput.svg beside OUT's docs folder (`memcord bench --plot`).
#
# Settings (environment): DURATION (s per point, 5), WARMUP (s, 1), ROUNDS (1), CONNS (32),
# KEYS (10000), OUT (BENCHMARKS.md), MEMCORD (binary; default: build target/release/memcord),
# MEMCACHED (memcached binary), NO_MEMCASLAP=1 to skip memcaslap, SWEEP (connection counts,
# "1 4 16 32 64"; its 1-connection point gives the added-latency table), SWEEP_DURATION (s per
# sweep point, 2), IDLE_CONNS (idle connections held by memcached and by a memory peer, 10000;
# 0 skips that step).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-32}
KEYS=${KEYS:-10000}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
MEMCACHED=${MEMCACHED:-memcached}
COMMAND_LINE="DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONNS=$CONNS KEYS=$KEYS scripts/bench.sh"

die() { echo "bench.sh: $*" >&2; exit 1; }
command -v "$MEMCACHED" >/dev/null || die "memcached not found (apt-get install memcached)"
command -v python3 >/dev/null || die "python3 is needed to write the report"

if [[ -z "${MEMCORD:-}" ]]; then
    cargo build --release --quiet --bin memcord
    MEMCORD="${CARGO_TARGET_DIR:-$ROOT/target}/release/memcord"
fi
[[ -x "$MEMCORD" ]] || die "no memcord binary at $MEMCORD"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/memcord-bench.XXXXXX")
# Servers are started inside $(…) subshells, so their pids are kept in a file, not a variable.
PIDFILE="$RUN/pids"
: >"$PIDFILE"
cleanup() {
    local pid pids
    pids=$(cat "$PIDFILE" 2>/dev/null || true)
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        # Not our shell's children when started from a subshell: poll, bounded.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pinning (SERVER_PIN, LOAD_PIN, PINNING), free_port, wait_port, wait_serving.
# shellcheck source=scripts/lib-bench.sh
source "$ROOT/scripts/lib-bench.sh"

# start_memcached NAME [MAX_CONNECTIONS] -> prints the port
start_memcached() {
    local name=$1 max_conns=${2:-4096} port attempt
    local user=()
    [[ $(id -u) -eq 0 ]] && user=(-u root)
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        "${SERVER_PIN[@]}" "$MEMCACHED" -l 127.0.0.1 -U 0 -p "$port" -t 1 -m 1024 -c "$max_conns" \
            "${user[@]}" >"$RUN/$name.log" 2>&1 &
        echo $! >>"$PIDFILE"
        local i
        for i in $(seq 1 50); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "$port"
                return 0
            fi
            sleep 0.1
        done
    done
    die "memcached $name did not start"
}

# start_peer NAME ARGS... -> prints host:port from the peer's ready line
start_peer() {
    local name=$1
    shift
    MEMCORD_LOG=warn "${SERVER_PIN[@]}" "$MEMCORD" peer "$@" \
        >"$RUN/$name.out" 2>"$RUN/$name.log" &
    echo $! >>"$PIDFILE"
    echo $! >"$RUN/$name.pid"
    local i
    for i in $(seq 1 200); do
        if grep -q " listening on " "$RUN/$name.out" 2>/dev/null; then
            sed -n 's/.* listening on \([^ ]*\).*/\1/p' "$RUN/$name.out" | head -1
            return 0
        fi
        sleep 0.1
    done
    cat "$RUN/$name.log" >&2
    die "memcord peer $name did not start"
}

echo "bench.sh: starting servers (run folder $RUN)" >&2
MC_PORT=$(start_memcached memcached)
BACKEND_PORT=$(start_memcached backend)
MEMORY_ADDR=$(start_peer memory --port 0 --kv-type memory --memory-limit-mb 1024)
PROXY_ADDR=$(start_peer proxy --port 0 --kv-type memcached --kv-host 127.0.0.1 \
    --kv-port "$BACKEND_PORT")
IDLE_RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$RUN/memory.pid")/status" 2>/dev/null || echo "?")

# start_cluster MODE -> prints the cluster's client addresses, comma-separated
start_cluster() {
    local mode=$1 id client peer config="$RUN/$1.ini" addrs=()
    {
        printf '[cluster]\nconsistency = %s\nsecret = bench-secret\n' "$mode"
        printf 'data_dir = %s/data-%s\n' "$RUN" "$mode"
        printf '[kv]\ntype = memory\n[server]\nmemory_limit_mb = 1024\n'
    } >"$config"
    for id in 0 1 2; do
        client=$(free_port)
        peer=$(free_port)
        printf '[peer.%s]\nclient_addr = 127.0.0.1:%s\npeer_addr = 127.0.0.1:%s\n' \
            "$id" "$client" "$peer" >>"$config"
        addrs+=("127.0.0.1:$client")
    done
    for id in 0 1 2; do
        start_peer "$mode$id" --config "$config" --id "$id" >/dev/null
    done
    (IFS=,; echo "${addrs[*]}")
}

CLUSTER_TARGET=$(start_cluster eventual)
LINEARIZABLE_TARGET=$(start_cluster linearizable)
SEQUENTIAL_TARGET=$(start_cluster sequential)
for addr in ${CLUSTER_TARGET//,/ } ${LINEARIZABLE_TARGET//,/ } ${SEQUENTIAL_TARGET//,/ }; do
    wait_serving "$addr"
done

NAMES=(memcached memcord-memory memcord-memcached eventual-3 linearizable-3 sequential-3)
declare -A TARGET=(
    [memcached]="127.0.0.1:$MC_PORT"
    [memcord-memory]="$MEMORY_ADDR"
    [memcord-memcached]="$PROXY_ADDR"
    [eventual-3]="$CLUSTER_TARGET"
    [linearizable-3]="$LINEARIZABLE_TARGET"
    [sequential-3]="$SEQUENTIAL_TARGET"
)
# name|memcord bench flags
WORKLOADS=(
    "get100|--get-ratio 1 --pipeline 1"
    "get90|--get-ratio 0.9 --pipeline 1"
    "set100|--get-ratio 0 --pipeline 1"
    "get90-pipeline8|--get-ratio 0.9 --pipeline 8"
)
COMMON=(--connections "$CONNS" --keys "$KEYS" --key-size 64 --value-size 1024
    --duration "$DURATION" --warmup "$WARMUP" --threads 1 --json)
LIMIT=$((DURATION + WARMUP + 120))

RESULTS="$RUN/results.jsonl"
: >"$RESULTS"
for entry in "${WORKLOADS[@]}"; do
    workload=${entry%%|*}
    read -r -a flags <<<"${entry#*|}"
    for round in $(seq 1 "$ROUNDS"); do
        for name in "${NAMES[@]}"; do
            echo "bench.sh: $workload round $round -> $name" >&2
            if json=$(timeout "$LIMIT" "${LOAD_PIN[@]}" "$MEMCORD" bench \
                --target "${TARGET[$name]}" "${COMMON[@]}" "${flags[@]}" 2>"$RUN/bench.err"); then
                echo "{\"tool\":\"memcord-bench\",\"workload\":\"$workload\",\"round\":$round,\"name\":\"$name\",\"report\":$json}" >>"$RESULTS"
            else
                echo "bench.sh: $workload -> $name failed: $(cat "$RUN/bench.err")" >&2
            fi
        done
    done
done

# The three protocols: get100 and set100 against memcached and one memory peer, each protocol
# compared with memcached speaking the same protocol in the same run.
PROTOCOL_RESULTS="$RUN/protocols.jsonl"
: >"$PROTOCOL_RESULTS"
for protocol in text meta binary; do
    for entry in "get100|--get-ratio 1" "set100|--get-ratio 0"; do
        workload=${entry%%|*}
        read -r -a flags <<<"${entry#*|}"
        for round in $(seq 1 "$ROUNDS"); do
            for name in memcached memcord-memory; do
                echo "bench.sh: $protocol $workload round $round -> $name" >&2
                if json=$(timeout "$LIMIT" "${LOAD_PIN[@]}" "$MEMCORD" bench \
                    --target "${TARGET[$name]}" "${COMMON[@]}" "${flags[@]}" --pipeline 1 \
                    --protocol "$protocol" 2>"$RUN/bench.err"); then
                    echo "{\"protocol\":\"$protocol\",\"workload\":\"$workload\",\"round\":$round,\"name\":\"$name\",\"report\":$json}" >>"$PROTOCOL_RESULTS"
                else
                    echo "bench.sh: $protocol $workload -> $name failed: $(cat "$RUN/bench.err")" >&2
                fi
            done
        done
    done
done

MEMCASLAP_NOTE="memcaslap not run"
if [[ -z "${NO_MEMCASLAP:-}" ]] && command -v memcaslap >/dev/null; then
    MEMCASLAP_NOTE="memcaslap -T 1 -c $CONNS -t ${DURATION}s, 64 B keys, 1 KiB values, 90% gets"
    printf 'key\n64 64 1\nvalue\n1024 1024 1\ncmd\n0 0.1\n1 0.9\n' >"$RUN/memcaslap.cfg"
    for round in $(seq 1 "$ROUNDS"); do
        for name in "${NAMES[@]}"; do
            # memcaslap takes a single server list; a cluster is listed whole (it spreads keys).
            echo "bench.sh: memcaslap round $round -> $name" >&2
            out=$(timeout "$LIMIT" "${LOAD_PIN[@]}" memcaslap -s "${TARGET[$name]}" -T 1 \
                -c "$CONNS" -t "${DURATION}s" -F "$RUN/memcaslap.cfg" 2>&1 || true)
            tps=$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
            misses=$(sed -n 's/^get_misses: \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
            echo "{\"tool\":\"memcaslap\",\"workload\":\"get90\",\"round\":$round,\"name\":\"$name\",\"tps\":${tps:-0},\"get_misses\":${misses:-0}}" >>"$RESULTS"
        done
    done
fi

SWEEP=${SWEEP:-1 4 16 32 64}
SWEEP_DURATION=${SWEEP_DURATION:-2}
SWEEP_RESULTS="$RUN/sweep.jsonl"
PLOT="$(dirname "$OUT")/docs/bench-throughput.svg"
mkdir -p "$(dirname "$PLOT")"
: >"$SWEEP_RESULTS"
for conns in $SWEEP; do
    for name in "${NAMES[@]}"; do
        echo "bench.sh: sweep $conns connections -> $name" >&2
        if json=$(timeout "$LIMIT" "${LOAD_PIN[@]}" "$MEMCORD" bench --target "${TARGET[$name]}" \
            --connections "$conns" --keys "$KEYS" --key-size 64 --value-size 1024 \
            --duration "$SWEEP_DURATION" --warmup 0.5 --threads 1 --get-ratio 0.9 --json \
            2>"$RUN/bench.err"); then
            # The report plus the target's name: one point of the chart.
            echo "{\"name\":\"$name\",${json#\{}" >>"$SWEEP_RESULTS"
        else
            echo "bench.sh: sweep $conns -> $name failed: $(cat "$RUN/bench.err")" >&2
        fi
    done
done
"$MEMCORD" bench --plot "$SWEEP_RESULTS" --plot-out "$PLOT" \
    --plot-title "get90, 1 KiB values: ops/s against client connections (servers on one core)" >&2

# Idle connections: IDLE_CONNS silent clients held by memcached and by one memory peer, each
# started for this step with room for them; RSS before, while held and after.
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_RESULTS="$RUN/idle.jsonl"
: >"$IDLE_RESULTS"
if [[ "$IDLE_CONNS" -gt 0 ]]; then
    IDLE_MC_PORT=$(start_memcached idle-memcached $((IDLE_CONNS + 100)))
    IDLE_MC_PID=$(tail -1 "$PIDFILE")
    IDLE_PEER_ADDR=$(start_peer idle-peer --port 0 --kv-type memory \
        --max-connections $((IDLE_CONNS + 100)))
    for entry in "memcached|$IDLE_MC_PID|127.0.0.1:$IDLE_MC_PORT" \
        "memcord-memory|$(cat "$RUN/idle-peer.pid")|$IDLE_PEER_ADDR"; do
        IFS='|' read -r name pid addr <<<"$entry"
        echo "bench.sh: $IDLE_CONNS idle connections -> $name" >&2
        if json=$(timeout 300 python3 scripts/idle-connections.py "${addr%:*}" "${addr##*:}" \
            "$IDLE_CONNS" "$pid" 2>"$RUN/idle.err"); then
            echo "{\"name\":\"$name\",${json#\{}" >>"$IDLE_RESULTS"
        else
            echo "bench.sh: idle connections -> $name failed: $(cat "$RUN/idle.err")" >&2
        fi
    done
fi

export RESULTS OUT COMMAND_LINE PINNING IDLE_RSS_KB MEMCASLAP_NOTE SWEEP_RESULTS PLOT IDLE_RESULTS
export PROTOCOL_RESULTS
export MEMCACHED_VERSION=$("$MEMCACHED" -V 2>/dev/null || echo "?")
python3 - <<'EOF'
import json, os, platform, statistics, subprocess, datetime

rows = [json.loads(line) for line in open(os.environ["RESULTS"]) if line.strip()]
names = ["memcached", "memcord-memory", "memcord-memcached", "eventual-3", "linearizable-3",
         "sequential-3"]
labels = {
    "memcached": "memcached (direct)",
    "memcord-memory": "memcord peer, memory store",
    "memcord-memcached": "memcord peer → memcached",
    "eventual-3": "3-peer eventual cluster (round-robin)",
    "linearizable-3": "3-peer linearizable cluster (round-robin)",
    "sequential-3": "3-peer sequential cluster (round-robin)",
}

def median_run(runs, key):
    runs = sorted(runs, key=key)
    return runs[len(runs) // 2]

def ratio(value, base):
    return f"{value / base:.2f}×" if base else "–"

cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
out = []
w = out.append
w("# Benchmarks: memcord against memcached")
w("")
w("Generated by `scripts/bench.sh`; every ratio is to **memcached driven directly in the same "
  "run** by the same load generator (higher is better for ops/s, lower is better for latency).")
w("")
w("## How to regenerate")
w("")
w("```sh")
w("scripts/bench.sh                        # 5 s per point, 1 round")
w("DURATION=10 ROUNDS=3 scripts/bench.sh   # figures to quote: median of 3 rounds per point")
w("```")
w("")
w("The script builds `target/release/memcord` (or takes `MEMCORD`), starts memcached `-t 1` and "
  "every memcord target on loopback (one peer on each store; three-peer eventual, linearizable "
  "and sequential clusters, loaded round-robin), pins the servers to CPU 0 and the load "
  "generators to CPU 1, drives every workload at every target in turn with `memcord bench` and "
  "`memcaslap`, and rewrites this file down to the hand-written part, with "
  "`docs/bench-throughput.svg`. Its settings are listed at the top of the script. "
  "`scripts/bench-dynamo.sh` measures the eventual mode's consistency levels the same way.")
w("")
w("## This run")
w("")
w(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
w(f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}")
w(f"- memcached: {os.environ.get('MEMCACHED_VERSION', '?')}, `-t 1`")
w(f"- pinning: {os.environ['PINNING']}")
w(f"- command: `{os.environ['COMMAND_LINE']}`")
w(f"- idle memory-store peer RSS before load: {os.environ.get('IDLE_RSS_KB', '?')} KiB")
w("")
w("> **Noise.** This machine's two cores are shared with other work (builds, tests) while the "
  "benchmark runs, and each point is only a few seconds long: treat differences under ~15% as "
  "noise, and rerun with `DURATION=10 ROUNDS=3` on a quiet machine for figures to quote.")
w("")
workloads = []
for r in rows:
    if r["tool"] == "memcord-bench" and r["workload"] not in workloads:
        workloads.append(r["workload"])
for workload in workloads:
    runs = {n: [r["report"] for r in rows if r["tool"] == "memcord-bench"
                and r["workload"] == workload and r["name"] == n] for n in names}
    runs = {n: median_run(v, lambda x: x["ops_per_sec"]) for n, v in runs.items() if v}
    if not runs:
        continue
    first = next(iter(runs.values()))
    w(f"## `memcord bench`: {workload}")
    w("")
    w(f"{first['connections']} connections × pipeline {first['pipeline']}, {first['keys']} keys of "
      f"{first['key_size']} B ({first['distribution']}), {first['value_size']} B values, "
      f"{first['get_ratio'] * 100:.0f}% gets, {first['elapsed_s']:.1f} s measured; "
      f"latencies in µs.")
    w("")
    w("| target | ops/s | × | p50 | × | p99 | × | p999 | × | hit ratio | errors |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = runs.get("memcached")
    for n, r in runs.items():
        b = base or r
        w(f"| {labels[n]} | {r['ops_per_sec']:,.0f} | {ratio(r['ops_per_sec'], b['ops_per_sec'])} "
          f"| {r['p50_us']:.0f} | {ratio(r['p50_us'], b['p50_us'])} "
          f"| {r['p99_us']:.0f} | {ratio(r['p99_us'], b['p99_us'])} "
          f"| {r['p999_us']:.0f} | {ratio(r['p999_us'], b['p999_us'])} "
          f"| {r['hit_ratio']:.3f} | {r['errors'] + r['preload_errors']} |")
    w("")
protocol_rows = [json.loads(line) for line in open(os.environ["PROTOCOL_RESULTS"]) if line.strip()]
if protocol_rows:
    w("## The three protocols: text, meta, binary")
    w("")
    w("One memory-store peer against memcached, each driven in the same protocol by "
      "`memcord bench --protocol` (a get is `get`, `mg <key> f v` or a binary `Get`; a set is "
      "`set`, `ms` or a binary `Set`), same connections, keys and values as above, pipeline 1.")
    w("")
    w("| protocol | workload | memcached ops/s | memcord ops/s | × | memcached p99 µs | memcord p99 µs |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for protocol in ["text", "meta", "binary"]:
        for workload in ["get100", "set100"]:
            pick = {n: [r["report"] for r in protocol_rows if r["protocol"] == protocol
                        and r["workload"] == workload and r["name"] == n]
                    for n in ["memcached", "memcord-memory"]}
            if not all(pick.values()):
                continue
            mc = median_run(pick["memcached"], lambda x: x["ops_per_sec"])
            me = median_run(pick["memcord-memory"], lambda x: x["ops_per_sec"])
            w(f"| {protocol} | {workload} | {mc['ops_per_sec']:,.0f} | {me['ops_per_sec']:,.0f} "
              f"| {ratio(me['ops_per_sec'], mc['ops_per_sec'])} | {mc['p99_us']:.0f} "
              f"| {me['p99_us']:.0f} |")
    w("")
caslap = {n: [r for r in rows if r["tool"] == "memcaslap" and r["name"] == n] for n in names}
caslap = {n: median_run(v, lambda x: x["tps"]) for n, v in caslap.items() if v}
w("## memcaslap (libmemcached-tools)")
w("")
if caslap:
    w(f"{os.environ['MEMCASLAP_NOTE']}; memcaslap reports throughput only.")
    w("")
    w("| target | ops/s | × | get misses |")
    w("| --- | ---: | ---: | ---: |")
    base = caslap.get("memcached", {}).get("tps", 0)
    for n, r in caslap.items():
        w(f"| {labels[n]} | {r['tps']:,} | {ratio(r['tps'], base)} | {r['get_misses']} |")
else:
    w(os.environ["MEMCASLAP_NOTE"] + ".")
w("")
sweep = [json.loads(line) for line in open(os.environ["SWEEP_RESULTS"]) if line.strip()]
if sweep:
    conns = sorted({p["connections"] for p in sweep})
    w("## Throughput against connections (get90)")
    w("")
    w(f"![ops/s against connections]({os.path.relpath(os.environ['PLOT'], os.path.dirname(os.environ['OUT']))})")
    w("")
    w("| target | " + " | ".join(f"{c} conns" for c in conns) + " |")
    w("| --- | " + " | ".join("---:" for _ in conns) + " |")
    for n in names:
        cells = []
        for c in conns:
            ops = [p["ops_per_sec"] for p in sweep if p["name"] == n and p["connections"] == c]
            cells.append(f"{statistics.median(ops):,.0f}" if ops else "–")
        if any(cell != "–" for cell in cells):
            w(f"| {labels[n]} | " + " | ".join(cells) + " |")
    w("")
one = sorted((p for p in sweep if p["connections"] == 1), key=lambda p: names.index(p["name"]))
base = next((p for p in one if p["name"] == "memcached"), None)
if base:
    w("## Added latency at one connection (get90)")
    w("")
    w("One client connection, pipeline 1, 90% gets (the sweep's first point): what each target "
      "adds to a request over memcached itself, with no queueing.")
    w("")
    w("| target | p50 µs | p99 µs | added p50 ms | added p99 ms |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for p in one:
        w(f"| {labels[p['name']]} | {p['p50_us']:.0f} | {p['p99_us']:.0f} "
          f"| {(p['p50_us'] - base['p50_us']) / 1000:+.3f} "
          f"| {(p['p99_us'] - base['p99_us']) / 1000:+.3f} |")
    w("")
idle = [json.loads(line) for line in open(os.environ["IDLE_RESULTS"]) if line.strip()]
if idle:
    w(f"## {idle[0]['connections']:,} idle client connections")
    w("")
    w("Each connection sends one `version`, reads the answer and stays open and silent "
      "(`scripts/idle-connections.py`); a fresh connection is served while they are held. "
      "RSS of the server process, KiB (memory freed by `malloc` is not returned to the system, "
      "so *after* stays near *held*).")
    w("")
    w("| server | RSS before | RSS held | KiB per connection | RSS after closing |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for r in idle:
        w(f"| {labels[r['name']]} | {r['rss_before_kib']:,} | {r['rss_held_kib']:,} "
          f"| {r['kib_per_connection']:.2f} | {r['rss_after_kib']:,} |")
    w("")
marker = "<!-- hand-written below: kept by scripts/bench.sh -->"
kept = ""
path = os.environ["OUT"]
if os.path.exists(path):
    text = open(path).read()
    if marker in text:
        kept = text[text.index(marker) + len(marker):].lstrip("\n")
w(marker)
w("")
with open(path, "w") as f:
    f.write("\n".join(out) + ("\n" + kept if kept else ""))
EOF
echo "bench.sh: wrote $OUT" >&2
