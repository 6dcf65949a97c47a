"""Server mode through Python: ``for_user`` handles, their calls and group
context, session registration, bad input, many threads, and the handle's
life (context manager, close, collection)."""

import gc
import threading

import pytest

import trodo_native as trodo


def test_a_users_calls_carry_its_id_session_and_group_context(server, start):
    start()
    anon = trodo.distinct_id()
    with trodo.for_user("u-1", groups={"active_team": ["team-a"]}) as u:
        assert u.distinct_id == "u-1"
        assert u.get_groups() == {"active_team": ["team-a"]}
        u.track("report_viewed", {"n": 1})
        u.add_group("team", "t1")
        u.set_group("workspace", ["w1", "w2"])
        u.remove_group("team", "t1")
        u.set_group("active_team", "team-b")
        assert u.get_groups() == {"active_team": ["team-b"], "workspace": ["w1", "w2"]}
        u.track("after", category="editor")
        u.identify("u-known")
        assert u.distinct_id == "u-known"
        u.people.set({"plan": "pro"})
        u.people.increment("logins")
        u.people.track_charge(9.5)
    trodo.flush(10)

    sessions = server.to_path("/api/sdk/track")
    assert len(sessions) == 1
    data = sessions[0]["body"]["sessionData"]
    assert data["session_id"] == "server:u-1"
    assert data["is_server_session"] is True and data["device_type"] == "server"
    viewed = server.event("report_viewed")
    assert viewed["user_id"] == "u-1" and viewed["session_id"] == "server:u-1"
    assert viewed["custom_properties"] == {"n": 1, "active_team": ["team-a"]}
    after = server.event("after")
    assert after["event_category"] == "editor"
    assert after["custom_properties"] == {"active_team": ["team-b"], "workspace": ["w1", "w2"]}
    assert server.to_path("/api/sdk/groups/set_group")[0]["body"]["groupId"] == ["w1", "w2"]
    identify = server.to_path("/api/sdk/identify")[0]["body"]
    assert identify["userId"] == "u-1" and identify["identifyId"] == "u-known"
    people = server.to_path("/api/sdk/people/set")[0]["body"]
    assert people["userId"] == "u-known"
    # The process's current user is untouched.
    assert trodo.distinct_id() == anon
    assert trodo.get_groups() == {}


def test_bad_input_raises_and_a_closed_handle_is_refused(server, start):
    with pytest.raises(trodo.NotInitializedError):
        trodo.for_user("early")
    start()
    with pytest.raises(trodo.InvalidArgumentError, match="distinct_id"):
        trodo.for_user("")
    with pytest.raises(trodo.InvalidJsonError, match="groups"):
        trodo.for_user("u", groups={"team": "not-a-list"})
    with pytest.raises(trodo.InvalidArgumentError, match="groups_json"):
        trodo.for_user("u", groups={"team": [""]})
    u = trodo.for_user("u-2")
    with pytest.raises(trodo.InvalidArgumentError, match="event_name"):
        u.track("")
    with pytest.raises(TypeError, match="bad"):
        u.track("e", {"bad": float("nan")})
    with pytest.raises(trodo.InvalidArgumentError, match="amount"):
        u.people.increment("n", float("inf"))
    u.close()
    u.close()  # twice is fine
    with pytest.raises(trodo.InvalidArgumentError, match="user"):
        u.track("after_close")
    trodo.flush(10)
    assert server.requests == []


def test_each_user_is_registered_once_and_collected_handles_are_freed(server, start):
    start()
    for _ in range(3):
        trodo.for_user("same").track("e")  # a new handle each time, collected at once
    gc.collect()
    trodo.flush(10)
    assert len(server.to_path("/api/sdk/track")) == 1
    assert len(server.events()) == 3


def test_threads_acting_for_many_users_lose_nothing(server, start):
    start()
    per_thread, threads = 200, 4
    errors = []

    def work(t):
        try:
            for i in range(per_thread):
                who = f"t{t}u{i}"
                with trodo.for_user(who, groups={"team": [f"team-{who}"]}) as u:
                    u.track("many", {"who": who})
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    trodo.flush(30)
    events = server.events()
    assert len(events) == per_thread * threads
    for e in events:
        who = e["custom_properties"]["who"]
        assert e["user_id"] == who
        assert e["custom_properties"]["team"] == [f"team-{who}"]
    assert len(server.to_path("/api/sdk/track")) == per_thread * threads


def test_opted_out_user_calls_send_nothing(server, start):
    start()
    trodo.set_opt_out(True)
    u = trodo.for_user("u-3", groups={"team": ["a"]})
    u.track("hidden")
    u.add_group("team", "b")
    assert u.get_groups() == {"team": ["a"]}
    trodo.flush(10)
    assert server.requests == []


def test_closing_a_handle_while_another_thread_is_inside_a_call_waits_for_it(server, start, monkeypatch):
    # ctypes releases the GIL during a call: a close on another thread must
    # not free the handle the call is reading. The native call is made slow
    # here (a wrapper that waits inside it) so the close surely lands mid-call.
    start()
    lib = trodo._lib.load()
    real_track, real_free = lib.trodo_user_track_with_category, lib.trodo_user_free
    inside, release = threading.Event(), threading.Event()
    calls_in_progress = []
    freed_while_in_use = []

    def slow_track(*args):
        calls_in_progress.append(1)
        inside.set()
        release.wait(10)
        try:
            return real_track(*args)
        finally:
            calls_in_progress.pop()

    def checked_free(handle):
        freed_while_in_use.append(bool(calls_in_progress))
        return real_free(handle)

    monkeypatch.setattr(lib, "trodo_user_track_with_category", slow_track, raising=False)
    monkeypatch.setattr(lib, "trodo_user_free", checked_free, raising=False)
    u = trodo.for_user("shared")
    caller = threading.Thread(target=u.track, args=("in_flight",))
    caller.start()
    assert inside.wait(10)
    u.close()  # returns at once; the free waits for the call
    assert freed_while_in_use == []
    release.set()
    caller.join(10)
    assert freed_while_in_use == [False], "freed once, after the call returned"
    with pytest.raises(trodo.InvalidArgumentError, match="user"):
        u.track("after_close")
    trodo.flush(10)
    assert [e["event_name"] for e in server.events()] == ["in_flight"]


def test_threads_calling_while_another_closes_never_crash(server, start):
    start()
    for _ in range(20):
        u = trodo.for_user("racy", groups={"team": ["t"]})
        errors = []

        def call():
            for _ in range(200):
                try:
                    u.track("racing")
                    u.get_groups()
                except trodo.InvalidArgumentError:
                    return  # closed: refused, never a crash
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(e)
                    return

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        u.close()
        for t in threads:
            t.join(30)
        assert errors == []
