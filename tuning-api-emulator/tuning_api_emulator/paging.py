"""Cursor pagination: ``pageSize`` (default per method, capped at 1000) and opaque ``pageToken``s.

A token records the last key served and a fingerprint of the other request parameters; a token
reused with different parameters, or one this emulator did not issue, is a 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from tuning_api_emulator.errors import bad_request
from tuning_api_emulator.schema import INT32_MAX, INT32_MIN

T = TypeVar("T")
MAX_PAGE_SIZE = 1000


def _fingerprint(params: str) -> str:
    return hashlib.sha256(params.encode()).hexdigest()[:16]


def page_size(raw: str | None, default: int) -> int:
    """Parse ``pageSize``: unset or 0 -> ``default``; capped at 1000; negative -> 400.

    Like the service, a value that is not an int32 (not a number, or out of the int32 range) is a
    400 ``Invalid value at 'page_size' (TYPE_INT32), "<value>"``.
    """
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?\d+", raw.strip()) or not INT32_MIN <= int(raw) <= INT32_MAX:
        raise bad_request(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"", "page_size")
    size = int(raw)
    if size < 0:
        raise bad_request(f"page_size must not be negative, got {size}.", "page_size")
    return min(size, MAX_PAGE_SIZE) if size else default


def paginate(
    items: Sequence[T],
    key: Callable[[T], str],
    *,
    raw_page_size: str | None,
    page_token: str | None,
    default_size: int,
    params: str,
) -> tuple[list[T], str | None]:
    """One page of ``items`` (already sorted by ``key``) and the next page token, if any.

    :param params: the request's other parameters (filter, parent, version) as one string.
    """
    size = page_size(raw_page_size, default_size)
    after: str | None = None
    if page_token:
        try:
            padded = page_token + "=" * (-len(page_token) % 4)
            decoded = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
            after = str(decoded["after"])
            fingerprint = str(decoded["params"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("Invalid page token.", "page_token") from None
        if fingerprint != _fingerprint(params):
            raise bad_request(
                "The page token does not match the request: every parameter other than page_size must "
                "match the call that issued the token.",
                "page_token",
            )
    remaining = [item for item in items if after is None or key(item) > after]
    chunk = remaining[:size]
    if len(remaining) <= size or not chunk:
        return chunk, None
    token = json.dumps({"after": key(chunk[-1]), "params": _fingerprint(params)})
    return chunk, base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
