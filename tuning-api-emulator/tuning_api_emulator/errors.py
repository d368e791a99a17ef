"""``google.rpc.Status`` errors as the Google front end renders them (AIP-193).

An HTTP error body is ``{"error": {"code": <HTTP status>, "message", "status": <Code name>, "details"}}``;
an ``Operation.error`` is a bare Status whose ``code`` is the rpc code *number* (see :func:`rpc_status`).
"""

from __future__ import annotations

from typing import Any

#: google.rpc.Code name -> (rpc code number, HTTP status), from google/rpc/code.proto.
CODES: dict[str, tuple[int, int]] = {
    "OK": (0, 200),
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "OUT_OF_RANGE": (11, 400),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "DATA_LOSS": (15, 500),
    "UNAUTHENTICATED": (16, 401),
}

SERVICE = "generativelanguage.googleapis.com"
METHOD_NOT_FOUND = "Method not found."


class StatusError(Exception):
    """An API error to answer with a ``google.rpc.Status`` body.

    :param status: the ``google.rpc.Code`` name, e.g. ``"INVALID_ARGUMENT"``.
    :param message: the human-readable ``error.message``.
    :param details: ``error.details`` entries (``Any`` objects with an ``@type``).
    :param headers: extra response headers (e.g. ``Retry-After``).
    :param http_status: the HTTP status when it is not the code's own (e.g. 413, 408, which no
        ``google.rpc.Code`` maps to).
    """

    def __init__(
        self,
        status: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        http_status: int | None = None,
    ) -> None:
        if status not in CODES:
            raise ValueError(f"unknown google.rpc.Code {status!r}")
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """The HTTP status code: the one given, else the one that goes with :attr:`status`."""
        return self._http_status if self._http_status is not None else CODES[self.status][1]

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        error: dict[str, Any] = {"code": self.http_status, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def rpc_status(status: str, message: str) -> dict[str, Any]:
    """A bare ``google.rpc.Status`` (as in ``Operation.error``): numeric ``code`` and ``message``."""
    return {"code": CODES[status][0], "message": message}


def error_info(reason: str, **metadata: str) -> dict[str, Any]:
    """A ``google.rpc.ErrorInfo`` detail."""
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": SERVICE, **metadata},
    }


def bad_request(message: str, field: str | None = None) -> StatusError:
    """400 INVALID_ARGUMENT, with a ``google.rpc.BadRequest`` field violation when a field is named."""
    details: list[dict[str, Any]] = []
    if field is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        )
    return StatusError("INVALID_ARGUMENT", message, details=details)


def not_found(message: str) -> StatusError:
    """404 NOT_FOUND."""
    return StatusError("NOT_FOUND", message)


def method_not_found() -> StatusError:
    """404 for a path or verb the API does not serve (what Google's front end answers)."""
    return StatusError("NOT_FOUND", METHOD_NOT_FOUND)


def failed_precondition(message: str) -> StatusError:
    """400 FAILED_PRECONDITION."""
    return StatusError("FAILED_PRECONDITION", message)
