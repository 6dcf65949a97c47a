"""A loopback fake Trodo server for the Python tests: records every request
(path, headers, parsed body), keeps server-side memberships per user so
identify can answer with group_memberships, and can answer identify late."""

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional


class FakeTrodo:
    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.memberships: Dict[str, Dict[str, List[str]]] = {}
        self.identify_delay = 0.0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle plus
            # delayed ACKs cost 40 ms per request.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # The sender died mid-request (a killed worker): as a
                    # real server would, take nothing of it.
                    self.close_connection = True
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                answer, delay = fake._handle(self.path, dict(self.headers), body)
                time.sleep(delay)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, path: str, headers: Dict[str, str], body: Any):
        with self.lock:
            self.requests.append({"path": path, "headers": {k.lower(): v for k, v in headers.items()}, "body": body})
            if not isinstance(body, dict):
                return {}, 0.0
            user = body.get("userId", "")
            key = body.get("groupKey", "")
            gid = body.get("groupId")
            ids = gid if isinstance(gid, list) else [gid]
            if path in ("/api/sdk/groups/set_group", "/api/sdk/groups/add_group"):
                lst = self.memberships.setdefault(user, {}).setdefault(key, [])
                lst.extend(i for i in ids if i not in lst)
            elif path == "/api/sdk/groups/remove_group":
                lst = self.memberships.get(user, {}).get(key, [])
                lst[:] = [i for i in lst if i not in ids]
            elif path == "/api/sdk/identify":
                who = body.get("identifyId", "")
                return {"group_memberships": json.loads(json.dumps(self.memberships.get(who, {})))}, self.identify_delay
            return {"ok": True}, 0.0

    def to_path(self, path: str) -> List[Dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def events(self) -> List[Dict[str, Any]]:
        """Events sent alone or in bulk, in arrival order."""
        out: List[Dict[str, Any]] = []
        with self.lock:
            for r in self.requests:
                if r["path"] == "/api/events":
                    out.append(r["body"])
                elif r["path"] == "/api/events/bulk":
                    out.extend(r["body"]["events"])
        return out

    def event(self, name: str) -> Optional[Dict[str, Any]]:
        for e in self.events():
            if e.get("event_name") == name:
                return e
        return None
