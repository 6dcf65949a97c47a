"""The seed's scenarios through Python: multi-team pattern, get_group, every
profile and people operation's wire body."""

import trodo_native as trodo
from conftest import SITE


def test_multi_team_pattern_stamps_events_from_the_switch_on(server, start):
    start()
    trodo.track("opened_app")
    trodo.add_group("team", "team-a")
    trodo.add_group("team", "team-b")
    trodo.set_group("active_team", "team-a")
    trodo.track("worked_in_a", {"doc": "d1"})
    trodo.set_group("active_team", "team-b")
    trodo.track("worked_in_b", category="editor")
    assert trodo.get_groups() == {"team": ["team-a", "team-b"], "active_team": ["team-b"]}
    trodo.flush(10)

    assert server.event("opened_app")["custom_properties"] == {}
    assert server.event("worked_in_a")["custom_properties"] == {
        "doc": "d1", "team": ["team-a", "team-b"], "active_team": ["team-a"]}
    b = server.event("worked_in_b")
    assert b["custom_properties"] == {"team": ["team-a", "team-b"], "active_team": ["team-b"]}
    assert b["event_category"] == "editor"
    sets = server.to_path("/api/sdk/groups/set_group")
    assert [r["body"]["groupId"] for r in sets] == ["team-a", "team-b"]
    assert sets[0]["headers"]["x-trodo-site-id"] == SITE


def test_set_group_takes_a_list_and_remove_clears(server, start):
    start()
    trodo.set_group("company", ["acme", "globex"])
    trodo.remove_group("company", "acme")
    assert trodo.get_groups() == {"company": ["globex"]}
    trodo.remove_group("company", "globex")
    assert trodo.get_groups() == {}
    trodo.flush(10)
    assert server.to_path("/api/sdk/groups/set_group")[0]["body"]["groupId"] == ["acme", "globex"]


def test_get_group_is_none_when_key_or_id_is_missing(start):
    start()
    assert trodo.get_group(None, "acme") is None
    assert trodo.get_group("company", None) is None
    assert trodo.get_group("", "acme") is None
    assert trodo.get_group("company", "") is None
    g = trodo.get_group("company", "acme")
    assert isinstance(g, trodo.Group)
    g.close()


def test_every_profile_operation_sends_its_documented_body(server, start):
    start()
    trodo.identify("user-p")
    with trodo.get_group("company", "acme") as g:
        g.set({"plan": "pro"})
        g.set_once({"founded": 1999})
        g.union("tags", ["b2b", 2])
        g.remove("tags", "old")
        g.append("events", {"x": 1})
        g.increment("seats", 3)
        g.increment("logins")
        g.unset("legacy")
        g.delete()
    trodo.flush(10)
    base = {"siteId": SITE, "userId": "user-p", "groupKey": "company", "groupId": "acme"}
    expected = [
        ("set", {"properties": {"plan": "pro"}}),
        ("set_once", {"properties": {"founded": 1999}}),
        ("union", {"listName": "tags", "values": ["b2b", 2]}),
        ("remove", {"listName": "tags", "value": "old"}),
        ("append", {"property": "events", "value": {"x": 1}}),
        ("increment", {"property": "seats", "value": 3}),
        ("increment", {"property": "logins", "value": 1}),
        ("unset", {"property": "legacy"}),
        ("delete", {}),
    ]
    got = [(r["path"], r["body"]) for r in server.requests if "/groups/profile/" in r["path"]]
    assert got == [("/api/sdk/groups/profile/" + op, {**base, **extra}) for op, extra in expected]
    assert trodo.get_groups() == {}, "a handle has no effect on attribution"


def test_a_closed_group_refuses_calls(start):
    start()
    g = trodo.get_group("company", "acme")
    g.close()
    g.close()
    try:
        g.set({"a": 1})
    except trodo.InvalidArgumentError as e:
        assert "group" in e.message
    else:
        raise AssertionError("expected InvalidArgumentError")


def test_every_people_operation_sends_its_documented_body(server, start):
    start()
    trodo.identify("user-p")
    trodo.people.set({"name": "Ada"})
    trodo.people.set_once({"first": True})
    trodo.people.unset("old")
    trodo.people.increment("logins")
    trodo.people.append("visits", ["home"])
    trodo.people.union("roles", ["admin"])
    trodo.people.remove("roles", ["guest"])
    trodo.people.track_charge(9.5, {"sku": "pro"})
    trodo.people.track_charge(5)
    trodo.people.clear_charges()
    trodo.people.delete_user()
    trodo.flush(10)
    who = {"siteId": SITE, "userId": "user-p"}
    expected = [
        ("set", {"properties": {"name": "Ada"}}),
        ("set_once", {"properties": {"first": True}}),
        ("unset", {"keys": ["old"]}),
        ("increment", {"key": "logins", "amount": 1}),
        ("append", {"key": "visits", "values": ["home"]}),
        ("union", {"key": "roles", "values": ["admin"]}),
        ("remove", {"key": "roles", "values": ["guest"]}),
        ("track_charge", {"amount": 9.5, "properties": {"sku": "pro"}}),
        ("track_charge", {"amount": 5, "properties": {}}),
        ("clear_charges", {}),
        ("delete_user", {}),
    ]
    got = [(r["path"], r["body"]) for r in server.requests if r["path"].startswith("/api/sdk/people/")]
    assert got == [("/api/sdk/people/" + a, {**who, **extra}) for a, extra in expected]
