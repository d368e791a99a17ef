"""Request bodies are bounded: too large a body gets 413 (a google.rpc.Status body), a body that
trickles in gets 408 and its connection closed after a bounded time, and the request log keeps only
a prefix of each body."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.emulator.emulator_support import Api, tuned_model_body
from tuning_api_emulator import Emulator

CREATE = "/v1beta/tunedModels"
KEY = {"x-goog-api-key": "k", "Content-Type": "application/json"}


def _check_413(reply: requests.Response, limit: int) -> None:
    assert reply.status_code == 413
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {
        "error": {
            "code": 413,
            "message": f"Request payload size exceeds the limit: {limit} bytes.",
            "status": "INVALID_ARGUMENT",
        }
    }


def test_a_body_over_the_limit_is_413(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(max_body_bytes=2000)
    big = json.dumps(tuned_model_body(200)).encode()
    assert len(big) > 2000
    _check_413(requests.post(f"{emulator.url}{CREATE}", data=big, headers=KEY, timeout=10), 2000)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    _check_413(requests.post(f"{emulator.url}{CREATE}", data=chunked(), headers=KEY, timeout=10), 2000)
    _check_413(requests.put(f"{emulator.url}/_emulator/faults", data=b" " * 2001, timeout=10), 2000)
    small = json.dumps(tuned_model_body(10)).encode()
    assert len(small) <= 2000
    assert requests.post(f"{emulator.url}{CREATE}", data=small, headers=KEY, timeout=10).status_code == 200
    assert [(entry["rpc"], entry["status"]) for entry in emulator.request_log] == [
        ("CreateTunedModel", 413),
        ("CreateTunedModel", 413),
        ("CreateTunedModel", 200),
    ]


def _raw_post(url: str, length: int) -> socket.socket:
    """A connection that sent the headers of a ``length``-byte POST and one byte of its body."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=20)
    head = (
        f"POST {CREATE} HTTP/1.1\r\nHost: {parts.netloc}\r\nx-goog-api-key: k\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{"
    )
    sock.sendall(head.encode())
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("trickle", [False, True])
def test_a_slow_body_is_408_and_the_connection_closed(
    make_emulator: Callable[..., Emulator], trickle: bool
) -> None:
    emulator = make_emulator(body_timeout=0.5)
    sock = _raw_post(emulator.url, 1000)
    stop = threading.Event()

    def drip() -> None:  # one byte every 50 ms: never idle, never done
        while not stop.wait(0.05):
            try:
                sock.sendall(b" ")
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    if trickle:
        dripper.start()
    started = time.monotonic()
    try:
        answer = _answer(sock)
    finally:
        stop.set()
        sock.close()
    assert time.monotonic() - started < 5  # 0.5 s to read, at most 0.5 s more to drain
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == 408
    assert body["error"]["status"] == "DEADLINE_EXCEEDED"
    assert "did not arrive within 0.5 seconds" in body["error"]["message"]
    assert emulator.request_log[-1]["status"] == 408
    assert Api(emulator.url).get("/v1beta/models", params={"pageSize": 1})["models"]  # still serving


def test_the_request_log_keeps_a_bounded_prefix(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(log_body_bytes=300)
    body = json.dumps(tuned_model_body(200))
    Api(emulator.url).request(
        "POST", CREATE, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    logged = emulator.request_log[-1]["body"]
    assert logged == f"{body[:300]}...[truncated: {len(body)} bytes in all, the log keeps 300]"
    Api(emulator.url).get("/v1beta/models", params={"pageSize": 1})
    assert emulator.request_log[-1]["body"] == ""


def test_the_default_log_prefix_is_bounded(emulator: Emulator) -> None:
    body = json.dumps(tuned_model_body(5000))
    assert len(body) > 64 * 1024
    Api(emulator.url).request(
        "POST", CREATE, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert len(emulator.request_log[-1]["body"]) < 64 * 1024 + 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_body_bytes": -1}, "max_bytes must be an integer number of bytes"),
        ({"body_timeout": float("inf")}, "body timeout must be a finite number of seconds"),
        ({"body_timeout": 0}, "body timeout must be positive"),
    ],
)
def test_bad_body_limits_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Emulator(**kwargs)  # type: ignore[arg-type]
