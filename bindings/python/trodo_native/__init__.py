"""trodo_native: the Python binding for libtrodo, the native Trodo analytics SDK.

A thin ctypes layer: every call goes to the C library, which owns all the
behaviour (local state, group attribution, delivery). Failures raise a
:class:`TrodoError` subclass carrying the library's message.
"""

import atexit
import ctypes
import json
import math
import os
import threading
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union

from ._lib import ERROR_CALLBACK, LibraryNotFoundError, load
from ._version import __version__

__all__ = [
    "__version__", "init", "flush", "shutdown", "version",
    "identify", "reset", "distinct_id", "track",
    "set_group", "add_group", "remove_group", "get_groups", "get_group", "Group",
    "people", "for_user", "User", "stats", "set_opt_out", "is_opted_out", "on_error",
    "TrodoError", "NotInitializedError", "AlreadyInitializedError", "InvalidArgumentError",
    "InvalidJsonError", "StorageError", "TrodoTimeoutError", "InternalError", "LibraryNotFoundError",
]

JsonValue = Any
_H = TypeVar("_H", bound="_Handle")
Properties = Mapping[str, JsonValue]


class TrodoError(Exception):
    """A libtrodo call failed. ``status`` is the C status code, ``message`` the
    library's description (from ``trodo_last_error``)."""

    status = -1

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotInitializedError(TrodoError):
    """Called before :func:`init` or after :func:`shutdown`."""

    status = 1


class AlreadyInitializedError(TrodoError):
    """:func:`init` called twice without :func:`shutdown`."""

    status = 2


class InvalidArgumentError(TrodoError, ValueError):
    """A missing, empty, blank, non-UTF-8 or over-long string, a string with a
    NUL character, or a non-finite number. Also a ``ValueError``."""

    status = 3


class InvalidJsonError(TrodoError, ValueError):
    """JSON of the wrong shape, e.g. options with an unknown key. Also a
    ``ValueError``."""

    status = 4


class StorageError(TrodoError):
    """The storage directory cannot be used."""

    status = 5


class TrodoTimeoutError(TrodoError, TimeoutError):
    """flush did not finish in time. Also a ``TimeoutError``."""

    status = 6


class InternalError(TrodoError):
    """A bug inside libtrodo; the library keeps working."""

    status = 99


_ERRORS = {cls.status: cls for cls in (
    NotInitializedError, AlreadyInitializedError, InvalidArgumentError,
    InvalidJsonError, StorageError, TrodoTimeoutError, InternalError,
)}


def _raise(status: int) -> None:
    message = (load().trodo_last_error() or b"").decode("utf-8", "replace")
    raise _ERRORS.get(status, TrodoError)(message, status)


def _check(status: int) -> None:
    if status != 0:
        _raise(status)


def _bytes(s: Optional[str]) -> Optional[bytes]:
    # Lone surrogates pass through as the (invalid) bytes they stand for, so
    # the library, not Python, reports the bad string.
    if s is None:
        return None
    if "\0" in s:
        # C would see the string end there: refused, not silently cut short.
        raise InvalidArgumentError("a string argument contains a NUL character: %r" % s)
    return s.encode("utf-8", "surrogatepass")


def _take_string(ptr: Optional[int]) -> Optional[str]:
    """Copies and frees a string returned by the library."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        load().trodo_string_free(ptr)


def _check_json(value: Any, path: str) -> None:
    """Raises TypeError naming the key when JSON cannot hold ``value``."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: {value!r} cannot be represented in JSON")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{path}: key {k!r} is not a string")
            _check_json(v, f"{path}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not JSON-serializable")


