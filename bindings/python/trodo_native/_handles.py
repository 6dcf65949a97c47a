"""The library's handles: :class:`Group` (a group's profile) and
:class:`User` (server mode), each freed once, never while in use."""

import ctypes
import json
import threading
from typing import Any, Dict, List, Optional, Sequence, TypeVar, Union

from ._convert import JsonValue, Properties, _bytes, _json, _json_array, _json_object, _take_string
from ._errors import _raise
from ._lib import load

_H = TypeVar("_H", bound="_Handle")


class _Handle:
    """A library handle, freed once: by :meth:`close`, on leaving a ``with``
    block, or when the object is collected. Safe to close while other
    threads are inside calls on it: each call holds a use, and the handle is
    freed when the last use ends (ctypes releases the GIL during a call, so
    without this a close could free what a running call reads)."""

    __slots__ = ("_handle", "_uses", "_lock", "_free_when_unused")
    _FREE = ""  # the C function that frees it

    def __init__(self, handle: int) -> None:
        self._handle: Optional[int] = handle
        self._uses = 0
        self._lock = threading.Lock()
        self._free_when_unused: Optional[int] = None

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _call(self, function: str, *args: Any, pointer: bool = False) -> Any:
        """Calls ``function(handle, *args)`` holding a use of the handle and
        raises on failure (a status, or a NULL ``pointer`` result), reading
        the error before a deferred free can replace it; a closed handle is
        passed as NULL, which the library refuses."""
        with self._lock:
            handle = self._handle
            self._uses += 1
        try:
            result = getattr(load(), function)(handle, *args)
            if pointer and not result:
                _raise(load().trodo_last_error_code())
            elif not pointer and result:
                _raise(result)
            return result
        finally:
            with self._lock:
                self._uses -= 1
                free = self._free_when_unused if self._uses == 0 else None
                if free:
                    self._free_when_unused = None
            if free:
                getattr(load(), self._FREE)(free)

    def close(self) -> None:
        """Frees the handle (once every call in progress on it has
        returned); later calls raise InvalidArgumentError. What was sent
        through it is still delivered."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ did not finish
            return
        with lock:
            handle, self._handle = self._handle, None
            if handle and self._uses > 0:
                self._free_when_unused, handle = handle, None
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
        self._call("trodo_group_set", _json_object(properties, "properties"))

    def set_once(self, properties: Properties) -> None:
        """Sets properties the group does not have yet."""
        self._call("trodo_group_set_once", _json_object(properties, "properties"))

    def union(self, list_name: str, values: Sequence[JsonValue]) -> None:
        """Adds values to a list property, skipping ones already there."""
        self._call("trodo_group_union", _bytes(list_name), _json_array(values, "values"))

    def remove(self, list_name: str, value: JsonValue) -> None:
        """Removes one value from a list property."""
        self._call("trodo_group_remove", _bytes(list_name), _json(value, "value"))

    def append(self, property: str, value: JsonValue) -> None:
        """Appends a value to a list property (duplicates allowed)."""
        self._call("trodo_group_append", _bytes(property), _json(value, "value"))

    def increment(self, property: str, value: float = 1) -> None:
        """Adds ``value`` to a numeric property."""
        self._call("trodo_group_increment", _bytes(property), float(value))

    def unset(self, property: str) -> None:
        """Removes one property from the group."""
        self._call("trodo_group_unset", _bytes(property))

    def delete(self) -> None:
        """Deletes the whole group profile."""
        self._call("trodo_group_delete")



class _UserPeople:
    """Profile operations on a :class:`User`'s people profile: ``user.people``."""

    __slots__ = ("_user",)

    def __init__(self, user: "User") -> None:
        self._user = user

    def set(self, properties: Properties) -> None:
        """Sets (overwrites) properties on the user."""
        self._user._call("trodo_user_people_set", _json_object(properties, "properties"))

    def set_once(self, properties: Properties) -> None:
        """Sets properties the user does not have yet."""
        self._user._call("trodo_user_people_set_once", _json_object(properties, "properties"))

    def unset(self, key: str) -> None:
        """Removes one property."""
        self._user._call("trodo_user_people_unset", _bytes(key))

    def increment(self, key: str, amount: float = 1) -> None:
        """Adds ``amount`` to a numeric property."""
        self._user._call("trodo_user_people_increment", _bytes(key), float(amount))

    def append(self, key: str, values: Sequence[JsonValue]) -> None:
        """Appends values to a list property."""
        self._user._call("trodo_user_people_append", _bytes(key), _json_array(values, "values"))

    def union(self, key: str, values: Sequence[JsonValue]) -> None:
        """Adds values to a list property, skipping ones already there."""
        self._user._call("trodo_user_people_union", _bytes(key), _json_array(values, "values"))

    def remove(self, key: str, values: Sequence[JsonValue]) -> None:
        """Removes values from a list property."""
        self._user._call("trodo_user_people_remove", _bytes(key), _json_array(values, "values"))

    def track_charge(self, amount: float, properties: Optional[Properties] = None) -> None:
        """Records a charge."""
        self._user._call(
            "trodo_user_people_track_charge", float(amount), _json_object(properties, "properties"))

    def clear_charges(self) -> None:
        """Clears the user's charges."""
        self._user._call("trodo_user_people_clear_charges")

    def delete_user(self) -> None:
        """Deletes the user's profile."""
        self._user._call("trodo_user_people_delete_user")


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
        return "User(<closed>)" if self._handle is None else f"User({self.distinct_id!r})"

    @property
    def distinct_id(self) -> str:
        """The id requests are made for (after :meth:`identify`, the new one)."""
        return _take_string(self._call("trodo_user_get_distinct_id", pointer=True))  # type: ignore[return-value]

    def track(self, name: str, properties: Optional[Properties] = None, category: Optional[str] = None) -> None:
        """Tracks an event for this user, stamped with its group context."""
        self._call(
            "trodo_user_track_with_category",
            name.encode("utf-8", "surrogatepass") if type(name) is str and "\0" not in name else _bytes(name),
            _json_object(properties, "properties"),
            None if category is None else _bytes(category),
        )

    def identify(self, identify_id: str) -> None:
        """Sends identify for this user; it then goes by ``identify_id``."""
        self._call("trodo_user_identify", _bytes(identify_id))

    def set_group(self, group_key: str, group_id: Union[str, Sequence[str]]) -> None:
        """Makes ``group_id`` (one id or a list) this user's context for ``group_key``."""
        if isinstance(group_id, (list, tuple)):
            ids = (ctypes.c_char_p * len(group_id))(*[_bytes(i) for i in group_id])
            self._call("trodo_user_set_groups", _bytes(group_key), ids, len(group_id))
        else:
            self._call("trodo_user_set_group", _bytes(group_key), _bytes(group_id))

    def add_group(self, group_key: str, group_id: str) -> None:
        """Adds one id to this user's context for ``group_key``."""
        self._call("trodo_user_add_group", _bytes(group_key), _bytes(group_id))

    def remove_group(self, group_key: str, group_id: str) -> None:
        """Removes one id from this user's context for ``group_key``."""
        self._call("trodo_user_remove_group", _bytes(group_key), _bytes(group_id))

    def get_groups(self) -> Dict[str, List[str]]:
        """This user's group context: group key -> ids."""
        return json.loads(_take_string(self._call("trodo_user_get_groups", pointer=True)))  # type: ignore[arg-type]
