"""Persistence across shutdown + init, identify hydration, reset, threads."""

import threading

import pytest

import trodo_native as trodo


def test_memberships_survive_shutdown_and_init(server, start):
    start("p")
    trodo.identify("user-x")
    trodo.add_group("team", "a")
    trodo.set_group("active_team", ["a", "b"])
    trodo.shutdown(10)
    start("p")
    assert trodo.distinct_id() == "user-x"
    assert trodo.get_groups() == {"team": ["a"], "active_team": ["a", "b"]}
    trodo.track("after_restart")
    trodo.flush(10)
    assert server.event("after_restart")["custom_properties"] == {"team": ["a"], "active_team": ["a", "b"]}


def test_identify_hydrates_and_keeps_calls_made_while_in_flight(server, start):
    start("device-1")
    trodo.identify("user-1")
    trodo.add_group("team", "a")
    trodo.add_group("team", "b")
    trodo.shutdown(10)

    server.identify_delay = 0.3
    start("device-2")
    trodo.add_group("team", "local-only")
    trodo.identify("user-1")
    assert trodo.distinct_id() == "user-1"
    trodo.add_group("team", "c")
    trodo.flush(10)
    assert trodo.get_groups() == {"team": ["a", "b", "c"]}


def test_reset_clears_groups_and_identity(server, start):
    start()
    trodo.identify("user-r")
    trodo.add_group("team", "a")
    trodo.reset()
    assert trodo.get_groups() == {}
    assert trodo.distinct_id() != "user-r"
    trodo.flush(10)
    assert server.to_path("/api/sdk/reset")[0]["body"]["userId"] == "user-r"


def test_threads_calling_at_once(server, start):
    start()
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                trodo.track("thread_event", {"t": t, "i": i})
                if i % 25 == 0:
                    trodo.add_group("team", "team-%d" % t)
                    trodo.get_groups()
                    with trodo.get_group("company", "c-%d" % t) as g:
                        g.increment("calls")
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    trodo.flush(30)
    events = server.events()
    assert len(events) == 800
    assert len({e["insert_id"] for e in events}) == 800
    for t in range(8):
        mine = [e["custom_properties"]["i"] for e in events if e["custom_properties"]["t"] == t]
        assert mine == list(range(100))
    assert len(trodo.get_groups()["team"]) == 8


def test_stats_error_callback_and_opt_out(server, start):
    messages = []
    trodo.on_error(messages.append)
    try:
        start("d", max_queue_items=3, flush_interval_ms=600000)
        trodo.track("first")
        trodo.flush(10)
        for i in range(10):
            trodo.track("overflow_%d" % i)
        s = trodo.stats()
        assert set(s) >= {"queued", "queued_bytes", "in_flight", "sent", "dropped",
                          "dropped_by_reason", "paused_until_ms", "corrupt_bytes"}
        assert s["dropped_by_reason"]["queue_full"] == 7
        assert any("queue_full" in m for m in messages)
        trodo.flush(10)
        assert [e["event_name"] for e in server.events()][-3:] == ["overflow_7", "overflow_8", "overflow_9"]

        trodo.set_opt_out(True)
        assert trodo.is_opted_out()
        trodo.track("while_opted_out")
        trodo.shutdown(10)
        start("d")
        assert trodo.is_opted_out()
        trodo.set_opt_out(False)
        trodo.track("back")
        trodo.flush(10)
        names = [e["event_name"] for e in server.events()]
        assert "while_opted_out" not in names and names[-1] == "back"
    finally:
        trodo.on_error(None)


def test_the_typed_dicts_match_what_the_library_takes_and_gives(start, tmp_path):
    # stats(): exactly the keys of Stats and DroppedByReason.
    start()
    s = trodo.stats()
    assert set(s) == set(trodo.Stats.__annotations__)
    assert set(s["dropped_by_reason"]) == set(trodo.DroppedByReason.__annotations__)
    trodo.shutdown(10)
    # init options: exactly the keys the library knows (it lists them when
    # it refuses an unknown one).
    with pytest.raises(trodo.InvalidJsonError) as refused:
        trodo.init("site-py", storage_dir=str(tmp_path / "x"), not_an_option=1)
    known = refused.value.message.split("known keys: ", 1)[1]
    assert set(known.split(", ")) == set(trodo.InitOptions.__annotations__)


def test_the_error_callback_may_replace_itself_from_inside(server, start):
    seen_first, seen_second = [], []

    def first(message):
        seen_first.append(message)
        trodo.on_error(seen_second.append)  # returns at once, no deadlock

    trodo.on_error(first)
    try:
        start("d", max_queue_items=1, flush_interval_ms=600000)
        for i in range(3):
            trodo.track("overflow_%d" % i)
        dropped = trodo.stats()["dropped_by_reason"]["queue_full"]
        assert dropped >= 2
        assert len(seen_first) == 1, "replaced after its first report"
        assert len(seen_second) == dropped - 1, "the new one got every later report"
    finally:
        trodo.on_error(None)
