import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trodo_native as trodo  # noqa: E402
from fake_trodo import FakeTrodo  # noqa: E402

SITE = "site-py"


@pytest.fixture
def server():
    s = FakeTrodo()
    yield s
    s.close()


@pytest.fixture
def start(server, tmp_path):
    """Returns a function that inits against the fake server, storing under
    tmp_path/<name>; whatever is still initialized is shut down afterwards."""

    def _start(name: str = "storage", **options):
        options.setdefault("api_base", server.url)
        options.setdefault("storage_dir", str(tmp_path / name))
        options.setdefault("persist_interval_ms", 10)
        trodo.init(SITE, **options)

    yield _start
    try:
        trodo.shutdown(10)
    except trodo.NotInitializedError:
        pass
