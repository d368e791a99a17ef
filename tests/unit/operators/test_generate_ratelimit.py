"""The sliding-window rate limiter: exact limit, thread safety, abort; fake clock, no real sleeping."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_tuning.hooks.ratelimit import RateLimiterAbortedError, SlidingWindowRateLimiter


class FakeClock:
    """A thread-safe fake monotonic clock whose ``sleep`` moves time forward instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the limiter must never ask to wait for nothing"
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def max_in_any_window(starts: list[float], period: float) -> int:
    """The most starts in any half-open window (t - period, t], by brute force."""
    return max(sum(1 for s in starts if t - period < s <= t) for t in starts)


def test_exactly_n_starts_per_window_then_waits_exactly_until_the_window_frees():
    clock = FakeClock()
    limiter = SlidingWindowRateLimiter(3, 60.0, clock=clock, wait=clock.sleep)

    starts = [limiter.acquire() for _ in range(9)]

    t0 = 1000.0
    # Three at once, then exactly when the oldest start leaves the window: no earlier, no later.
    assert starts == [t0] * 3 + [t0 + 60] * 3 + [t0 + 120] * 3
    assert max_in_any_window(starts, 60.0) == 3
    assert clock.sleeps == [60.0, 60.0]


def test_uneven_arrivals_keep_the_sliding_window_exact():
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowRateLimiter(2, 60.0, clock=clock, wait=clock.sleep)
    starts = []
    for gap in (0, 10, 5, 30, 0, 100, 1, 1, 59):
        clock.advance(gap)
        starts.append(limiter.acquire())

    # Each start is its arrival (the clock after the gap), delayed to start[k-2] + 60 when the window is full:
    # 0, 10, 15->60, 90, 90->120, 220, 221, 222->280, 339.
    assert starts == [0, 10, 60, 90, 120, 220, 221, 280, 339]
    assert max_in_any_window(starts, 60.0) == 2
    for k in range(2, len(starts)):
        assert starts[k] - starts[k - 2] >= 60


def test_window_boundary():
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowRateLimiter(1, 60.0, clock=clock, wait=clock.sleep)
    assert limiter.acquire() == 0.0
    clock.advance(59.5)
    assert limiter.acquire() == 60.0  # half a second early: waits exactly the rest
    assert clock.sleeps == [0.5]
    clock.advance(60.0)
    assert limiter.acquire() == 120.0  # exactly one period later: the old start has left (t - 60, t]
    assert clock.sleeps == [0.5]


def test_many_threads_never_exceed_the_limit():
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowRateLimiter(5, 60.0, clock=clock, wait=clock.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            t = limiter.acquire()
            with lock:
                starts.append(t)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert len(starts) == 60
    assert max_in_any_window(sorted(starts), 60.0) == 5


def test_abort_wakes_a_waiting_acquire():
    limiter = SlidingWindowRateLimiter(1, 3600.0)  # the real clock and the real (event) wait
    limiter.acquire()
    outcome: list[BaseException] = []
    waiting = threading.Thread(target=lambda: _capture(limiter.acquire, outcome))
    waiting.start()
    limiter.abort()
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], RateLimiterAbortedError)
    with pytest.raises(RateLimiterAbortedError):
        limiter.acquire()


def _capture(func, sink: list[BaseException]) -> None:
    try:
        func()
    except BaseException as err:
        sink.append(err)


@pytest.mark.parametrize(
    ("max_calls", "period"), [(0, 60.0), (-1, 60.0), (1.5, 60.0), (True, 60.0), (1, 0.0)]
)
def test_bad_arguments(max_calls, period):
    with pytest.raises(ValueError, match="must be"):
        SlidingWindowRateLimiter(max_calls, period)


def test_a_margin_holds_each_start_back_by_that_many_seconds_beyond_the_window():
    clock = FakeClock()
    limiter = SlidingWindowRateLimiter(2, 60.0, clock=clock, wait=clock.sleep, margin=1.0)

    starts = [limiter.acquire() for _ in range(6)]

    t0 = 1000.0
    # A start waits for the oldest one to be 61 s old, so even a request that reaches the server
    # up to 1 s late keeps the server's 60 s windows within the limit.
    assert starts == [t0] * 2 + [t0 + 61] * 2 + [t0 + 122] * 2
    assert max_in_any_window([s + late for s, late in zip(starts, [0.9, 0.0] * 3, strict=True)], 60.0) == 2


def test_a_negative_margin_is_refused():
    with pytest.raises(ValueError, match="margin must be >= 0"):
        SlidingWindowRateLimiter(2, 60.0, margin=-1.0)