def _make_encoder() -> Callable[[Any], str]:
    """Compact JSON text. CPython's C encoder is built once here and called
    directly: JSONEncoder.encode builds a new one on every call, which is
    half its cost for a small dict."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
    # markers=None (no cycle check: a cycle ends in RecursionError, caught
    # below), default=None (an unknown type raises TypeError), no indent,
    # unsorted keys, skipkeys=False, allow_nan=False.
    encode = make(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_ENCODE = _make_encoder()
_STR_ONLY = frozenset((str,))


def _json(value: Any, what: str) -> bytes:
    # The fast path encodes directly; only a failure walks the value to name
    # the key at fault. Object keys must be strings at the top level (the
    # encoder itself would silently stringify them).
    is_mapping = type(value) is dict or isinstance(value, Mapping)
    if is_mapping and not _STR_ONLY.issuperset(map(type, value)):
        _check_json(value, what)
    try:
        return _ENCODE(value).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        _check_json(value, what)
        raise TypeError(f"{what} cannot be represented in JSON") from None


def _json_object(props: Optional[Properties], what: str) -> Optional[bytes]:
    # A plain dict is nearly every call: no Mapping check, no copy.
    if type(props) is dict:
        return _json(props, what)
    if props is None:
        return None
    if not isinstance(props, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(props).__name__}")
    return _json(dict(props), what)


def _json_array(values: Sequence[JsonValue], what: str) -> bytes:
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{what} must be a list, got {type(values).__name__}")
    return _json(list(values), what)


def _ms(seconds: float) -> int:
    return max(0, min(int(seconds * 1000), 0xFFFFFFFF))


# Lifecycle -------------------------------------------------------------------

_exit_flush_timeout = 2.0
_exit_hooks_installed = False


def init(site_id: str, exit_flush_timeout: float = 2.0, **options: Any) -> None:
    """Starts the client. ``options`` are the C API's option keys, e.g.
    ``api_base``, ``storage_dir``, ``timeout_ms``, ``durability``, ``debug``.

    At interpreter exit (and when a ``multiprocessing`` worker started by
    fork ends) what was tracked is sent for at most ``exit_flush_timeout``
    seconds, then the client shuts down; what is left stays on disk for the
    next run or another live process on the same storage directory. ``0``
    sends nothing at exit (everything is still kept on disk)."""
    global _exit_flush_timeout
    if not isinstance(exit_flush_timeout, (int, float)) or not 0 <= exit_flush_timeout < math.inf:
        raise ValueError(f"exit_flush_timeout must be a number of seconds >= 0, got {exit_flush_timeout!r}")
    opts = _json(options, "options") if options else None
    _check(load().trodo_init(_bytes(site_id), opts))
    _exit_flush_timeout = float(exit_flush_timeout)
    _install_exit_hooks()


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

def stats() -> Dict[str, Any]:
    """Delivery counts: queued, queued_bytes, queued_memory_bytes, in_flight,
    sent, dropped, dropped_by_reason, paused_until_ms, corrupt_bytes."""
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
        try:
            callback((message or b"").decode("utf-8", "replace"))  # type: ignore[misc]
        except Exception:  # an exception must not unwind into C
            pass

    with _callback_lock:
        if callback is None:
            load().trodo_set_error_callback(ERROR_CALLBACK(), None)
            _callback_ref = None
        else:
            ref = ERROR_CALLBACK(thunk)
            load().trodo_set_error_callback(ref, None)
            _callback_ref = ref


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


class _Handle:
    """A library handle, freed once: by :meth:`close`, on leaving a ``with``
    block, or when the object is collected."""

    __slots__ = ("_handle",)
    _FREE = ""  # the C function that frees it

    def __init__(self, handle: int) -> None:
        self._handle: Optional[int] = handle

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Frees the handle; later calls raise InvalidArgumentError. What was
        sent through it is still delivered."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            getattr(load(), self._FREE)(handle)


class Group(_Handle):
    """Profile operations on one group; get one from :func:`get_group`. The
    handle is freed when the object is collected, closed, or leaves a
    ``with`` block. It has no effect on event attribution."""

    _FREE = "trodo_group_free"

    def __init__(self, handle: int, group_key: str, group_id: str) -> None:
        super().__init__(handle)
        self.group_key = group_key
        self.group_id = group_id

    def __repr__(self) -> str:
        return f"Group({self.group_key!r}, {self.group_id!r})"

    def set(self, properties: Properties) -> None:
        """Sets (overwrites) properties on the group."""
        _check(load().trodo_group_set(self._handle, _json_object(properties, "properties")))

    def set_once(self, properties: Properties) -> None:
        """Sets properties the group does not have yet."""
        _check(load().trodo_group_set_once(self._handle, _json_object(properties, "properties")))

    def union(self, list_name: str, values: Sequence[JsonValue]) -> None:
        """Adds values to a list property, skipping ones already there."""
        _check(load().trodo_group_union(self._handle, _bytes(list_name), _json_array(values, "values")))

    def remove(self, list_name: str, value: JsonValue) -> None:
        """Removes one value from a list property."""
        _check(load().trodo_group_remove(self._handle, _bytes(list_name), _json(value, "value")))

    def append(self, property: str, value: JsonValue) -> None:
        """Appends a value to a list property (duplicates allowed)."""
        _check(load().trodo_group_append(self._handle, _bytes(property), _json(value, "value")))

    def increment(self, property: str, value: float = 1) -> None:
        """Adds ``value`` to a numeric property."""
        _check(load().trodo_group_increment(self._handle, _bytes(property), float(value)))

    def unset(self, property: str) -> None:
        """Removes one property from the group."""
        _check(load().trodo_group_unset(self._handle, _bytes(property)))

    def delete(self) -> None:
        """Deletes the whole group profile."""
        _check(load().trodo_group_delete(self._handle))


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

class _UserPeople:
    """Profile operations on a :class:`User`'s people profile: ``user.people``."""

    __slots__ = ("_user",)

    def __init__(self, user: "User") -> None:
        self._user = user

    def set(self, properties: Properties) -> None:
        """Sets (overwrites) properties on the user."""
        _check(load().trodo_user_people_set(self._user._handle, _json_object(properties, "properties")))

    def set_once(self, properties: Properties) -> None:
        """Sets properties the user does not have yet."""
        _check(load().trodo_user_people_set_once(self._user._handle, _json_object(properties, "properties")))

    def unset(self, key: str) -> None:
        """Removes one property."""
        _check(load().trodo_user_people_unset(self._user._handle, _bytes(key)))

    def increment(self, key: str, amount: float = 1) -> None:
        """Adds ``amount`` to a numeric property."""
        _check(load().trodo_user_people_increment(self._user._handle, _bytes(key), float(amount)))

    def append(self, key: str, values: Sequence[JsonValue]) -> None:
        """Appends values to a list property."""
        _check(load().trodo_user_people_append(self._user._handle, _bytes(key), _json_array(values, "values")))

    def union(self, key: str, values: Sequence[JsonValue]) -> None:
        """Adds values to a list property, skipping ones already there."""
        _check(load().trodo_user_people_union(self._user._handle, _bytes(key), _json_array(values, "values")))

    def remove(self, key: str, values: Sequence[JsonValue]) -> None:
        """Removes values from a list property."""
        _check(load().trodo_user_people_remove(self._user._handle, _bytes(key), _json_array(values, "values")))

    def track_charge(self, amount: float, properties: Optional[Properties] = None) -> None:
        """Records a charge."""
        _check(load().trodo_user_people_track_charge(
            self._user._handle, float(amount), _json_object(properties, "properties")))

    def clear_charges(self) -> None:
        """Clears the user's charges."""
        _check(load().trodo_user_people_clear_charges(self._user._handle))

    def delete_user(self) -> None:
        """Deletes the user's profile."""
        _check(load().trodo_user_people_delete_user(self._user._handle))


