"""Side by side with trodo-python (the official server-side SDK, pinned by
scripts/bench.sh), both against the same loopback server, same workload:
identify, then 5 000 track calls with one set_group and one
get_group(...).set every 250 events. Timed on the caller side and until the
server has every event. Prints rows of the benchmark table.

Run through scripts/bench.sh (it builds the library and sets up the venv).
"""

import gzip
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVENTS = 5000
EVERY = 250
RUNS = 3
PROPS = {"plan": "pro", "seats": 12, "trial": False, "source": "bench", "ratio": 0.5}


def serve(port, counter) -> None:
    """The loopback server, in its own process so it never competes with the
    SDK under test for a Python interpreter lock."""

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
    proc = multiprocessing.Process(target=serve, args=(port, counter), daemon=True)
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
        trodo.flush(60)
        wait_for(counter, EVENTS)
        total = time.perf_counter() - start
        trodo.shutdown(10)
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
    client.flush()
    wait_for(counter, EVENTS)
    total = time.perf_counter() - start
    client.shutdown()
    return caller, total


def measure(fn, *args):
    callers, totals = [], []
    for _ in range(RUNS):
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
    """Microseconds to JSON-encode the properties in Python, the cheapest way."""
    encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        encode(PROPS)
    return (time.perf_counter() - start) / n * 1e6


def ctypes_floor() -> float:
    """Microseconds per bare ctypes call of trodo_track_with_category with
    pre-encoded arguments: what any ctypes binding pays before doing anything."""
    import trodo_native as trodo
    from trodo_native import _lib

    lib = _lib.load()
    name = b"bench_event"
    props = json.dumps(PROPS, separators=(",", ":")).encode()
    with tempfile.TemporaryDirectory() as d:
        trodo.init("bench-site", api_base="http://127.0.0.1:9", storage_dir=d,
                   max_queue_items=10_000_000, max_queue_bytes=4_000_000_000)
        n = 20000
        start = time.perf_counter()
        for _ in range(n):
            lib.trodo_track_with_category(name, props, None)
        per_call = (time.perf_counter() - start) / n * 1e6
        try:
            trodo.shutdown(0)
        except trodo.TrodoTimeoutError:
            pass  # nothing listens there: the queue stays on disk, deleted with d
    return per_call


def main() -> None:
    floor = ctypes_floor()
    encode = encode_floor()
    native = measure(run_native)
    default = measure(run_python, False)
    batched = measure(run_python, True)
    for label, (caller, total) in (
        ("trodo_native", native),
        ("trodo-python default", default),
        ("trodo-python batch_enabled", batched),
    ):
        row("side by side: %s caller / end-to-end (ms)" % label, "%.1f / %.1f" % (caller * 1e3, total * 1e3))
    per_call_batched = batched[0] / (EVENTS + 2 * EVENTS / EVERY) * 1e6
    row("side by side: floor, bare ctypes call from Python (µs)", "%.2f" % floor)
    row("side by side: trodo-python batch_enabled per call (µs)", "%.1f" % per_call_batched)
    row("side by side: floor, json-encoding the properties in Python (µs)", "%.2f" % encode)
    per_call_default = default[0] / (EVENTS + 2 * EVENTS / EVERY) * 1e6
    row("side by side: best possible through ctypes vs default / batched",
        "%.0fx / %.1fx" % (per_call_default / (floor + encode), per_call_batched / (floor + encode)))
    row("side by side: caller speed-up vs default / batched", "%.0fx / %.1fx" % (default[0] / native[0], batched[0] / native[0]))
    row("side by side: end-to-end speed-up vs default / batched", "%.1fx / %.2fx" % (default[1] / native[1], batched[1] / native[1]))


if __name__ == "__main__":
    main()
