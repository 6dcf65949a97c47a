"""Side by side with trodo-python (the official server-side SDK, pinned by
scripts/bench.sh), both against the same loopback server, two workloads:

- app: identify, then 5 000 track calls with one set_group and one
  get_group(...).set every 250 events;
- server mode: 20 000 track calls for 10 000 users, round robin (trodo-python's
  ``track(distinct_id, ...)``; trodo_native's ``for_user(distinct_id)``
  handles, kept in a dict as trodo-python keeps its user contexts).

Timed on the caller side and until the server has every event. Prints rows
of the benchmark table.

The loopback server stands in for Trodo's, which runs on other machines: it
is kept on one CPU (the last) so that its work for whichever SDK is sending
does not run on the caller's CPU, for both SDKs alike. ``--shared-cpus``
lets it run anywhere, as before the fifth session.

Run through scripts/bench.sh (it builds the library and sets up the venv).
"""

import gzip
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVENTS = 5000
EVERY = 250
RUNS = 3
USERS = 10000
USER_EVENTS = 20000
PROPS = {"plan": "pro", "seats": 12, "trial": False, "source": "bench", "ratio": 0.5}


def server_cpu():
    """The CPU the server is kept on, or None: with --shared-cpus, with a
    single CPU, or where affinity cannot be set."""
    if "--shared-cpus" in sys.argv or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) >= 2 else None


