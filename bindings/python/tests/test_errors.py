"""Bad input raises the right exception with the library's message, and
values JSON cannot hold are refused before anything reaches C."""

import math
from pathlib import Path

import pytest

import trodo_native as trodo
from trodo_native import _lib


def test_calls_before_init_raise_not_initialized():
    for call in (
        lambda: trodo.track("e"),
        lambda: trodo.add_group("team", "a"),
        lambda: trodo.get_groups(),
        lambda: trodo.distinct_id(),
        lambda: trodo.get_group("company", "acme"),
        lambda: trodo.people.set({"a": 1}),
        lambda: trodo.flush(0),
        lambda: trodo.shutdown(0),
    ):
        with pytest.raises(trodo.NotInitializedError) as e:
            call()
        assert "trodo_init" in e.value.message
        assert e.value.status == 1


def test_init_errors(start, tmp_path):
    with pytest.raises(trodo.InvalidJsonError, match="flush_att"):
        trodo.init("s", flush_att=1)
    with pytest.raises(trodo.InvalidJsonError, match="gzip"):
        trodo.init("s", gzip="yes")
    with pytest.raises(trodo.InvalidArgumentError, match="site_id"):
        trodo.init("")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(trodo.StorageError, match="blocker"):
        trodo.init("s", storage_dir=str(blocker / "sub"))
    start()
    with pytest.raises(trodo.AlreadyInitializedError):
        start()


def test_bad_arguments_raise_and_lose_nothing(server, start):
    start()
    trodo.track("kept_1")
    with pytest.raises(trodo.InvalidArgumentError, match="event_name"):
        trodo.track("")
    with pytest.raises(trodo.InvalidArgumentError, match="group_key"):
        trodo.add_group("k" * 256, "a")
    with pytest.raises(trodo.InvalidArgumentError, match="group_id"):
        trodo.set_group("team", None)  # type: ignore[arg-type]
    with pytest.raises(trodo.InvalidArgumentError, match="group_ids"):
        trodo.set_group("team", [])
    with pytest.raises(trodo.InvalidArgumentError, match=r"group_ids\[1\]"):
        trodo.set_group("team", ["ok", ""])
    with pytest.raises(trodo.InvalidArgumentError, match="UTF-8"):
        trodo.identify("bad\udcff")
    with pytest.raises(trodo.InvalidArgumentError, match="amount"):
        trodo.people.increment("k", math.nan)
    with pytest.raises(trodo.InvalidArgumentError, match="value"):
        trodo.get_group("company", "acme").increment("seats", math.inf)
    with pytest.raises(trodo.InvalidArgumentError, match="group_key"):
        trodo.get_group("k" * 256, "acme")
    trodo.track("kept_2")
    trodo.flush(10)
    assert [e["event_name"] for e in server.events()] == ["kept_1", "kept_2"]
    assert server.to_path("/api/sdk/groups/add_group") == []


def test_values_json_cannot_hold_raise_type_error_naming_the_key(server, start):
    start()
    cases = [
        ({"when": object()}, "when"),
        ({"tags": {1, 2}}, "tags"),
        ({"ratio": math.nan}, "ratio"),
        ({"nested": {"deep": [1, b"bytes"]}}, "deep"),
        ({"inf": [math.inf]}, "inf"),
        ({1: "int key"}, "1"),
    ]
    for props, key in cases:
        with pytest.raises(TypeError, match=key):
            trodo.track("bad", props)
        with pytest.raises(TypeError, match=key):
            trodo.people.set(props)
    with pytest.raises(TypeError, match="properties"):
        trodo.track("bad", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="values"):
        trodo.people.append("k", "abc")  # type: ignore[arg-type]
    trodo.flush(10)
    assert server.events() == [] and server.to_path("/api/sdk/people/set") == []


