"""Converting Python arguments for the C calls: strings to UTF-8 (a NUL is
refused, not cut short), JSON checked and encoded, seconds to milliseconds."""

import ctypes
import json
import math
from typing import Any, Callable, Mapping, Optional, Sequence

from ._errors import InvalidArgumentError
from ._lib import load

JsonValue = Any
Properties = Mapping[str, JsonValue]


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
