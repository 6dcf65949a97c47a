"""Processes: a multiprocessing pool started by fork, a script that exits
without shutdown (with the server up and down), and the exit bound. Each
scenario runs as its own Python process with a deadline, so a hang fails."""

import os
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
    """A loopback port where nothing listens: the discard port, which no test
    server is given (they bind port 0). A port just freed could be given to
    another server meanwhile."""
    return "http://127.0.0.1:9"


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


def assert_at_least_once_at_most_twice(server, event_name, keys, key="i"):
    """Each of `keys` arrived; a repeat is only a request in flight when its
    process died: the same insert_id, and never more than twice."""
    seen = {}
    for e in server.events():
        if e["event_name"] == event_name:
            seen.setdefault(e["custom_properties"][key], []).append(e["insert_id"])
    missing = sorted(set(keys) - set(seen))
    assert not missing, "accepted and never sent: %s" % missing[:20]
    for k, ids in seen.items():
        assert len(ids) <= 2 and len(set(ids)) == 1, (k, ids)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_pool_left_by_its_with_block_terminates_its_workers_and_loses_nothing(server, tmp_path):
    # Leaving `with Pool()` calls terminate(): SIGTERM, no exit handler runs.
    result = run_script(
        """
        import multiprocessing, os
        import trodo_native as trodo

        def work(i):
            trodo.track("with_pool_event", {"i": i})
            return os.getpid()

        if __name__ == "__main__":
            trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"],
                       persist_interval_ms=60000)
            with multiprocessing.get_context("fork").Pool(4) as pool:
                pids = set(pool.map(work, range(200), chunksize=5))
            trodo.shutdown(30)
            print("workers", len(pids))
        """,
        API=server.url,
        DIR=str(tmp_path / "with-pool"),
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) > 1, "the work really ran in several workers"
    assert_at_least_once_at_most_twice(server, "with_pool_event", range(200))


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_forked_children_that_os_exit_right_after_tracking_lose_nothing(server, tmp_path):
    result = run_script(
        """
        import os
        import trodo_native as trodo

        trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"],
                   persist_interval_ms=60000)
        children = []
        for k in range(120):
            pid = os.fork()
            if pid == 0:
                trodo.track("forked_event", {"k": k})
                os._exit(0)  # no exit handler, no flush
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        trodo.shutdown(30)
        """,
        API=server.url,
        DIR=str(tmp_path / "forked"),
    )
    assert result.returncode == 0, result.stderr
    assert_at_least_once_at_most_twice(server, "forked_event", range(120), key="k")


CELERY_APP = """
import os
import trodo_native as trodo
from celery import Celery

folder = os.environ["BROKER_DIR"]
app = Celery("tasks", broker="filesystem://")
app.conf.update(
    broker_transport_options={
        "data_folder_in": folder,
        "data_folder_out": folder,
        "processed_folder": os.path.join(folder, "processed"),
        "store_processed": False,
    },
    result_backend=None,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
# Initialized once in the worker's main process; its prefork children
# continue it after the fork, as an app's module-level init would.
trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"],
           persist_interval_ms=60000)


@app.task
def work(n):
    trodo.track("celery_event", {"n": n})
    # The call returned: the event is accepted. One write, so lines never mix.
    fd = os.open(os.environ["ACCEPTED"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"%d\\n" % n)
    os.close(fd)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork (prefork pool)")
def test_a_celery_prefork_worker_stopped_with_sigterm_mid_load_loses_nothing(server, tmp_path):
    celery = pytest.importorskip("celery")
    assert celery.__version__
    app_dir = tmp_path / "app"
    broker = tmp_path / "broker"
    for d in (app_dir, broker, broker / "processed"):
        d.mkdir()
    (app_dir / "tasks.py").write_text(CELERY_APP)
    accepted = tmp_path / "accepted.txt"
    env = dict(
        os.environ,
        API=server.url,
        DIR=str(tmp_path / "celery-storage"),
        BROKER_DIR=str(broker),
        ACCEPTED=str(accepted),
        PYTHONPATH=str(app_dir),
    )
    total = 400
    sent = subprocess.run(
        [sys.executable, "-c", "from tasks import work\nfor n in range(%d): work.delay(n)" % total],
        env=dict(env, DIR=str(tmp_path / "producer-storage")),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert sent.returncode == 0, sent.stderr
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork",
         "--concurrency=3", "--loglevel=WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        env=env,
        cwd=str(app_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Mid-load: some tasks done, most still waiting.
        end = time.monotonic() + DEADLINE
        while not accepted.exists() or len(accepted.read_text().split()) < 60:
            assert worker.poll() is None, worker.stderr.read().decode()
            assert time.monotonic() < end, "the worker ran no task"
            time.sleep(0.02)
        worker.send_signal(15)  # SIGTERM: warm shutdown; children end with os._exit
        worker.wait(timeout=DEADLINE)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    done = [int(n) for n in accepted.read_text().split()]
    assert 60 <= len(done) < total, "stopped mid-load: %d of %d" % (len(done), total)
    # The next start on the directory sends what the worker's processes left.
    result = run_script(
        """
        import os
        import trodo_native as trodo
        trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"])
        trodo.shutdown(30)
        """,
        API=server.url,
        DIR=env["DIR"],
    )
    assert result.returncode == 0, result.stderr
    assert_at_least_once_at_most_twice(server, "celery_event", done, key="n")
