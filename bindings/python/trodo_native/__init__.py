"""trodo_native: the Python binding for libtrodo, the native Trodo analytics SDK.

A thin ctypes layer: every call goes to the C library, which owns all the
behaviour (local state, group attribution, delivery). Failures raise a
:class:`TrodoError` subclass carrying the library's message.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import math
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._convert import JsonValue, Properties, _bytes, _json, _json_array, _json_object, _ms, _take_string
from ._errors import (
    AlreadyInitializedError, InternalError, InvalidArgumentError, InvalidJsonError,
    NotInitializedError, StorageError, TrodoError, TrodoTimeoutError, _check, _raise,
)
from ._handles import Group, User
from ._lib import ERROR_CALLBACK, SEND_FN, LibraryNotFoundError, load
from ._types import DroppedByReason, InitOptions, Stats
from ._version import __version__

if TYPE_CHECKING:  # only type checkers read it; Python 3.8 has no Unpack
    from typing_extensions import Unpack

__all__ = [
    "__version__", "init", "flush", "shutdown", "version",
    "identify", "reset", "distinct_id", "track",
    "set_group", "add_group", "remove_group", "get_groups", "get_group", "Group",
    "people", "for_user", "User", "stats", "set_opt_out", "is_opted_out", "on_error",
    "TrodoError", "NotInitializedError", "AlreadyInitializedError", "InvalidArgumentError",
    "InvalidJsonError", "StorageError", "TrodoTimeoutError", "InternalError", "LibraryNotFoundError",
    "InitOptions", "Stats", "DroppedByReason",
]


# Lifecycle -------------------------------------------------------------------

_exit_flush_timeout = 2.0
_exit_hooks_installed = False


def init(
    site_id: str,
    exit_flush_timeout: float = 2.0,
    transport: Optional[Transport] = None,
    **options: Unpack[InitOptions],
) -> None:
    """Starts the client. ``options`` are the C API's option keys, e.g.
    ``api_base``, ``storage_dir``, ``timeout_ms``, ``durability``, ``debug``.

    At interpreter exit (and when a ``multiprocessing`` worker started by
    fork ends) what was tracked is sent for at most ``exit_flush_timeout``
    seconds, then the client shuts down; what is left stays on disk for the
    next run or another live process on the same storage directory. ``0``
    sends nothing at exit (everything is still kept on disk).

    ``transport``, when given, sends every request in place of the built-in
    HTTP client: ``transport(url, headers, body, timeout_s)`` POSTs ``body``
    (bytes) and returns ``(status, retry_after, response_body)``, status 0
    when no response came. It runs on libtrodo's delivery thread (holding
    the GIL only while it runs); libtrodo keeps the queue, retries and
    backoff. An exception it raises counts as no response."""
    global _exit_flush_timeout
    if not isinstance(exit_flush_timeout, (int, float)) or not 0 <= exit_flush_timeout < math.inf:
        raise ValueError(f"exit_flush_timeout must be a number of seconds >= 0, got {exit_flush_timeout!r}")
    if transport is not None and not callable(transport):
        raise TypeError(f"transport must be callable, got {transport!r}")
    opts = _json(options, "options") if options else None
    lib = load()
    # Before init, and for every init: none restores the built-in client.
    send = _send_through(transport) if transport is not None else SEND_FN()
    _check(lib.trodo_set_transport(send, None))
    if transport is not None:
        # Kept for the life of the process: a client left stopping by a timed
        # out shutdown may still call it.
        _transports.append(send)
    _check(lib.trodo_init(_bytes(site_id), opts))
    _exit_flush_timeout = float(exit_flush_timeout)
    _install_exit_hooks()


Transport = Callable[[str, Dict[str, str], bytes, float], Tuple[int, Optional[str], bytes]]
_transports: List[Any] = []


def _send_through(transport: Transport) -> Any:
    """The C send function for ``transport``: reads the request, calls it,
    and completes the request with what it returned (at once, on the
    delivery thread)."""

    def send(request: int, _user_data: Optional[int]) -> None:
        lib = load()
        status, retry_after, body = 0, None, b""
        try:
            url = lib.trodo_request_url(request).decode("utf-8")
            headers = {
                lib.trodo_request_header_name(request, i).decode("utf-8"):
                    lib.trodo_request_header_value(request, i).decode("utf-8")
                for i in range(lib.trodo_request_header_count(request))
            }
            length = ctypes.c_size_t()
            data = ctypes.string_at(lib.trodo_request_body(request, ctypes.byref(length)), length.value)
            timeout = lib.trodo_request_timeout_ms(request) / 1000.0
            status, retry_after, body = transport(url, headers, data, timeout)
            body = bytes(body or b"")
        except Exception as e:  # must not unwind into C: no response
            warnings.warn("trodo_native transport raised %r; counted as no response" % (e,), RuntimeWarning)
            status, retry_after, body = 0, None, b""
        lib.trodo_request_complete(
            request, int(status), None if retry_after is None else str(retry_after).encode("ascii", "replace"),
            body, len(body))

    return SEND_FN(send)


def _at_exit() -> None:
    """Sends for at most exit_flush_timeout, then shuts down. The error
    callback is detached first: a native thread must not call into an
    interpreter that is finalizing. Never raises."""
    lib = load()
    lib.trodo_set_error_callback(ERROR_CALLBACK(), None)
    if _exit_flush_timeout > 0:
        lib.trodo_flush(_ms(_exit_flush_timeout))
    lib.trodo_shutdown(0)


class _ForkedWorkerHook:
    """multiprocessing calls this in each worker it starts by fork. Such a
    worker ends with os._exit, which skips atexit, so the exit flush is
    registered as one of multiprocessing's own exit finalizers instead."""

    def __call__(self, _obj: object) -> None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, _at_exit, exitpriority=10)


