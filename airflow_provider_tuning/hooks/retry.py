"""Retry policy for calls to the Generative Language API: which answers to retry and how long to wait.

Pure (no I/O): the sync hook and the async trigger both use it.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""The HTTP statuses a service names as transient: request timeout, quota (429), server errors."""
#: 5xx answers that are final: the server does not implement the method, or the HTTP version.
FINAL_SERVER_STATUS = frozenset({501, 505})


def is_retryable_status(status: int) -> bool:
    """Return whether a response with this HTTP status is transient (the one rule, sync and async).

    408, 429 and every 5xx but 501 and 505 (a proxy's 520-599 included).

    :param status: HTTP status code.
    """
    return status in RETRYABLE_STATUS or (500 <= status < 600 and status not in FINAL_SERVER_STATUS)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds from now.

    :param value: the header value: delay seconds (``"7"``) or an HTTP date
        (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
    :param now: the current time as epoch seconds (defaults to :func:`time.time`).
    :return: seconds to wait (never negative), or ``None`` when the value is absent or unparsable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After``.

    The wait after the ``n``-th failed attempt (``n`` starts at 1) is drawn uniformly from
    ``[b * (1 - jitter), b]`` where ``b = min(max_delay, initial_delay * multiplier ** (n - 1))``.
    A ``Retry-After`` header replaces the backoff, capped at ``max_delay``.

    :param max_attempts: total attempts, the first one included (1 means no retry).
    :param initial_delay: backoff before the second attempt, in seconds.
    :param max_delay: upper bound of every wait, in seconds.
    :param multiplier: growth factor of the backoff between attempts.
    :param jitter: fraction of the backoff that is randomised, in ``[0, 1]``.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("initial_delay and max_delay must not be negative")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter!r}")

    def backoff(self, attempt: int) -> float:
        """Return the backoff ceiling (before jitter) after the ``attempt``-th failed attempt.

        :param attempt: 1-based number of the attempt that just failed.
        """
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt!r}")
        try:
            raw = self.initial_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, raw)

    def delay(
        self,
        attempt: int,
        retry_after: str | None = None,
        *,
        now: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Return how long to wait after the ``attempt``-th failed attempt.

        :param attempt: 1-based number of the attempt that just failed.
        :param retry_after: the response's ``Retry-After`` header, if any (seconds or HTTP date).
        :param now: current epoch seconds, for HTTP-date headers (defaults to :func:`time.time`).
        :param rand: source of uniform numbers in ``[0, 1)`` (for tests).
        """
        hinted = parse_retry_after(retry_after, now=now)
        if hinted is not None:
            return min(self.max_delay, hinted)
        ceiling = self.backoff(attempt)
        return ceiling * (1.0 - self.jitter * rand())

    def should_retry(self, attempt: int) -> bool:
        """Return whether another attempt is allowed after the ``attempt``-th one failed.

        :param attempt: 1-based number of the attempt that just failed.
        """
        return attempt < self.max_attempts
