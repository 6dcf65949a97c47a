"""The exceptions every call raises: one per C status code."""

from typing import Optional

from ._lib import load


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