_FORKED_WORKER_HOOK = _ForkedWorkerHook()


def _install_exit_hooks() -> None:
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(_at_exit)
    import multiprocessing.util

    multiprocessing.util.register_after_fork(_FORKED_WORKER_HOOK, _FORKED_WORKER_HOOK)


def flush(timeout: float = 10.0) -> None:
    """Waits up to ``timeout`` seconds until everything accepted so far is sent."""
    _check(load().trodo_flush(_ms(timeout)))


def shutdown(timeout: float = 10.0) -> bool:
    """Flushes for at most ``timeout`` seconds, then stops. Returns True when
    everything was sent; False (with a warning) when the flush did not finish
    in time: nothing is lost, what is queued stays on disk and the next start
    (or another process on the directory) sends it."""
    status = load().trodo_shutdown(_ms(timeout))
    if status == TrodoTimeoutError.status:
        warnings.warn(
            "trodo_native.shutdown: not everything was sent within %ss; it stays queued "
            "on disk and is sent by the next start" % timeout,
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    _check(status)
    return True


def version() -> str:
    """The library's version."""
    return load().trodo_version().decode("ascii")


# Delivery, privacy and diagnostics -------------------------------------------

def stats() -> Stats:
    """Delivery counts (see :class:`Stats`): queued, queued_bytes,
    queued_memory_bytes, in_flight, sent, dropped, dropped_by_reason,
    paused_until_ms, corrupt_bytes, memory_only_bytes, worker_panics."""
    lib = load()
    text = _take_string(lib.trodo_get_stats())
    if text is None:
        _raise(lib.trodo_last_error_code())
    return json.loads(text)  # type: ignore[arg-type]


def set_opt_out(opted_out: bool) -> None:
    """Turns opt-out on (discarding what is queued) or off; survives restarts."""
    _check(load().trodo_set_opt_out(bool(opted_out)))


def is_opted_out() -> bool:
    """Whether opt-out is on (False when not initialized)."""
    return bool(load().trodo_is_opted_out())


_callback_lock = threading.Lock()
_callback_ref: Optional[Any] = None  # keeps the C thunk alive while registered
_retired: List[Any] = []  # thunks replaced from inside themselves, still running
_in_callback = threading.local()


def _after_fork_in_child() -> None:
    # Another thread may have held it at the fork; that thread is gone.
    global _callback_lock
    _callback_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def on_error(callback: Optional[Callable[[str], None]]) -> None:
    """Calls ``callback(message)`` whenever data is dropped or a request fails
    for good (on libtrodo's delivery thread). ``None`` turns it off. The
    callback must not call back into trodo_native."""
    global _callback_ref

    def thunk(message: Optional[bytes], _user_data: Optional[int]) -> None:
        _in_callback.active = True
        try:
            callback((message or b"").decode("utf-8", "replace"))  # type: ignore[misc]
        except Exception:  # an exception must not unwind into C
            pass
        finally:
            _in_callback.active = False

    ref = ERROR_CALLBACK(thunk) if callback is not None else ERROR_CALLBACK()
    if getattr(_in_callback, "active", False):
        # From inside the callback: the library returns at once and the old
        # callback finishes its report, so its thunk (running now) is kept.
        _retired.append(_callback_ref)
        load().trodo_set_error_callback(ref, None)
        _callback_ref = ref
        return
    with _callback_lock:
        # When the setter returns, the old callback is not running and will
        # not run again: only then may its thunk be released.
        load().trodo_set_error_callback(ref, None)
        _callback_ref = ref
        del _retired[:]


# Identity and events -----------------------------------------------------------

def identify(identify_id: str) -> None:
    """Links the current user to ``identify_id``; memberships are hydrated
    from the server's answer."""
    _check(load().trodo_identify(_bytes(identify_id)))


def reset() -> None:
    """New anonymous id, new session, no groups."""
    _check(load().trodo_reset())


def distinct_id() -> str:
    """The current distinct id."""
    lib = load()
    value = _take_string(lib.trodo_get_distinct_id())
    if value is None:
        _raise(lib.trodo_last_error_code())
    return value  # type: ignore[return-value]


def track(name: str, properties: Optional[Properties] = None, category: Optional[str] = None) -> None:
    """Tracks an event, stamped with the current group memberships."""
    # The hot path: helpers inlined (each Python call costs ~0.1 µs here).
    status = load().trodo_track_with_category(
        name.encode("utf-8", "surrogatepass") if type(name) is str and "\0" not in name else _bytes(name),
        _json_object(properties, "properties"),
        None if category is None else _bytes(category),
    )
    if status:
        _raise(status)


# Groups ------------------------------------------------------------------------

def set_group(group_key: str, group_id: Union[str, Sequence[str]]) -> None:
    """Makes ``group_id`` (one id or a list) the active context for ``group_key``."""
    lib = load()
    if isinstance(group_id, (list, tuple)):
        ids = (ctypes.c_char_p * len(group_id))(*[_bytes(i) for i in group_id])
        _check(lib.trodo_set_groups(_bytes(group_key), ids, len(group_id)))
    else:
        _check(lib.trodo_set_group(_bytes(group_key), _bytes(group_id)))


def add_group(group_key: str, group_id: str) -> None:
    """Adds one id to the user's memberships for ``group_key``."""
    _check(load().trodo_add_group(_bytes(group_key), _bytes(group_id)))


def remove_group(group_key: str, group_id: str) -> None:
    """Removes one id from the user's memberships for ``group_key``."""
    _check(load().trodo_remove_group(_bytes(group_key), _bytes(group_id)))


def get_groups() -> Dict[str, List[str]]:
    """The current memberships: group key -> ids."""
    lib = load()
    text = _take_string(lib.trodo_get_groups())
    if text is None:
        _raise(lib.trodo_last_error_code())
    return json.loads(text)  # type: ignore[arg-type]


def get_group(group_key: Optional[str], group_id: Optional[str]) -> Optional[Group]:
    """A :class:`Group` for profile operations, or None when the key or id is
    missing (None or empty), as Trodo's documentation says."""
    if not group_key or not group_id:
        return None
    lib = load()
    handle = lib.trodo_get_group(_bytes(group_key), _bytes(group_id))
    if not handle:
        _raise(lib.trodo_last_error_code())
    return Group(handle, group_key, group_id)


# People ------------------------------------------------------------------------

class _People:
    """Profile operations on the current user: ``trodo_native.people``."""

    def set(self, properties: Properties) -> None:
        """Sets (overwrites) properties on the user."""
        _check(load().trodo_people_set(_json_object(properties, "properties")))

    def set_once(self, properties: Properties) -> None:
        """Sets properties the user does not have yet."""
        _check(load().trodo_people_set_once(_json_object(properties, "properties")))

    def unset(self, key: str) -> None:
        """Removes one property."""
        _check(load().trodo_people_unset(_bytes(key)))

    def increment(self, key: str, amount: float = 1) -> None:
        """Adds ``amount`` to a numeric property."""
        _check(load().trodo_people_increment(_bytes(key), float(amount)))

    def append(self, key: str, values: Sequence[JsonValue]) -> None:
        """Appends values to a list property."""
        _check(load().trodo_people_append(_bytes(key), _json_array(values, "values")))

    def union(self, key: str, values: Sequence[JsonValue]) -> None:
        """Adds values to a list property, skipping ones already there."""
        _check(load().trodo_people_union(_bytes(key), _json_array(values, "values")))

    def remove(self, key: str, values: Sequence[JsonValue]) -> None:
        """Removes values from a list property."""
        _check(load().trodo_people_remove(_bytes(key), _json_array(values, "values")))

    def track_charge(self, amount: float, properties: Optional[Properties] = None) -> None:
        """Records a charge."""
        _check(load().trodo_people_track_charge(float(amount), _json_object(properties, "properties")))

    def clear_charges(self) -> None:
        """Clears the user's charges."""
        _check(load().trodo_people_clear_charges())

    def delete_user(self) -> None:
        """Deletes the user's profile."""
        _check(load().trodo_people_delete_user())


people = _People()
"""People operations on the current user."""


# Server mode -------------------------------------------------------------------

def for_user(distinct_id: str, groups: Optional[Mapping[str, Sequence[str]]] = None) -> User:
    """A :class:`User` for calls on behalf of ``distinct_id`` (server mode).
    ``groups`` is the group context its events are stamped with, e.g.
    ``{"active_team": ["team-a"]}``; it is not sent to the server."""
    lib = load()
    handle = lib.trodo_user_new(_bytes(distinct_id), _json_object(groups, "groups"))
    if not handle:
        _raise(lib.trodo_last_error_code())
    return User(handle)
