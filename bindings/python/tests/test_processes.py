"""Processes: a multiprocessing pool started by fork, a script that exits
without shutdown (with the server up and down), and the exit bound. Each
scenario runs as its own Python process with a deadline, so a hang fails."""

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

DEADLINE = 120


def run_script(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_vars)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def dead_url() -> str:
    """A loopback port where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def names(server) -> Counter:
    return Counter(e["event_name"] for e in server.events())


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_fork_pool_delivers_every_worker_event_by_the_parent_shutdown(server, tmp_path):
    result = run_script(
        """
        import multiprocessing, os, sys
        import trodo_native as trodo

        def work(i):
            trodo.track("pool_event", {"i": i, "pid": os.getpid()})
            return os.getpid()

        if __name__ == "__main__":
            trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"])
            trodo.identify("pool-user")
            ctx = multiprocessing.get_context("fork")
            pool = ctx.Pool(4)
            pids = set(pool.map(work, range(200), chunksize=5))
            pool.close()
            pool.join()
            trodo.shutdown(30)
            print("workers", len(pids))
        """,
        API=server.url,
        DIR=str(tmp_path / "pool"),
    )
    assert result.returncode == 0, result.stderr
    got = sorted(e["custom_properties"]["i"] for e in server.events() if e["event_name"] == "pool_event")
    assert got == list(range(200)), "every worker event exactly once"
    assert all(e["user_id"] == "pool-user" for e in server.events() if e["event_name"] == "pool_event")
    assert int(result.stdout.split()[-1]) > 1, "the work really ran in several workers"


SCRIPT_WITHOUT_SHUTDOWN = """
    import os, sys
    import trodo_native as trodo
    trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"],
               exit_flush_timeout=float(os.environ["EXIT_FLUSH"]))
    for i in range(20):
        trodo.track("exit_event_%d" % i)
    # no shutdown: the end of the script
"""


def test_a_script_that_exits_without_shutdown_still_delivers(server, tmp_path):
    result = run_script(SCRIPT_WITHOUT_SHUTDOWN, API=server.url, DIR=str(tmp_path / "s"), EXIT_FLUSH="5")
    assert result.returncode == 0, result.stderr
    assert names(server) == Counter("exit_event_%d" % i for i in range(20))


def test_with_the_server_down_it_exits_within_the_bound_and_the_next_run_delivers(server, tmp_path):
    storage = str(tmp_path / "offline")
    started = time.monotonic()
    result = run_script(SCRIPT_WITHOUT_SHUTDOWN, API=dead_url(), DIR=storage, EXIT_FLUSH="0.5")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # Interpreter start and import included; without the bound it would wait
    # for retries without end.
    assert elapsed < 0.5 + 5, elapsed
    assert names(server) == Counter()

    result = run_script(
        """
        import os
        import trodo_native as trodo
        trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"])
        trodo.shutdown(30)
        """,
        API=server.url,
        DIR=storage,
    )
    assert result.returncode == 0, result.stderr
    assert names(server) == Counter("exit_event_%d" % i for i in range(20))


def test_exit_flush_timeout_is_checked():
    import trodo_native as trodo

    for bad in (-1, float("nan"), float("inf"), "2"):
        with pytest.raises(ValueError):
            trodo.init("site-py", exit_flush_timeout=bad)
