"""A thread-safe sliding-window rate limiter (stdlib only).

:class:`SlidingWindowRateLimiter` admits at most ``max_calls`` starts in any window of ``period``
seconds: a start at time ``t`` is admitted only when fewer than ``max_calls`` starts happened in
``(t - period, t]``. The limit is held exactly (the ``max_calls``-th previous start must be at least
``period`` seconds old), not approximated with a token bucket. The clock and the wait function are
injectable, so the limiter can be tested with a fake clock and no real sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiterAbortedError(RuntimeError):
    """:meth:`SlidingWindowRateLimiter.acquire` was interrupted by :meth:`~SlidingWindowRateLimiter.abort`."""


class SlidingWindowRateLimiter:
    """At most ``max_calls`` admitted starts in any sliding window of ``period`` seconds.

    :param max_calls: the number of starts allowed per window (>= 1).
    :param period: the window length in seconds (> 0); 60 for a requests-per-minute limit.
    :param clock: a monotonic clock returning seconds; :func:`time.monotonic` by default.
    :param wait: called as ``wait(seconds)`` to pause while the window is full. The default waits on an
        internal event, so :meth:`abort` wakes it at once. A fake clock's ``sleep`` makes tests instant.
    :param margin: extra seconds a start must wait beyond ``period`` (default 0: exact). Starts are
        counted when a request is handed to the connection, and requests reach the server a few ms
        later, more for the first ones of a burst (new connections): a margin larger than that spread
        keeps the limit at the server too.
    """

    def __init__(
        self,
        max_calls: int,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
        margin: float = 0.0,
    ) -> None:
        if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 1:
            raise ValueError(f"max_calls must be an integer >= 1, got {max_calls!r}")
        if not period > 0:
            raise ValueError(f"period must be > 0 seconds, got {period!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0 seconds, got {margin!r}")
        self.max_calls = max_calls
        self.period = float(period)
        self.margin = float(margin)
        self._clock = clock
        self._aborted = threading.Event()
        self._wait: Callable[[float], object] = wait if wait is not None else self._aborted.wait
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()

    def acquire(self) -> float:
        """Block until a start is allowed, record it, and return its (clock) time.

        :raises RateLimiterAbortedError: when :meth:`abort` was called before or during the wait.
        """
        while True:
            if self._aborted.is_set():
                raise RateLimiterAbortedError("rate limiter aborted")
            with self._lock:
                now = self._clock()
                starts = self._starts
                # Starts older than the window no longer count.
                span = self.period + self.margin
                while starts and now - starts[0] >= span:
                    starts.popleft()
                if len(starts) < self.max_calls:
                    starts.append(now)
                    return now
                delay = starts[0] + span - now
            self._wait(delay)

    def abort(self) -> None:
        """Wake every waiting :meth:`acquire` and make it (and later calls) raise."""
        self._aborted.set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_calls={self.max_calls}, period={self.period})"