class User(_Handle):
    """Calls on behalf of one user, for servers acting for many users at
    once; get one from :func:`for_user`. It never changes the process's
    current user. Events tracked through it carry its group context. The
    handle is freed when the object is collected, closed, or leaves a
    ``with`` block; it may be shared between threads."""

    __slots__ = ()
    _FREE = "trodo_user_free"

    @property
    def people(self) -> _UserPeople:
        """People operations on this user's profile."""
        # Made on use, not kept: a User that pointed at its _UserPeople and
        # back would be freed only by the cycle collector, not when dropped.
        return _UserPeople(self)

    def __repr__(self) -> str:
        return f"User({self.distinct_id!r})" if self._handle else "User(<closed>)"

    @property
    def distinct_id(self) -> str:
        """The id requests are made for (after :meth:`identify`, the new one)."""
        lib = load()
        value = _take_string(lib.trodo_user_get_distinct_id(self._handle))
        if value is None:
            _raise(lib.trodo_last_error_code())
        return value  # type: ignore[return-value]

    def track(self, name: str, properties: Optional[Properties] = None, category: Optional[str] = None) -> None:
        """Tracks an event for this user, stamped with its group context."""
        status = load().trodo_user_track_with_category(
            self._handle,
            name.encode("utf-8", "surrogatepass") if type(name) is str and "\0" not in name else _bytes(name),
            _json_object(properties, "properties"),
            None if category is None else _bytes(category),
        )
        if status:
            _raise(status)

    def identify(self, identify_id: str) -> None:
        """Sends identify for this user; it then goes by ``identify_id``."""
        _check(load().trodo_user_identify(self._handle, _bytes(identify_id)))

    def set_group(self, group_key: str, group_id: Union[str, Sequence[str]]) -> None:
        """Makes ``group_id`` (one id or a list) this user's context for ``group_key``."""
        lib = load()
        if isinstance(group_id, (list, tuple)):
            ids = (ctypes.c_char_p * len(group_id))(*[_bytes(i) for i in group_id])
            _check(lib.trodo_user_set_groups(self._handle, _bytes(group_key), ids, len(group_id)))
        else:
            _check(lib.trodo_user_set_group(self._handle, _bytes(group_key), _bytes(group_id)))

    def add_group(self, group_key: str, group_id: str) -> None:
        """Adds one id to this user's context for ``group_key``."""
        _check(load().trodo_user_add_group(self._handle, _bytes(group_key), _bytes(group_id)))

    def remove_group(self, group_key: str, group_id: str) -> None:
        """Removes one id from this user's context for ``group_key``."""
        _check(load().trodo_user_remove_group(self._handle, _bytes(group_key), _bytes(group_id)))

    def get_groups(self) -> Dict[str, List[str]]:
        """This user's group context: group key -> ids."""
        lib = load()
        text = _take_string(lib.trodo_user_get_groups(self._handle))
        if text is None:
            _raise(lib.trodo_last_error_code())
        return json.loads(text)  # type: ignore[arg-type]


def for_user(distinct_id: str, groups: Optional[Mapping[str, Sequence[str]]] = None) -> User:
    """A :class:`User` for calls on behalf of ``distinct_id`` (server mode).
    ``groups`` is the group context its events are stamped with, e.g.
    ``{"active_team": ["team-a"]}``; it is not sent to the server."""
    lib = load()
    handle = lib.trodo_user_new(_bytes(distinct_id), _json_object(groups, "groups"))
    if not handle:
        _raise(lib.trodo_last_error_code())
    return User(handle)
