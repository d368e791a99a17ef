"""Loopback HTTP servers for the hook tests: an API capture server and an OAuth token endpoint.

Both bind 127.0.0.1 on a free port, run in a daemon thread and speak HTTP/1.1 (keep-alive).
Also: generated key material (RSA service-account key, authorized_user JSON).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import http.server
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

DROP = "drop"  # close the connection without answering
HANG = "hang"  # never answer (until the server stops)


@dataclass
class Reply:
    """A scripted answer: status, JSON (dict/list) or raw text/bytes body, headers."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/html; charset=utf-8")
        return json.dumps(self.body).encode(), "application/json; charset=UTF-8"


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


Responder = Callable[[Recorded], "Reply | str"]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 that records every request.

    Answers come from ``responder(request)`` when given, else from the ``replies`` queue (FIFO),
    else ``200 {}``.
    """

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.replies: list[Reply | str] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive
            wbufsize = 1 << 16  # headers and body leave in one write

            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    target=self.path,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    client_port=self.client_address[1],
                )
                with server._lock:
                    server.requests.append(recorded)
                    if server.responder is not None:
                        reply: Reply | str | None = None
                    else:
                        reply = server.replies.pop(0) if server.replies else Reply()
                if reply is None:
                    reply = server.responder(recorded)  # type: ignore[misc]
                if reply == DROP:
                    self.close_connection = True
                    return
                if reply == HANG:
                    server._stopping.wait(10)
                    self.close_connection = True
                    return
                assert isinstance(reply, Reply)
                payload, content_type = reply.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TokenEndpoint:
    """OAuth token endpoint (``POST /token``) and IAM ``generateAccessToken`` on loopback.

    Every issued token is unique and recorded, so tests can check which one an API call carried.
    """

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.impersonated: list[str] = []
        self.fail_with: Reply | None = None
        self.server = LoopbackServer(self._respond)

    def _respond(self, request: Recorded) -> Reply:
        if self.fail_with is not None:
            return self.fail_with
        if request.method == "POST" and request.path == "/token":
            token = f"ya29.loopback-{len(self.issued) + 1}-{secrets.token_hex(12)}"
            self.issued.append(token)
            return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
        if request.method == "POST" and request.path.endswith(":generateAccessToken"):
            token = f"ya29.impersonated-{len(self.impersonated) + 1}-{secrets.token_hex(12)}"
            self.impersonated.append(token)
            expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
            return Reply(200, {"accessToken": token, "expireTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")})
        return Reply(404, {"error": {"code": 404, "message": "no such endpoint", "status": "NOT_FOUND"}})

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_uri(self) -> str:
        return f"{self.server.url}/token"

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests


@functools.lru_cache(maxsize=1)
def rsa_key_pair() -> tuple[str, Any]:
    """A freshly generated RSA key: (PKCS#8 PEM private key, public key object)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key.public_key()


def service_account_info(token_uri: str, email: str = "tuner@test-project.iam.gserviceaccount.com") -> dict:
    """A service-account key JSON with a generated private key and a loopback ``token_uri``."""
    pem, _ = rsa_key_pair()
    return {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


def authorized_user_info(token_uri: str | None = None, quota_project_id: str | None = None) -> dict:
    """An ``authorized_user`` JSON as ``gcloud auth application-default login`` writes it."""
    info = {
        "type": "authorized_user",
        "client_id": f"{secrets.token_hex(6)}.apps.googleusercontent.com",
        "client_secret": f"GOCSPX-{secrets.token_urlsafe(18)}",
        "refresh_token": f"1//{secrets.token_urlsafe(40)}",
    }
    if quota_project_id:
        info["quota_project_id"] = quota_project_id
    if token_uri:
        info["token_uri"] = token_uri
    return info


def decode_jwt(assertion: str) -> tuple[dict, dict, bytes, bytes]:
    """Split a JWT: (header, claims, signing input, signature)."""

    def b64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, claims, signature = assertion.split(".")
    return (
        json.loads(b64(header)),
        json.loads(b64(claims)),
        f"{header}.{claims}".encode(),
        b64(signature),
    )


def error_body(code: int, status: str, message: str) -> dict:
    """A google.rpc.Status error body."""
    return {"error": {"code": code, "message": message, "status": status}}


def http_date(seconds_from_now: float) -> str:
    """An RFC 7231 HTTP date ``seconds_from_now`` in the future."""
    import email.utils

    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)