def serve(port, counter, cpu) -> None:
    """The loopback server, in its own process so it never competes with the
    SDK under test for a Python interpreter lock."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            n = 0
            if self.path == "/api/events":
                n = 1
            elif self.path == "/api/events/bulk":
                n = len(json.loads(raw).get("events", []))
            if n:
                with counter.get_lock():
                    counter.value += n
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port.value = server.server_address[1]
    server.serve_forever()


def start_server():
    port = multiprocessing.Value("i", 0)
    counter = multiprocessing.Value("q", 0)
    proc = multiprocessing.Process(target=serve, args=(port, counter, server_cpu()), daemon=True)
    proc.start()
    while port.value == 0:
        time.sleep(0.01)
    return proc, port.value, counter


def wait_for(counter, n: int, limit: float = 600.0) -> None:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if counter.value >= n:
            return
        time.sleep(0.001)
    raise RuntimeError("server got %d of %d events" % (counter.value, n))


def deliver_all(trodo, counter, start: float, events: int = EVENTS) -> float:
    """Flushes, waits until the server has every event and shuts down;
    returns the seconds since `start` until the server had them all."""
    trodo.flush(600)
    wait_for(counter, events)
    total = time.perf_counter() - start
    trodo.shutdown(10)
    return total


def deliver_all_python(client, counter, start: float, events: int = EVENTS) -> float:
    """As :func:`deliver_all`, for a trodo-python client."""
    client.flush()
    wait_for(counter, events)
    total = time.perf_counter() - start
    client.shutdown()
    return total


def run_native(url: str, counter):
    import trodo_native as trodo

    with tempfile.TemporaryDirectory() as d:
        trodo.init("bench-site", api_base=url, storage_dir=d)
        start = time.perf_counter()
        trodo.identify("user-1")
        for i in range(EVENTS):
            trodo.track("bench_event", PROPS)
            if i % EVERY == 0:
                trodo.set_group("active_team", "team-%d" % (i // EVERY))
                with trodo.get_group("company", "acme") as g:
                    g.set({"n": i})
        caller = time.perf_counter() - start
        total = deliver_all(trodo, counter, start)
    return caller, total


def run_python(url: str, counter, batched: bool):
    import trodo

    client = trodo.init("bench-site", api_base=url, batch_enabled=batched, auto_instrument=False)
    start = time.perf_counter()
    user = client.identify("user-1")
    for i in range(EVENTS):
        user.track("bench_event", PROPS)
        if i % EVERY == 0:
            user.set_group("active_team", "team-%d" % (i // EVERY))
            user.get_group("company", "acme").set({"n": i})
    caller = time.perf_counter() - start
    return caller, deliver_all_python(client, counter, start)


def run_native_users(url: str, counter):
    import trodo_native as trodo

    with tempfile.TemporaryDirectory() as d:
        trodo.init("bench-site", api_base=url, storage_dir=d)
        users = {}
        start = time.perf_counter()
        for i in range(USER_EVENTS):
            distinct_id = "user-%d" % (i % USERS)
            user = users.get(distinct_id)
            if user is None:
                user = users[distinct_id] = trodo.for_user(distinct_id)
            user.track("bench_event", PROPS)
        caller = time.perf_counter() - start
        total = deliver_all(trodo, counter, start, USER_EVENTS)
        users.clear()
    return caller, total


def run_python_users(url: str, counter, batched: bool):
    import trodo

    client = trodo.init("bench-site", api_base=url, batch_enabled=batched, auto_instrument=False)
    start = time.perf_counter()
    for i in range(USER_EVENTS):
        client.track("user-%d" % (i % USERS), "bench_event", PROPS)
    caller = time.perf_counter() - start
    return caller, deliver_all_python(client, counter, start, USER_EVENTS)


def measure(fn, *args, runs: int = RUNS):
    callers, totals = [], []
    for _ in range(runs):
        proc, port, counter = start_server()
        caller, total = fn("http://127.0.0.1:%d" % port, counter, *args)
        callers.append(caller)
        totals.append(total)
        proc.terminate()
        proc.join()
    return statistics.median(callers), statistics.median(totals)


def row(name: str, value: str) -> None:
    print("%-58s %s" % (name, value))
    sys.stdout.flush()


def encode_floor() -> float:
    """Microseconds to JSON-encode the properties to bytes in Python, the
    cheapest way known (CPython's C encoder, built once and called directly,
    as trodo_native does; json.dumps costs ~0.8 µs more)."""
    from trodo_native import _ENCODE

    n = 50000
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(n):
            _ENCODE(PROPS).encode()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def run_bare_ctypes(url: str, counter):
    """The same workload as bare ctypes calls with arguments encoded
    beforehand, against the same server: what any ctypes binding pays on this
    machine while delivery runs, before encoding anything."""
    import trodo_native as trodo
    from trodo_native import _ENCODE, _lib

    lib = _lib.load()
    name, props = b"bench_event", _ENCODE(PROPS).encode()
    marks = range(0, EVENTS, EVERY)
    teams = [("team-%d" % (i // EVERY)).encode() for i in marks]
    group_props = [_ENCODE({"n": i}).encode() for i in marks]
    with tempfile.TemporaryDirectory() as d:
        trodo.init("bench-site", api_base=url, storage_dir=d)
        start = time.perf_counter()
        lib.trodo_identify(b"user-1")
        for i in range(EVENTS):
            lib.trodo_track_with_category(name, props, None)
            if i % EVERY == 0:
                lib.trodo_set_group(b"active_team", teams[i // EVERY])
                g = lib.trodo_get_group(b"company", b"acme")
                lib.trodo_group_set(g, group_props[i // EVERY])
                lib.trodo_group_free(g)
        caller = time.perf_counter() - start
        total = deliver_all(trodo, counter, start)
    return caller, total


def main() -> None:
    cpu = server_cpu()
    row("side by side: loopback server kept on CPU", "none (shared)" if cpu is None else str(cpu))
    if "--server-mode" in sys.argv:
        return server_mode()
    encode = encode_floor()
    bare = measure(run_bare_ctypes)
    native = measure(run_native)
    default = measure(run_python, False)
    batched = measure(run_python, True)
    for label, (caller, total) in (
        ("trodo_native", native),
        ("trodo-python default", default),
        ("trodo-python batch_enabled", batched),
    ):
        row("side by side: %s caller / end-to-end (ms)" % label, "%.1f / %.1f" % (caller * 1e3, total * 1e3))
    row("side by side: floor, the workload as bare ctypes calls, caller (ms)", "%.1f" % (bare[0] * 1e3))
    row("side by side: floor, json-encoding the properties in Python (µs)", "%.2f" % encode)
    # The least any ctypes binding can cost the caller: the bare calls plus
    # encoding each event's properties (the rare group calls' encoding is
    # left out, which only flatters the bound).
    least = bare[0] + EVENTS * encode * 1e-6
    row("side by side: best possible through ctypes vs default / batched",
        "%.0fx / %.1fx" % (default[0] / least, batched[0] / least))
    row("side by side: caller speed-up vs default / batched", "%.0fx / %.1fx" % (default[0] / native[0], batched[0] / native[0]))
    row("side by side: end-to-end speed-up vs default / batched", "%.1fx / %.2fx" % (default[1] / native[1], batched[1] / native[1]))

    server_mode()


def server_mode() -> None:
    # trodo-python's default mode makes 30 000 blocking requests: one run, and
    # none with --no-default (for quicker looks at the other two).
    with_default = "--no-default" not in sys.argv
    native = measure(run_native_users)
    batched = measure(run_python_users, True, runs=RUNS if with_default else 1)
    rows = [("trodo_native for_user", native), ("trodo-python track(distinct_id) batch_enabled", batched)]
    if with_default:
        default = measure(run_python_users, False, runs=1)
        rows.insert(1, ("trodo-python track(distinct_id) default", default))
    for label, (caller, total) in rows:
        row("server mode: %s caller / end-to-end (ms)" % label, "%.1f / %.1f" % (caller * 1e3, total * 1e3))
    row("server mode: caller speed-up vs batched", "%.0fx" % (batched[0] / native[0]))
    row("server mode: end-to-end speed-up vs batched", "%.1fx" % (batched[1] / native[1]))
    if with_default:
        row("server mode: caller / end-to-end speed-up vs default",
            "%.0fx / %.1fx" % (default[0] / native[0], default[1] / native[1]))

if __name__ == "__main__":
    main()
