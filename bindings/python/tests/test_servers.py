"""The shutdown patterns the README gives for servers and task queues: a
FastAPI app under uvicorn (lifespan), gunicorn workers (post_fork and
worker_exit hooks) and a Celery prefork worker (worker_process_shutdown).
Each is run for real and stopped with SIGTERM; the events must reach the
server through the documented shutdown alone: the flush interval is longer
than the test and the exit flush is off. Every wait has a deadline."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

DEADLINE = 120
REQUESTS = 20

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM, fork")

# What every app below passes to init: nothing is sent before the shutdown.
INIT = """trodo.init("site-py", api_base=os.environ["API"], storage_dir=os.environ["DIR"],
           exit_flush_timeout=0, flush_interval_ms=600000, persist_interval_ms=600000)"""


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def names(server):
    return sorted(e["event_name"] for e in server.events())


def serve(tmp_path, server, app: str, argv, module: str = "app", **env_vars: str):
    """Writes ``app`` as app.py, starts ``argv`` (a server on a free port,
    run from that folder) and waits until it answers; returns (process, port)."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / (module + ".py")).write_text(app)
    port = free_port()
    env = dict(os.environ, API=server.url, DIR=str(tmp_path / "storage"), PYTHONPATH=str(app_dir),
               **env_vars)
    proc = subprocess.Popen(
        [sys.executable, "-m"] + [a.replace("PORT", str(port)) for a in argv],
        cwd=str(app_dir),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    end = time.monotonic() + DEADLINE
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < end, "the server did not start"
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5).read()
            return proc, port
        except OSError:
            time.sleep(0.05)


def stop(proc):
    """SIGTERM, then the process must end on its own, cleanly."""
    try:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=DEADLINE)
        # uvicorn ends by raising the SIGTERM again once it has shut down.
        assert code in (0, -signal.SIGTERM), proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hit(port):
    for i in range(REQUESTS):
        urllib.request.urlopen("http://127.0.0.1:%d/view/%d" % (port, i), timeout=30).read()


FASTAPI_APP = '''
import asyncio
import os
from contextlib import asynccontextmanager

import trodo_native as trodo
from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app):
    ''' + INIT.replace("\n", "\n    ") + '''
    yield
    await asyncio.to_thread(trodo.shutdown, 10.0)


app = FastAPI(lifespan=lifespan)


@app.get("/health")
def health():
    return {}


@app.get("/view/{n}")
def view(n: int):
    trodo.track("view-%d" % n)
    return {}
'''


def test_fastapi_under_uvicorn_shuts_down_in_its_lifespan(server, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    proc, port = serve(tmp_path, server, FASTAPI_APP,
                       ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "PORT"])
    hit(port)
    assert names(server) == [], "nothing is sent before the shutdown"
    stop(proc)
    assert names(server) == sorted("view-%d" % i for i in range(REQUESTS))


WSGI_APP = '''
import os

import trodo_native as trodo


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/view/"):
        trodo.track("view-" + path.rsplit("/", 1)[1])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''

GUNICORN_CONF = '''
import os

import trodo_native as trodo


def post_fork(server, worker):
    ''' + INIT.replace("\n", "\n    ") + '''


def post_worker_init(worker):
    # For the test: a worker told to stop before its signal handlers are set
    # (while booting) misses it, gunicorn's own race; stop only once both run.
    with open(os.environ["READY"], "a") as ready:
        ready.write("%d\\n" % os.getpid())


def worker_exit(server, worker):
    sent = trodo.shutdown(10.0)
    # For the test: which workers shut down here, and whether all was sent.
    with open(os.environ["MARKS"], "a") as marks:
        marks.write("%d %s\\n" % (os.getpid(), sent))
'''


def test_gunicorn_workers_start_in_post_fork_and_shut_down_in_worker_exit(server, tmp_path):
    pytest.importorskip("gunicorn")
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    marks, ready = tmp_path / "marks.txt", tmp_path / "ready.txt"
    proc, port = serve(tmp_path, server, WSGI_APP,
                       ["gunicorn", "--workers", "2", "--bind", "127.0.0.1:PORT",
                        "--config", str(tmp_path / "gunicorn.conf.py"), "app:app"],
                       MARKS=str(marks), READY=str(ready))
    hit(port)
    deadline = time.monotonic() + DEADLINE
    while not (ready.exists() and len(ready.read_text().split()) == 2):
        assert time.monotonic() < deadline, "the workers did not both start"
        time.sleep(0.05)
    assert names(server) == [], "nothing is sent before the shutdown"
    stop(proc)
    assert names(server) == sorted("view-%d" % i for i in range(REQUESTS))
    # Both workers sent everything in worker_exit (the exit hook would too,
    # within its own bound: this checks the hook the README gives).
    lines = marks.read_text().split("\n")
    assert sorted(line.split()[1] for line in lines if line) == ["True", "True"], lines


CELERY_APP = '''
import os

import trodo_native as trodo
from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown

folder = os.environ["BROKER_DIR"]
app = Celery("tasks", broker="filesystem://")
app.conf.update(
    broker_transport_options={"data_folder_in": folder, "data_folder_out": folder,
                              "processed_folder": os.path.join(folder, "processed"),
                              "store_processed": False},
    result_backend=None,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
''' + INIT + '''


@worker_process_shutdown.connect
@worker_shutdown.connect
def stop_trodo(**_):
    trodo.shutdown(10.0)


@app.task
def work(n):
    trodo.track("task-%d" % n)
    fd = os.open(os.environ["ACCEPTED"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"%d\\n" % n)
    os.close(fd)
'''


def test_a_celery_worker_shuts_down_in_worker_process_shutdown(server, tmp_path):
    pytest.importorskip("celery")
    app_dir, broker = tmp_path / "app", tmp_path / "broker"
    for d in (app_dir, broker, broker / "processed"):
        d.mkdir()
    (app_dir / "tasks.py").write_text(CELERY_APP)
    accepted = tmp_path / "accepted.txt"
    env = dict(os.environ, API=server.url, DIR=str(tmp_path / "storage"), BROKER_DIR=str(broker),
               ACCEPTED=str(accepted), PYTHONPATH=str(app_dir))
    sent = subprocess.run(
        [sys.executable, "-c", "from tasks import work\nfor n in range(%d): work.delay(n)" % REQUESTS],
        env=dict(env, DIR=str(tmp_path / "producer-storage")),
        capture_output=True, text=True, timeout=DEADLINE,
    )
    assert sent.returncode == 0, sent.stderr
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork",
         "--concurrency=2", "--loglevel=WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        env=env, cwd=str(app_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    end = time.monotonic() + DEADLINE
    while not accepted.exists() or len(accepted.read_text().split()) < REQUESTS:
        if worker.poll() is not None or time.monotonic() > end:
            worker.kill()
            pytest.fail("the worker did not run every task: " + worker.stderr.read().decode())
        time.sleep(0.02)
    assert names(server) == [], "nothing is sent before the shutdown"
    stop(worker)
    assert names(server) == sorted("task-%d" % i for i in range(REQUESTS))
