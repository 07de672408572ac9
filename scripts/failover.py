#!/usr/bin/env python3
"""Measures leader fail-over of a three-peer memcord cluster in an ordered mode.

    scripts/failover.py [--mode linearizable|sequential] [--trials 10] [--memcord BIN]

Starts three `memcord peer`s on free loopback ports (memory stores, a data directory of their
own), then for each trial: waits until one leader serves, writes through a follower without
pause, SIGKILLs the leader, and records how long after the kill the first write *sent after
it* is acknowledged. It then checks that the last write acknowledged before the kill is still
there, restarts the killed peer from its data directory and waits until it has caught up.
Prints one JSON line per trial and a summary line (median, min, max); exits non-zero if a
trial fails. Only its own processes, killed on exit; every wait has a deadline.
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REQUEST_TIMEOUT = 5.0  # above the 2 s quorum timeout: a write is answered or refused by then
FAILOVER_DEADLINE = 20.0
READY_DEADLINE = 60.0


def ephemeral_low():
    """The first port of the kernel's ephemeral range (32768 if unreadable or too low)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > 12000 else 32768


TAKEN = set()


def free_port():
    """A free loopback port below the ephemeral range: a port from a bind to port 0 can be
    taken by an outgoing connection before the peer binds it (EADDRINUSE)."""
    below = ephemeral_low()
    for _ in range(1000):
        port = random.randrange(10000, below)
        if port in TAKEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        TAKEN.add(port)
        return port
    raise OSError("no free loopback port below the ephemeral range")


def ask(port, payload, terminators, timeout=REQUEST_TIMEOUT):
    """Sends `payload` on a fresh connection; returns the reply once it ends with one of
    `terminators`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        reply = b""
        while not reply.endswith(terminators):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            reply += chunk
        return reply


def stats_cluster(port):
    reply = ask(port, b"stats cluster\r\n", (b"END\r\n",), timeout=1.0)
    stats = {}
    for line in reply.decode().splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def set_key(port, key, value):
    data = value.encode()
    payload = b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(data), data)
    return ask(port, payload, (b"\r\n",)) == b"STORED\r\n"


def get_key(port, key):
    reply = ask(port, b"get %s\r\n" % key.encode(), (b"END\r\n",))
    lines = reply.split(b"\r\n")
    return lines[1].decode() if reply.startswith(b"VALUE") else None


def wait_until(what, condition, deadline):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            result = condition()
            if result is not None and result is not False:
                return result
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what} after {deadline} s")


class Cluster:
    def __init__(self, memcord, mode, workdir):
        self.memcord = memcord
        self.client = [free_port() for _ in range(3)]
        self.peer = [free_port() for _ in range(3)]
        self.config = os.path.join(workdir, "cluster.ini")
        self.workdir = workdir
        with open(self.config, "w") as f:
            f.write(f"[cluster]\nconsistency = {mode}\nsecret = failover\n")
            f.write(f"data_dir = {os.path.join(workdir, 'data')}\n[kv]\ntype = memory\n")
            for i in range(3):
                f.write(f"[peer.{i}]\nclient_addr = 127.0.0.1:{self.client[i]}\n")
                f.write(f"peer_addr = 127.0.0.1:{self.peer[i]}\n")
        self.procs = [None, None, None]

    def start(self, i):
        log = open(os.path.join(self.workdir, f"peer-{i}.log"), "ab")
        env = dict(os.environ, MEMCORD_LOG="warn")
        self.procs[i] = subprocess.Popen(
            [self.memcord, "peer", "--config", self.config, "--id", str(i)],
            stdout=log, stderr=log, env=env)

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def stop(self):
        for proc in self.procs:
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()

    def leader(self):
        """The one peer every live peer names as leader, once all three serve."""
        roles = []
        for port in self.client:
            try:
                roles.append(stats_cluster(port).get("cluster_role"))
            except OSError as err:
                roles.append(f"unreachable ({err})")
        self.roles = roles
        leaders = [i for i, role in enumerate(roles) if role == "leader"]
        return leaders[0] if len(leaders) == 1 and roles.count("follower") == 2 else None

    def wait_leader(self):
        """Waits for a leader; on failure says what each peer answered and logged."""
        self.roles = []
        try:
            return wait_until("a leader", self.leader, READY_DEADLINE)
        except TimeoutError as err:
            report = [str(err), f"roles: {self.roles}"]
            for i, proc in enumerate(self.procs):
                report.append(f"peer {i}: exit status {proc.poll()}")
                with open(os.path.join(self.workdir, f"peer-{i}.log"), "rb") as log:
                    report.append(log.read()[-2000:].decode(errors="replace"))
            raise RuntimeError("\n".join(report)) from None


def trial(cluster, number):
    leader = cluster.wait_leader()
    coordinator = (leader + 1) % 3
    port = cluster.client[coordinator]
    acked = None
    for n in range(20):  # writes before the kill: the service is up
        key = f"failover:{number}:{n}"
        if set_key(port, key, key):
            acked = key
    if acked is None:
        raise RuntimeError("no write acknowledged before the kill")
    killed_at = time.monotonic()
    cluster.kill(leader)
    resumed = None
    n = 0
    while time.monotonic() - killed_at < FAILOVER_DEADLINE:
        n += 1
        try:
            if set_key(port, f"failover:{number}:after:{n}", "x"):
                resumed = time.monotonic() - killed_at
                break
        except OSError:
            time.sleep(0.01)
    if resumed is None:
        raise RuntimeError(f"no write acknowledged within {FAILOVER_DEADLINE} s of the kill")
    if get_key(port, acked) != acked:
        raise RuntimeError(f"acknowledged write {acked} lost after the fail-over")
    cluster.start(leader)
    new_leader = cluster.wait_leader()
    target = int(stats_cluster(cluster.client[new_leader])["cluster_last_log_index"])
    wait_until(
        "the restarted peer to catch up",
        lambda: int(stats_cluster(cluster.client[leader]).get("cluster_applied_index", 0)) >= target,
        READY_DEADLINE)
    return {"trial": number, "killed": leader, "coordinator": coordinator,
            "failover_s": round(resumed, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="linearizable", choices=["linearizable", "sequential"])
    parser.add_argument("--trials", type=int, default=10)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--memcord", default=os.path.join(root, "target/release/memcord"))
    args = parser.parse_args()
    if not os.access(args.memcord, os.X_OK):
        sys.exit(f"failover.py: no memcord binary at {args.memcord} (cargo build --release)")
    with tempfile.TemporaryDirectory(prefix="memcord-failover.") as workdir:
        cluster = Cluster(args.memcord, args.mode, workdir)
        try:
            for i in range(3):
                cluster.start(i)
            times = []
            for number in range(1, args.trials + 1):
                result = trial(cluster, number)
                print(json.dumps(result), flush=True)
                times.append(result["failover_s"])
            print(json.dumps({"mode": args.mode, "trials": len(times),
                              "median_s": round(statistics.median(times), 3),
                              "min_s": min(times), "max_s": max(times)}))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
