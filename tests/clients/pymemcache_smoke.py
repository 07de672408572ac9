"""pymemcache against a running memcord peer: python3 pymemcache_smoke.py HOST PORT.

Exits non-zero (an AssertionError with the failing check) on any difference from memcached.
"""
import sys

from pymemcache.client.base import Client


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = Client((host, port), connect_timeout=10, timeout=10)

    assert c.version().decode().startswith("1.6.0-memcord-"), c.version()

    # pymemcache sends set with noreply by default; noreply=False asks for STORED.
    assert c.set("greeting", b"hello", noreply=False) is True
    assert c.get("greeting") == b"hello"
    assert c.get("missing") is None

    value, cas = c.gets("greeting")
    assert value == b"hello" and cas is not None
    assert c.cas("greeting", b"hi", cas, noreply=False) is True
    assert c.cas("greeting", b"again", cas, noreply=False) is False
    assert c.cas("missing", b"x", b"1", noreply=False) is None
    assert c.get("greeting") == b"hi"

    c.set("counter", b"41")
    assert c.incr("counter", 1) == 42
    assert c.decr("counter", 50) == 0
    assert c.incr("missing", 1) is None

    assert c.add("fresh", b"a", noreply=False) is True
    assert c.add("fresh", b"b", noreply=False) is False
    assert c.append("fresh", b"z", noreply=False) is True
    assert c.prepend("fresh", b"y", noreply=False) is True
    assert c.replace("fresh", b"yaz!", noreply=False) is True
    assert c.replace("missing", b"x", noreply=False) is False

    assert c.touch("fresh", 100, noreply=False) is True
    assert c.touch("missing", 100, noreply=False) is False

    many = c.get_many(["greeting", "fresh", "missing"])
    assert many == {"greeting": b"hi", "fresh": b"yaz!"}, many

    binary = bytes(range(256)) + b"\r\nEND\r\n"
    c.set("binary", binary, noreply=False)
    assert c.get("binary") == binary

    c.set_many({"m1": b"1", "m2": b"2"}, noreply=False)
    assert c.get_many(["m1", "m2"]) == {"m1": b"1", "m2": b"2"}

    assert c.delete("fresh", noreply=False) is True
    assert c.delete("fresh", noreply=False) is False

    stats = c.stats()
    assert b"curr_items" in stats and stats[b"cmd_set"] >= 5, stats

    assert c.flush_all(noreply=False) is True
    assert c.get("greeting") is None

    c.close()
    print("pymemcache smoke: ok")


if __name__ == "__main__":
    main()