def test_library_lookup_order_and_error(tmp_path, monkeypatch):
    name = _lib.LIB_NAME
    pkg = tmp_path / "site-packages" / "trodo_native"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(_lib.ctypes.util, "find_library", lambda _name: None)

    with pytest.raises(_lib.LibraryNotFoundError) as e:
        _lib.find(env="", here=pkg)
    message = str(e.value)
    assert str(pkg / name) in message and "pip install ./bindings/python" in message
    assert "system loader" in message

    explicit = tmp_path / "custom.so"
    explicit.write_text("")
    assert _lib.find(env=str(explicit), here=pkg) == explicit
    copied = pkg / name
    copied.write_text("")
    assert _lib.find(env=str(explicit), here=pkg) == copied, "the packaged copy first"
    wheel_built = pkg / _lib.PACKAGED_NAMES[0]
    wheel_built.write_text("")
    assert _lib.find(env=str(explicit), here=pkg) == wheel_built

    monkeypatch.setattr(_lib.ctypes.util, "find_library", lambda _name: "libtrodo.so.0.1")
    empty = tmp_path / "empty-package"
    empty.mkdir()
    assert _lib.find(env="", here=empty) == Path("libtrodo.so.0.1"), "then the system loader"


def test_no_library_is_loaded_from_the_current_directory(tmp_path, monkeypatch):
    # A checkout someone else controls, with a library in it, around the
    # current directory: never looked at.
    planted = tmp_path / "planted"
    (planted / "target" / "debug").mkdir(parents=True)
    (planted / "Cargo.toml").write_text("[package]\n")
    (planted / "target" / "debug" / _lib.LIB_NAME).write_text("")
    (planted / "target" / "release").mkdir()
    (planted / "target" / "release" / _lib.LIB_NAME).write_text("")
    monkeypatch.chdir(planted)
    monkeypatch.setattr(_lib.ctypes.util, "find_library", lambda _name: None)
    looked = _lib.candidates(env="", here=tmp_path / "pkg")
    assert all(planted not in p.parents for p in looked), looked
    with pytest.raises(_lib.LibraryNotFoundError):
        _lib.find(env="", here=tmp_path / "pkg")


def test_every_declared_function_exists_with_a_restype():
    lib = _lib.load()
    header = (Path(__file__).resolve().parents[3] / "include" / "trodo.h").read_text()
    for name, (argtypes, restype) in _lib.SIGNATURES.items():
        assert name + "(" in header, name
        assert getattr(lib, name).argtypes == argtypes
    cargo = (Path(__file__).resolve().parents[3] / "Cargo.toml").read_text()
    crate_version = next(line.split('"')[1] for line in cargo.splitlines() if line.startswith("version ="))
    assert trodo.version() == trodo.__version__ == crate_version


def test_errors_are_also_the_builtin_exceptions_callers_catch(start):
    start()
    with pytest.raises(ValueError):
        trodo.track("")  # InvalidArgumentError
    with pytest.raises(ValueError):
        trodo.set_group("team", "")  # InvalidArgumentError
    assert issubclass(trodo.InvalidJsonError, ValueError)
    assert issubclass(trodo.TrodoTimeoutError, TimeoutError)
    assert issubclass(trodo.TrodoTimeoutError, trodo.TrodoError)


def test_a_nul_in_a_string_is_refused_not_cut_short(start, server):
    start()
    for call in (
        lambda: trodo.track("signed\0up"),
        lambda: trodo.identify("user\0x"),
        lambda: trodo.set_group("team\0", "a"),
    ):
        with pytest.raises(trodo.InvalidArgumentError, match="NUL"):
            call()
    trodo.flush(10)
    assert server.events() == []


def test_blank_ids_are_refused_and_make_no_directory(tmp_path):
    with pytest.raises(ValueError, match="white space"):
        trodo.init("   ", storage_dir=str(tmp_path / "s"))
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_shutdown_at_its_timeout_warns_and_returns_false_keeping_the_queue(tmp_path):
    # The discard port: nothing listens, and no test server is given it.
    dead = "http://127.0.0.1:9"
    trodo.init("site-py", api_base=dead, storage_dir=str(tmp_path / "offline"))
    trodo.track("kept")
    with pytest.warns(RuntimeWarning, match="stays queued"):
        assert trodo.shutdown(0.2) is False
    with pytest.raises(trodo.NotInitializedError):
        trodo.track("after")
