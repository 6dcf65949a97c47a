"""Finding and declaring the C library. Every function used has its argtypes
and restype declared: no implicit int returns, no truncated pointers."""

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path
from typing import List, Optional

_NAMES = {"darwin": "libtrodo.dylib", "win32": "trodo.dll"}
LIB_NAME = _NAMES.get(sys.platform, "libtrodo.so")
# The copy a wheel carries: built by setuptools-rust, named as an abi3 module.
PACKAGED_NAMES = ["libtrodo.abi3.pyd" if sys.platform == "win32" else "libtrodo.abi3.so", LIB_NAME]


class LibraryNotFoundError(OSError):
    """libtrodo could not be found; the message lists where it looked."""


def candidates(env: Optional[str] = None, here: Optional[Path] = None) -> List[Path]:
    """The files searched, in order: the copy inside the package, then
    TRODO_LIB. Never the current directory or a checkout found from it: a
    script run in a folder someone else controls must not load their code.
    (After these, the system loader is asked: see `find`.)"""
    here = here if here is not None else Path(__file__).resolve().parent
    env = env if env is not None else os.environ.get("TRODO_LIB")
    out: List[Path] = [here / name for name in PACKAGED_NAMES]
    if env:
        out.append(Path(env))
    return out


def find(env: Optional[str] = None, here: Optional[Path] = None) -> Path:
    looked = candidates(env, here)
    for path in looked:
        if path.is_file():
            return path
    # An installed C library (cargo cinstall, a distribution package): the
    # loader's own search path, as for any shared library.
    system = ctypes.util.find_library("trodo")
    if system:
        return Path(system)
    where = "\n  ".join(str(p) for p in looked)
    raise LibraryNotFoundError(
        f"libtrodo ({LIB_NAME}) was not found. Looked in:\n  {where}\n  "
        "the system loader's search path (ctypes.util.find_library('trodo'))\n"
        "Install the package with `pip install ./bindings/python` (it builds the library), "
        "or set TRODO_LIB to the library's path."
    )


c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
status = ctypes.c_int32  # TrodoStatus is int32_t
c_double = ctypes.c_double
c_uint32 = ctypes.c_uint32
c_size_t = ctypes.c_size_t

# void (*TrodoErrorCallback)(const char *message, void *user_data)
ERROR_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)

# void (*TrodoSendFn)(TrodoRequest *request, void *user_data)
SEND_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)

# name: (argtypes, restype). Returned `char *`
# strings are declared c_void_p so the pointer survives to be freed.
SIGNATURES = {
    "trodo_init": ([c_char_p, c_char_p], status),
    "trodo_flush": ([c_uint32], status),
    "trodo_shutdown": ([c_uint32], status),
    "trodo_last_error": ([], c_char_p),
    "trodo_last_error_code": ([], status),
    "trodo_version": ([], c_char_p),
    "trodo_string_free": ([c_void_p], None),
    "trodo_identify": ([c_char_p], status),
    "trodo_reset": ([], status),
    "trodo_get_distinct_id": ([], c_void_p),
    "trodo_track": ([c_char_p, c_char_p], status),
    "trodo_track_with_category": ([c_char_p, c_char_p, c_char_p], status),
    "trodo_set_group": ([c_char_p, c_char_p], status),
    "trodo_set_groups": ([c_char_p, ctypes.POINTER(c_char_p), c_size_t], status),
    "trodo_add_group": ([c_char_p, c_char_p], status),
    "trodo_remove_group": ([c_char_p, c_char_p], status),
    "trodo_get_groups": ([], c_void_p),
    "trodo_get_group": ([c_char_p, c_char_p], c_void_p),
    "trodo_group_set": ([c_void_p, c_char_p], status),
    "trodo_group_set_once": ([c_void_p, c_char_p], status),
    "trodo_group_union": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_group_remove": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_group_append": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_group_increment": ([c_void_p, c_char_p, c_double], status),
    "trodo_group_unset": ([c_void_p, c_char_p], status),
    "trodo_group_delete": ([c_void_p], status),
    "trodo_group_free": ([c_void_p], None),
    "trodo_people_set": ([c_char_p], status),
    "trodo_people_set_once": ([c_char_p], status),
    "trodo_people_unset": ([c_char_p], status),
    "trodo_people_increment": ([c_char_p, c_double], status),
    "trodo_people_append": ([c_char_p, c_char_p], status),
    "trodo_people_union": ([c_char_p, c_char_p], status),
    "trodo_people_remove": ([c_char_p, c_char_p], status),
    "trodo_people_track_charge": ([c_double, c_char_p], status),
    "trodo_people_clear_charges": ([], status),
    "trodo_people_delete_user": ([], status),
    "trodo_user_new": ([c_char_p, c_char_p], c_void_p),
    "trodo_user_free": ([c_void_p], None),
    "trodo_user_track": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_track_with_category": ([c_void_p, c_char_p, c_char_p, c_char_p], status),
    "trodo_user_identify": ([c_void_p, c_char_p], status),
    "trodo_user_set_group": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_set_groups": ([c_void_p, c_char_p, ctypes.POINTER(c_char_p), c_size_t], status),
    "trodo_user_add_group": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_remove_group": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_get_groups": ([c_void_p], c_void_p),
    "trodo_user_get_distinct_id": ([c_void_p], c_void_p),
    "trodo_user_people_set": ([c_void_p, c_char_p], status),
    "trodo_user_people_set_once": ([c_void_p, c_char_p], status),
    "trodo_user_people_unset": ([c_void_p, c_char_p], status),
    "trodo_user_people_increment": ([c_void_p, c_char_p, c_double], status),
    "trodo_user_people_append": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_people_union": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_people_remove": ([c_void_p, c_char_p, c_char_p], status),
    "trodo_user_people_track_charge": ([c_void_p, c_double, c_char_p], status),
    "trodo_user_people_clear_charges": ([c_void_p], status),
    "trodo_user_people_delete_user": ([c_void_p], status),
    "trodo_get_stats": ([], c_void_p),
    "trodo_set_error_callback": ([ERROR_CALLBACK, c_void_p], None),
    "trodo_set_opt_out": ([ctypes.c_bool], status),
    "trodo_is_opted_out": ([], ctypes.c_bool),
    "trodo_get_opt_out": ([ctypes.POINTER(ctypes.c_bool)], status),
    "trodo_set_transport": ([SEND_FN, c_void_p], status),
    "trodo_request_url": ([c_void_p], c_char_p),
    "trodo_request_header_count": ([c_void_p], c_size_t),
    "trodo_request_header_name": ([c_void_p, c_size_t], c_char_p),
    "trodo_request_header_value": ([c_void_p, c_size_t], c_char_p),
    "trodo_request_body": ([c_void_p, ctypes.POINTER(c_size_t)], c_void_p),
    "trodo_request_timeout_ms": ([c_void_p], c_uint32),
    "trodo_request_complete": ([c_void_p, ctypes.c_int32, c_char_p, c_char_p, c_size_t], None),
}

_lib: Optional[ctypes.CDLL] = None


def load() -> ctypes.CDLL:
    """The library, loaded and declared on first use."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(find()))
        for name, (argtypes, restype) in SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = restype
        _lib = lib
    return _lib
