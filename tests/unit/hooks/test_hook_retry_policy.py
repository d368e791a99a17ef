"""RetryPolicy and Retry-After parsing (pure functions)."""

from __future__ import annotations

import email.utils
import random

import pytest

from airflow_provider_tuning.hooks.retry import (
    RETRYABLE_STATUS,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)

NOW = 1_700_000_000.0


def test_retryable_statuses_are_exactly_the_transient_ones():
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRYABLE_STATUS
    for status in (301, 307, 400, 401, 403, 404, 409, 412, 501, 505):
        assert not is_retryable_status(status)
    for status in (*RETRYABLE_STATUS, 507, 520, 599):
        assert is_retryable_status(status)


def test_backoff_grows_exponentially_and_is_capped():
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=30.0)
    assert [policy.backoff(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert RetryPolicy(max_delay=5.0).backoff(10_000) == 5.0  # no overflow on huge attempts


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_jittered_delay_stays_within_bounds_and_varies(attempt):
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=20.0, jitter=0.5)
    rng = random.Random(attempt)
    ceiling = policy.backoff(attempt)
    delays = [policy.delay(attempt, rand=rng.random) for _ in range(300)]
    assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling * 0.3  # jitter really spreads the waits
    # the extremes of the random source map to the bounds
    assert policy.delay(attempt, rand=lambda: 0.0) == ceiling
    assert policy.delay(attempt, rand=lambda: 1.0) == pytest.approx(ceiling * 0.5)


def test_without_jitter_the_delay_is_the_backoff():
    policy = RetryPolicy(initial_delay=0.5, multiplier=3.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.5]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), ("", None), ("soon", None), ("nan", None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_http_date():
    future = email.utils.formatdate(NOW + 12, usegmt=True)
    past = email.utils.formatdate(NOW - 60, usegmt=True)
    assert parse_retry_after(future, now=NOW) == pytest.approx(12.0)
    assert parse_retry_after(past, now=NOW) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 99 Foo 2015 07:28:00 GMT", now=NOW) is None


def test_retry_after_replaces_backoff_and_is_capped():
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0)
    assert policy.delay(1, "4", rand=lambda: 0.0) == 4.0
    assert policy.delay(4, "0", rand=lambda: 0.0) == 0.0  # the server's word wins over backoff
    assert policy.delay(1, "3600") == 10.0
    date = email.utils.formatdate(NOW + 6, usegmt=True)
    assert policy.delay(1, date, now=NOW) == pytest.approx(6.0)
    # an unparsable header falls back to the jittered backoff
    assert policy.delay(3, "later", rand=lambda: 0.0) == 4.0


def test_should_retry_counts_attempts():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert not RetryPolicy(max_attempts=1).should_retry(1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"initial_delay": -1},
        {"max_delay": -1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_invalid_policies_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        RetryPolicy(**kwargs)


def test_attempt_is_one_based():
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().backoff(0)
