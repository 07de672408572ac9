#!/usr/bin/env python3
"""Holds N idle client connections to a memcache server and reports its memory.

    scripts/idle-connections.py HOST PORT COUNT PID

Each connection sends one `version` and reads the answer (so the server has accepted and
served it), then stays open and silent. Prints one JSON object: the server's RSS before, while
the connections are held, and after they are closed, in KiB, and the RSS each held connection
added. While they are held, a fresh connection must still get `VERSION`: the server goes on
serving. Needs an open-file limit above COUNT (raised here up to the hard limit).
"""
import json
import resource
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def expect_version(sock):
    """Reads one reply line from `sock` and checks that it is `VERSION …`."""
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(128)
        if not chunk:
            raise RuntimeError("connection closed")
        reply += chunk
    if not reply.startswith(b"VERSION "):
        raise RuntimeError(f"unexpected reply {reply!r}")


def main():
    host, port, count, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=10)
            socks.append(sock)
            sock.sendall(b"version\r\n")
        for sock in socks:
            expect_version(sock)
        time.sleep(0.5)
        held = rss_kib(pid)
        with socket.create_connection((host, port), timeout=10) as fresh:
            fresh.sendall(b"version\r\n")
            expect_version(fresh)
    finally:
        for sock in socks:
            sock.close()
    time.sleep(1.0)
    after = rss_kib(pid)
    print(json.dumps({
        "connections": count,
        "rss_before_kib": before,
        "rss_held_kib": held,
        "rss_after_kib": after,
        "kib_per_connection": round((held - before) / count, 2),
    }))


if __name__ == "__main__":
    main()
