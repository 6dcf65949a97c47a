"""Typed shapes of what crosses the API as dicts: the options of
:func:`trodo_native.init` and what :func:`trodo_native.stats` returns."""

from typing import Literal, TypedDict


class InitOptions(TypedDict, total=False):
    """The options of ``init(site_id, **options)``: the C API's option keys.
    An unknown key, or a value of the wrong type, raises InvalidJsonError."""

    api_base: str
    storage_dir: str
    app_group_dir: str
    flush_at: int
    flush_interval_ms: int
    timeout_ms: int
    max_queue_items: int
    max_queue_bytes: int
    durability: Literal["batched", "sync"]
    persist_interval_ms: int
    gzip: bool
    app_version: str
    ca_file: str
    proxy: str
    debug: bool
    user_lanes: int


class DroppedByReason(TypedDict):
    rejected: int
    too_large: int
    gave_up: int
    queue_full: int
    opted_out: int
    unreadable: int


class Stats(TypedDict):
    """Delivery counts (items, not requests) since start, and what is queued now."""

    queued: int
    queued_bytes: int
    queued_memory_bytes: int
    in_flight: int
    sent: int
    dropped: int
    dropped_by_reason: DroppedByReason
    paused_until_ms: int
    corrupt_bytes: int
    memory_only_bytes: int
    worker_panics: int
