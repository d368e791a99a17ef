"""A loopback OAuth token endpoint: trades one known refresh token for one known access token.

Stands in for ``https://oauth2.googleapis.com/token`` through the ``token_uri`` of an
``authorized_user`` JSON, so an OAuth run needs no network and its secrets are recognisable.
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class TokenEndpoint:
    """Serve ``POST /token`` on 127.0.0.1 (free port) in a daemon thread.

    :param client_id: the accepted client id.
    :param client_secret: the accepted client secret.
    :param refresh_token: the accepted refresh token.
    :param access_token: the access token it issues.
    """

    client_id: str
    client_secret: str
    refresh_token: str
    access_token: str
    granted: int = 0
    refused: int = 0
    _server: http.server.ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def token_uri(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/token"

    def authorized_user_info(self) -> dict[str, Any]:
        """The ``authorized_user`` JSON that ``gcloud auth application-default login`` writes."""
        return {
            "type": "authorized_user",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "token_uri": self.token_uri,
        }

    def _answer(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        expected = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        if all(form.get(key) == [value] for key, value in expected.items()):
            self.granted += 1
            return 200, {"access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"}
        self.refused += 1
        return 400, {"error": "invalid_grant", "error_description": "Bad Request"}

    def start(self) -> TokenEndpoint:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                status, body = endpoint._answer(form) if self.path == "/token" else (404, {})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="token-endpoint", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
