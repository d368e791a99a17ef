"""In-worker (synchronous) wait for a tuning job, with the same semantics as the deferrable trigger.

Used when an operator or the sensor does not defer. The hook retries each transient HTTP error
itself; on top of that this loop counts consecutive failed polls and only gives up after
``max_consecutive_failures`` of them in a row, as
:class:`~airflow_provider_tuning.triggers.tuning.TuningOperationTrigger` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    InvalidInputError,
    TuningTimeoutError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.hooks.retry import RETRYABLE_STATUS, RetryPolicy
from airflow_provider_tuning.tuning_status import TuningStatus, is_operation_name, normalize_tuning_name

_LOG = logging.getLogger(__name__)


class TuningHook(Protocol):
    """The part of ``GenerativeLanguageHook`` the wait needs."""

    def get_operation(self, name: str, *, api_version: str = ...) -> dict[str, Any]: ...

    def get_tuned_model(self, name: str, *, api_version: str | None = ...) -> dict[str, Any]: ...

    def list_operations(self, tuned_model: str, *, api_version: str | None = ...) -> Any: ...


def is_transient(err: BaseException) -> bool:
    """Return whether a poll that raised ``err`` is worth repeating.

    Connection errors and timeouts, 408, 429, 5xx and a 200 that is not the expected JSON are;
    any other API error (400, 401, 403, 404, ...) is not.

    :param err: the exception the hook raised.
    """
    if isinstance(err, (ApiConnectionError, UnexpectedResponseError)):
        return True
    return isinstance(err, ApiError) and (err.http_status in RETRYABLE_STATUS or err.http_status >= 500)


def check_tuning(hook: TuningHook, name: str, *, api_version: str | None = None) -> TuningStatus:
    """Poll a tuning operation or tuned model once and return its status.

    :param hook: a ``GenerativeLanguageHook``.
    :param name: ``tunedModels/<id>/operations/<op>`` or ``tunedModels/<id>`` (or a bare id).
    :param api_version: API version used for a tuned model (operations use the hook's default, ``v1``).
    :raises UnexpectedResponseError: if the response does not have the expected shape.
    :raises ApiError: as the hook raises it.
    """
    name = normalize_tuning_name(name)
    if is_operation_name(name):
        return TuningStatus.from_operation(hook.get_operation(name), request=f"GET {name}")
    return TuningStatus.from_tuned_model(
        hook.get_tuned_model(name, api_version=api_version), request=f"GET {name}"
    )


def raise_for_failure(hook: TuningHook, status: TuningStatus) -> None:
    """Raise ``TuningFailedError`` / ``TuningCancelledError`` with the API's message if ``status`` failed.

    A FAILED TunedModel carries no error message; its operation does, so for a tuned model this
    looks the message up in the model's operations (best effort).

    :param hook: a ``GenerativeLanguageHook``.
    :param status: the final status.
    """
    if not status.failed:
        return
    if status.operation is None and status.tuned_model:
        try:
            for op in reversed(list(hook.list_operations(status.tuned_model, api_version="v1"))):
                found = TuningStatus.from_operation(op)
                if found.failed and found.error_message:
                    found.raise_for_failure()
        except (ApiError, ApiConnectionError, InvalidInputError) as err:
            _LOG.debug("could not read the operations of %s: %s", status.tuned_model, err)
    status.raise_for_failure()


def wait_for_tuning(
    hook: TuningHook,
    name: str,
    *,
    poll_interval: float = 30.0,
    deadline: float | None = None,
    max_consecutive_failures: int = 5,
    log: Any = None,
    api_version: str | None = None,
    retry_initial_delay: float = 2.0,
    retry_max_delay: float = 120.0,
    sleep: Callable[[float], Any] = time.sleep,
) -> TuningStatus:
    """Poll until the tuning job finishes; return its final status.

    :param hook: a ``GenerativeLanguageHook`` (or anything with ``get_operation``/``get_tuned_model``).
    :param name: ``tunedModels/<id>/operations/<op>`` (polled with ``get_operation``) or
        ``tunedModels/<id>`` (polled with ``get_tuned_model``).
    :param poll_interval: seconds between polls.
    :param deadline: absolute time (epoch seconds) to give up at; ``None`` waits without limit.
    :param max_consecutive_failures: transient failed polls in a row before the last error is raised.
    :param log: a logger for progress lines (each logged once, when it changes); default: this module's.
    :param api_version: API version used to poll a tuned model.
    :param retry_initial_delay: backoff after the first failed poll.
    :param retry_max_delay: cap of that backoff.
    :param sleep: the function that waits (tests replace it).
    :return: the final status, ACTIVE.
    :raises TuningFailedError: the job ended FAILED (``TuningCancelledError`` when cancelled),
        with the API's message.
    :raises TuningTimeoutError: the deadline passed first.
    :raises ApiError: a non-transient API error (e.g. 404), or the last transient one after
        ``max_consecutive_failures`` failures in a row.
    """
    name = normalize_tuning_name(name)
    if (
        not isinstance(max_consecutive_failures, int)
        or isinstance(max_consecutive_failures, bool)
        or max_consecutive_failures < 1
    ):
        raise InvalidInputError(
            f"max_consecutive_failures must be an integer >= 1, got {max_consecutive_failures!r}"
        )
    if not isinstance(poll_interval, (int, float)) or poll_interval < 0:
        raise InvalidInputError(f"poll_interval must be a number >= 0, got {poll_interval!r}")
    logger = log if log is not None else _LOG
    policy = RetryPolicy(
        max_attempts=max_consecutive_failures, initial_delay=retry_initial_delay, max_delay=retry_max_delay
    )
    failures = 0
    last_line: str | None = None
    last_status: TuningStatus | None = None
    while True:
        delay = float(poll_interval)
        try:
            status = check_tuning(hook, name, api_version=api_version)
        except (ApiError, ApiConnectionError) as err:
            if not is_transient(err):
                raise
            failures += 1
            if failures >= max_consecutive_failures:
                logger.error("%s: giving up after %d consecutive failed polls: %s", name, failures, err)
                raise
            delay = policy.delay(failures)
            logger.warning(
                "%s: failed poll %d/%d (%s); retrying in %.2fs",
                name,
                failures,
                max_consecutive_failures,
                err,
                delay,
            )
        else:
            failures, last_status = 0, status
            line = status.progress_line()
            if line != last_line:
                logger.info("%s: %s", status.tuned_model or name, line)
                last_line = line
            if status.done:
                raise_for_failure(hook, status)
                return status
        if deadline is not None:
            remaining = deadline - time.time()
            if remaining <= 0:
                progress = last_status.progress_line() if last_status else "no successful poll"
                raise TuningTimeoutError(f"{name} did not finish before its deadline ({progress})")
            delay = min(delay, remaining)
        sleep(delay)
