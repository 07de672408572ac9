# Helpers shared by scripts/bench.sh and scripts/bench-dynamo.sh (sourced, not run). The caller
# defines `die MESSAGE` first.

# CPU pinning: servers on CPU 0, load generators on CPU 1, so memcached and memcord get the
# same one-core budget.
SERVER_PIN=()
LOAD_PIN=()
PINNING="none (fewer than 2 CPUs or no taskset)"
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_PIN=(taskset -c 0)
    LOAD_PIN=(taskset -c 1)
    PINNING="servers on CPU 0, load generator on CPU 1 (taskset)"
fi

# Ports are picked below the kernel's ephemeral range: a port in it can be handed to an
# outgoing connection (this run's load generators, anything else on the machine) between
# choosing it here and a server binding it, and the server then fails with EADDRINUSE.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[[ $EPHEMERAL_LOW =~ ^[0-9]+$ && $EPHEMERAL_LOW -gt 12000 ]] || EPHEMERAL_LOW=32768

# A loopback port nothing listens on, below the ephemeral range (probed; bounded attempts).
free_port() {
    local port attempt
    for attempt in $(seq 1 100); do
        port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# wait_port PORT: until something listens on the loopback PORT, bounded.
wait_port() {
    local i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on $1"
}

# wait_serving ADDR: until the peer says `cluster_state serving` (ordered modes: a leader is
# known), bounded.
wait_serving() {
    local host=${1%:*} port=${1##*:} i
    for i in $(seq 1 100); do
        # In a child shell: a refused connection makes `exec` fail, which would end this one.
        if timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "stats cluster\r\n" >&3 &&
            grep -m1 -q "cluster_state serving" <&3' _ "$host" "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "cluster peer $1 never served"
}
