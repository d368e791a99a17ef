"""Request bodies read with bounds: a maximum size, a read deadline and a bounded log copy.

* A body larger than :attr:`BodyLimits.max_bytes` (by its ``Content-Length``, or as it arrives
  when it is chunked) is answered ``413`` with a ``google.rpc.Status`` body, as Google's front end
  refuses too-large requests ("Request payload size exceeds the limit: N bytes.").
* A body that has not fully arrived :attr:`BodyLimits.timeout` seconds after the handler started
  reading it (a client that trickles it) is answered ``408``; the connection is closed once what
  is left of the body has been drained for at most the same time.
* The request log keeps at most :attr:`BodyLimits.log_bytes` of each body, then a marker.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from aiohttp import web

from tuning_api_emulator.errors import StatusError

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_LOG_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class BodyLimits:
    """How much of a request body is read, for how long, and how much of it is logged.

    :param max_bytes: the largest body accepted, in bytes.
    :param timeout: seconds a whole body may take to arrive.
    :param log_bytes: how many bytes of a body the request log keeps.
    """

    max_bytes: int = DEFAULT_MAX_BODY_BYTES
    timeout: float = DEFAULT_BODY_TIMEOUT
    log_bytes: int = DEFAULT_LOG_BODY_BYTES

    def __post_init__(self) -> None:
        for name in ("max_bytes", "log_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer number of bytes, 0 or more, got {value!r}")
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
            raise ValueError(f"body timeout must be a finite number of seconds, got {timeout!r}")
        if timeout <= 0:
            raise ValueError(f"body timeout must be positive, got {timeout!r}")


def too_large(limit: int) -> StatusError:
    """413 for a body over ``limit`` bytes (with a ``google.rpc.Status`` body)."""
    return StatusError(
        "INVALID_ARGUMENT",
        f"Request payload size exceeds the limit: {limit} bytes.",
        http_status=413,
    )


def too_slow(timeout: float) -> StatusError:
    """408 for a body that did not arrive within ``timeout`` seconds."""
    return StatusError(
        "DEADLINE_EXCEEDED",
        f"The request body did not arrive within {timeout:g} seconds; the connection is closed.",
        http_status=408,
    )


async def _read_all(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)


async def read_body(request: web.Request, limits: BodyLimits) -> bytes:
    """The whole body of ``request``, within ``limits``.

    :raises StatusError: 413 when it is too large, 408 when it arrives too slowly.
    """
    length = request.content_length
    if length is not None and length > limits.max_bytes:
        raise too_large(limits.max_bytes)
    try:
        return await asyncio.wait_for(_read_all(request, limits.max_bytes), limits.timeout)
    except asyncio.TimeoutError:
        raise too_slow(limits.timeout) from None


def log_text(raw: bytes, limit: int) -> str:
    """The request log's copy of a body: its first ``limit`` bytes, then a truncation marker."""
    if len(raw) <= limit:
        return raw.decode("utf-8", errors="replace")
    head = raw[:limit].decode("utf-8", errors="ignore")
    return f"{head}...[truncated: {len(raw)} bytes in all, the log keeps {limit}]"
