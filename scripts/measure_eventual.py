#!/usr/bin/env python3
"""Measures the eventual mode's figures on this machine (not a test: it asserts nothing).

* convergence time after the last write (median of N trials), with push on and with the
  periodic sync alone;
* state-transfer rate: a peer killed, 100k items of 100 bytes written meanwhile, the peer
  restarted empty; the rate is read from its "caught up" log line.

Usage: scripts/measure_eventual.py [path/to/memcord] [--trials N] [--items N]
Everything runs on 127.0.0.1 free ports and is stopped at the end.
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_until(self, suffix):
        while not self.buf.endswith(suffix):
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def get(self, key):
        self.send(b"get " + key + b"\r\n")
        reply = self.read_until(b"END\r\n")
        if reply == b"END\r\n":
            return None
        return reply.split(b"\r\n")[1]

    def set(self, key, value):
        self.send(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        assert self.read_until(b"\r\n") == b"STORED\r\n"

    def stats(self, group=b""):
        self.send(b"stats " + group + b"\r\n")
        lines = self.read_until(b"END\r\n").decode().splitlines()
        return dict(l.split(" ", 2)[1:] for l in lines if l.startswith("STAT "))


class Cluster:
    def __init__(self, binary, cluster_lines, peers=3):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="memcord-measure-")
        self.ports = [free_port() for _ in range(peers)]
        ini = "[cluster]\nconsistency = eventual\nsecret = measure\n" + "".join(
            l + "\n" for l in cluster_lines
        )
        for i, port in enumerate(self.ports):
            ini += "[peer.%d]\nclient_addr = 127.0.0.1:%d\npeer_addr = 127.0.0.1:%d\n" % (
                i,
                port,
                free_port(),
            )
        self.config = os.path.join(self.dir, "config.ini")
        with open(self.config, "w") as f:
            f.write(ini)
        self.procs = [None] * peers
        for i in range(peers):
            self.start(i)
        for i in range(peers):
            self.wait_serving(i)

    def log_path(self, i):
        return os.path.join(self.dir, "peer%d.log" % i)

    def start(self, i):
        log = open(self.log_path(i), "a")
        self.procs[i] = subprocess.Popen(
            [self.binary, "peer", "--config", self.config, "--id", str(i)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    def wait_serving(self, i, deadline=60):
        end = time.time() + deadline
        while time.time() < end:
            try:
                if Client(self.ports[i]).stats(b"cluster").get("cluster_state") == "serving":
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("peer %d not serving" % i)

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(10)

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def convergence(binary, cluster_lines, trials):
    cluster = Cluster(binary, cluster_lines)
    try:
        clients = [Client(p) for p in cluster.ports]
        times = []
        for t in range(trials):
            key = b"conv-%d" % t
            value = b"v-%d-%f" % (t, time.time())
            writer = t % 3
            clients[writer].set(key, value)
            start = time.perf_counter()
            pending = [c for i, c in enumerate(clients) if i != writer]
            deadline = start + 30
            while pending and time.perf_counter() < deadline:
                pending = [c for c in pending if c.get(key) != value]
            if pending:
                raise RuntimeError("trial %d did not converge" % t)
            times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        cluster.stop()


def state_transfer(binary, items):
    cluster = Cluster(binary, [])
    try:
        cluster.kill(2)
        c = Client(cluster.ports[0])
        value = b"x" * 100
        batch = 1000
        for start in range(0, items, batch):
            payload = b"".join(
                b"set st-%d 0 0 100\r\n%s\r\n" % (k, value) for k in range(start, min(items, start + batch))
            )
            c.send(payload)
            c.read_until(b"STORED\r\n" * min(batch, items - start))
        began = time.perf_counter()
        cluster.start(2)
        cluster.wait_serving(2)
        wall = time.perf_counter() - began
        log = open(cluster.log_path(2)).read()
        m = re.findall(r"caught up.*?received=(\d+).*?rate=(\d+)", log)
        return wall, m
    finally:
        cluster.stop()


def main():
    args = sys.argv[1:]
    binary = os.path.join(ROOT, "target", "release", "memcord")
    trials, items = 20, 100_000
    while args:
        a = args.pop(0)
        if a == "--trials":
            trials = int(args.pop(0))
        elif a == "--items":
            items = int(args.pop(0))
        else:
            binary = a
    for name, lines in [
        ("push on, sync 500 ms", ["sync_interval_ms = 500"]),
        ("push off, sync 500 ms", ["sync_interval_ms = 500", "push = false"]),
    ]:
        times = convergence(binary, lines, trials)
        print(
            "convergence (%s): median %.2f ms, p90 %.2f ms, max %.2f ms over %d trials"
            % (name, statistics.median(times), sorted(times)[int(0.9 * len(times)) - 1], max(times), trials)
        )
    wall, found = state_transfer(binary, items)
    print("state transfer of %d items x 100 B: restart to serving %.2f s; log: %s" % (items, wall, found))


if __name__ == "__main__":
    main()
