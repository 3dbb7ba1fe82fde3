"""An OpenLineage HTTP endpoint owned by the tests: it accepts what Marquez accepts
(`POST /api/v1/lineage`, one JSON run event, 201) and keeps every event it is sent.

With a token, a request without `Authorization: Bearer <token>` gets 401 and is not kept,
as a backend with authentication answers. With an events file, each kept event is also
appended to it as one JSON line (the local cluster's e2e tests read it from the host).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ENDPOINT = "/api/v1/lineage"


class LineageReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 events_file: Path | None = None):
        self.events: list[dict] = []
        self.authorizations: list[str | None] = []
        self.rejected = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                authorization = self.headers.get("Authorization")
                if self.path != ENDPOINT:
                    self.send_response(404)
                elif token is not None and authorization != f"Bearer {token}":
                    with receiver._lock:
                        receiver.rejected += 1
                    self.send_response(401)
                else:
                    receiver._keep(json.loads(body), authorization, events_file)
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _keep(self, event: dict, authorization: str | None, events_file: Path | None) -> None:
        with self._lock:
            self.events.append(event)
            self.authorizations.append(authorization)
            if events_file is not None:
                with events_file.open("a") as f:
                    f.write(json.dumps(event) + "\n")

    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
