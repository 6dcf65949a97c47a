"""The host's transport from Python: a callable that sends through
urllib.request in place of the built-in HTTP client."""

import urllib.error
import urllib.request

import pytest

import trodo_native as trodo


class ViaUrllib:
    """Sends with urllib; fails the first ``fail_first`` calls (no response)."""

    def __init__(self, fail_first=0):
        self.calls = []
        self.fail_first = fail_first

    def __call__(self, url, headers, body, timeout):
        self.calls.append((url, headers, body, timeout))
        if len(self.calls) <= self.fail_first:
            raise ConnectionError("the host's network is down")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, r.headers.get("Retry-After"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Retry-After"), e.read()
        except OSError:
            return 0, None, b""


def test_requests_go_through_the_callable_with_retries_kept(server, start):
    transport = ViaUrllib(fail_first=1)
    with pytest.warns(RuntimeWarning, match="network is down"):
        start(transport=transport)
        trodo.identify("user-py")
        trodo.set_group("company", "acme")
        trodo.track("through_urllib", {"n": 1})
        trodo.flush(20)
    assert [e["event_name"] for e in server.events()] == ["through_urllib"]
    assert server.events()[0]["user_id"] == "user-py"
    # The failed first attempt was retried; every request went through us.
    paths = [url.rsplit("/api/", 1)[1] for url, _, _, _ in transport.calls]
    assert paths[0] == paths[1], "the failed request was sent again"
    assert len(transport.calls) == len(server.requests) + 1
    url, headers, body, timeout = transport.calls[-1]
    assert url.startswith(server.url) and headers["Content-Type"] == "application/json"
    assert headers["X-Trodo-Site-Id"] == "site-py" and timeout > 0 and body


def test_a_transport_must_be_callable_and_none_restores_the_built_in_client(server, start, tmp_path):
    with pytest.raises(TypeError, match="callable"):
        trodo.init("site-py", transport="not callable", storage_dir=str(tmp_path / "x"))
    transport = ViaUrllib()
    start(transport=transport)
    trodo.track("first")
    trodo.shutdown(10)
    sent_through = len(transport.calls)
    assert sent_through > 0
    start()  # no transport: the built-in client
    trodo.track("second")
    trodo.flush(10)
    assert len(transport.calls) == sent_through
    assert [e["event_name"] for e in server.events()] == ["first", "second"]
