"""One wait for a tuning job, driven three ways: in the worker, in the triggerer and by the sensor.

:class:`WaitPolicy` is pure: a poll's outcome (a status or an error) goes in, a decision comes out
(:class:`Done`, :class:`Sleep` or :class:`GiveUp`). It owns the failure budget (transient failures
in a row), the backoff after a failed poll (honouring ``Retry-After``), the absolute deadline and
the de-duplication of progress lines. The drivers only poll and sleep:

* :func:`wait_for_tuning` (sync, the operators' in-worker wait),
* :class:`~airflow_provider_tuning.triggers.tuning.TuningOperationTrigger` (async),
* :class:`~airflow_provider_tuning.sensors.tuning.TunedModelSensor` (one poll per poke).

A poll is one HTTP attempt (the hook's in-call retries are off for polls), so the failure budget
counts every failed request and a deferred wait and an in-worker wait tolerate the same outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from airflow_provider_tuning import validation
from airflow_provider_tuning.backends import ApiCall, TuningBackend, get_backend
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    GenerativeLanguageError,
    InvalidArgumentError,
    TuningTimeoutError,
)
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.transport import is_transient
from airflow_provider_tuning.tuning_status import DataStats, TuningStatus, shorten

_LOG = logging.getLogger(__name__)

#: A poll is a single HTTP attempt: the wait policy, not the hook, repeats failed polls.
POLL_RETRY = RetryPolicy(max_attempts=1)

__all__ = [
    "Done",
    "GiveUp",
    "Sleep",
    "WaitPolicy",
    "WaitState",
    "check_tuning",
    "explain_failure",
    "is_transient",
    "poll_options",
    "wait_for_tuning",
]


@dataclass(frozen=True)
class Done:
    """The job finished (successfully or not): stop polling."""

    status: TuningStatus


@dataclass(frozen=True)
class Sleep:
    """Poll again after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class GiveUp:
    """Stop waiting without a final status.

    :param error: what ended the wait: a final API error, the last transient one after the failure
        budget ran out (``failures`` > 0), or a :class:`TuningTimeoutError`.
    :param failures: transient failures in a row when the budget ran out, else 0.
    """

    error: GenerativeLanguageError
    failures: int = 0


Decision = Done | Sleep | GiveUp


@dataclass
class WaitState:
    """What a wait remembers between polls (one per wait; the sensor keeps it on the instance).

    :param failures: transient failures in a row.
    :param last_line: the last progress line logged.
    :param last_status: the last status read.
    :param partial: whether polls still ask for partial responses (turned off if the API refuses).
    :param data_stats: the dataset's counts, once the service gave them (logged once; later polls
        no longer ask for them).
    """

    failures: int = 0
    last_line: str | None = None
    last_status: TuningStatus | None = None
    partial: bool = True
    data_stats: DataStats | None = None


@dataclass(frozen=True)
class WaitPolicy:
    """How a wait reacts to each poll (pure; ``now`` is passed in).

    :param poll_interval: seconds between polls of a running job.
    :param deadline: absolute time (epoch seconds) to give up at; ``None`` waits without limit.
    :param max_consecutive_failures: transient failed polls in a row before giving up.
    :param retry_initial_delay: backoff after the first failed poll.
    :param retry_max_delay: cap of that backoff (and of ``Retry-After``).
    """

    poll_interval: float = 30.0
    deadline: float | None = None
    max_consecutive_failures: int = 5
    retry_initial_delay: float = 2.0
    retry_max_delay: float = 120.0
    backoff: RetryPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "poll_interval", validation.seconds("poll_interval", self.poll_interval, allow_zero=True)
        )
        if self.deadline is not None:
            object.__setattr__(self, "deadline", validation.seconds("deadline", self.deadline))
        object.__setattr__(
            self, "max_consecutive_failures", validation.failure_budget(self.max_consecutive_failures)
        )
        for name in ("retry_initial_delay", "retry_max_delay"):
            object.__setattr__(self, name, validation.seconds(name, getattr(self, name), allow_zero=True))
        object.__setattr__(
            self,
            "backoff",
            RetryPolicy(
                max_attempts=self.max_consecutive_failures,
                initial_delay=self.retry_initial_delay,
                max_delay=self.retry_max_delay,
            ),
        )

    def after_status(self, state: WaitState, status: TuningStatus, now: float) -> Decision:
        """Decide after a poll that returned a status.

        :param state: the wait's state (updated).
        :param status: the status read.
        :param now: the current epoch time.
        """
        if status.data_stats is None and state.data_stats is not None:
            status = replace(status, data_stats=state.data_stats)
        state.failures, state.last_status = 0, status
        if status.done:
            return Done(status)
        return self._sleep(self.poll_interval, now)

    def after_error(self, state: WaitState, err: GenerativeLanguageError, now: float) -> Decision:
        """Decide after a poll that failed.

        :param state: the wait's state (updated).
        :param err: the error of the poll.
        :param now: the current epoch time.
        """
        if not is_transient(err):
            return GiveUp(err)
        state.failures += 1
        if state.failures >= self.max_consecutive_failures:
            return GiveUp(err, state.failures)
        retry_after = err.retry_after if isinstance(err, ApiError) else None
        return self._sleep(self.backoff.delay(state.failures, retry_after), now)

    def _sleep(self, seconds: float, now: float) -> Decision:
        if self.deadline is None:
            return Sleep(seconds)
        remaining = self.deadline - now
        if remaining <= 0:
            return GiveUp(TuningTimeoutError("the deadline passed"))
        return Sleep(min(seconds, remaining))

    @staticmethod
    def progress(state: WaitState, status: TuningStatus) -> str | None:
        """Return the progress line to log, or ``None`` when it is the same as the last one.

        :param state: the wait's state (updated).
        :param status: the status read.
        """
        line = status.progress_line()
        if line == state.last_line:
            return None
        state.last_line = line
        return line

    @staticmethod
    def data_stats_line(state: WaitState, status: TuningStatus) -> str | None:
        """Return the data stats line the first time a poll carries data stats, else ``None``.

        :param state: the wait's state (updated).
        :param status: the status read.
        """
        if status.data_stats is None or state.data_stats is not None:
            return None
        state.data_stats = status.data_stats
        return status.data_stats.line()

    def log_status(self, state: WaitState, status: TuningStatus, log: Any, name: str) -> None:
        """Log the progress line when it changed, and the data stats the first time they appear.

        :param state: the wait's state (updated).
        :param status: the status read.
        :param log: the logger of the driver (the task's or the trigger's).
        :param name: what was polled (named when the status does not name the tuned model).
        """
        subject = status.tuned_model or name
        line = self.progress(state, status)
        if line is not None:
            log.info("%s: %s", subject, line)
        stats = self.data_stats_line(state, status)
        if stats is not None:
            log.info("%s: %s", subject, stats)

    @staticmethod
    def timeout_message(name: str, state: WaitState) -> str:
        """The message of a wait that passed its deadline, with the last progress seen.

        :param name: what was polled.
        :param state: the wait's state.
        """
        progress = state.last_status.progress_line() if state.last_status else "no successful poll"
        return f"{name} did not finish before its deadline ({progress})"

    @staticmethod
    def give_up_message(name: str, decision: GiveUp) -> str:
        """The message of a wait that gave up after transient failures (or on a final error).

        :param name: what was polled.
        :param decision: the decision.
        """
        if decision.failures:
            return shorten(f"{decision.failures} consecutive failures polling {name}; last: {decision.error}")
        return shorten(str(decision.error))


def poll_options(version: str, state: WaitState) -> dict[str, Any]:
    """The keyword arguments of a backend's ``poll_call`` for the next poll of a wait.

    :param version: the API version.
    :param state: the wait's state (partial or full; data stats seen or not).
    """
    return {"api_version": version, "partial": state.partial, "data_stats": state.data_stats is None}


def refuses_partial(err: BaseException) -> bool:
    """Whether ``err`` is the API refusing the ``fields`` parameter of a partial poll (400).

    :param err: the error of a partial poll.
    """
    return isinstance(err, InvalidArgumentError) and "field" in err.api_message.lower()


class SyncHook(Protocol):
    """The part of a sync hook the wait needs."""

    def call(self, api_call: ApiCall, *, retry: RetryPolicy | None = None) -> dict[str, Any]: ...

    def default_api_version(self) -> str: ...


def check_tuning(
    hook: SyncHook,
    name: str,
    *,
    api_version: str | None = None,
    backend: str | TuningBackend = "gemini",
    state: WaitState | None = None,
) -> TuningStatus:
    """Poll a tuning job once (one HTTP attempt) and return its status.

    :param hook: a ``GenerativeLanguageHook``.
    :param name: what to poll (normalised by the backend).
    :param api_version: the version to read a job resource with; default: the hook's.
    :param backend: the backend, or its name.
    :param state: the wait's state (a partial poll the API refuses is repeated in full, and
        remembered there).
    :raises GenerativeLanguageError: the poll failed.
    """
    impl = get_backend(backend) if isinstance(backend, str) else backend
    name = impl.normalize(name)
    state = state if state is not None else WaitState()
    version = api_version or hook.default_api_version()
    try:
        resource = hook.call(impl.poll_call(name, **poll_options(version, state)), retry=POLL_RETRY)
    except InvalidArgumentError as err:
        if not (state.partial and refuses_partial(err)):
            raise
        state.partial = False
        resource = hook.call(impl.poll_call(name, api_version=version, partial=False), retry=POLL_RETRY)
    return impl.parse(name, resource)


def explain_failure(
    status: TuningStatus, backend: TuningBackend, fetch: Callable[[ApiCall], dict[str, Any]]
) -> TuningStatus:
    """Return ``status`` with the failure's message when the status itself does not carry it.

    The one place that answers "why did this job fail" (the worker wait, the sensor and the
    operators use it; the trigger does the same with an async ``fetch``). Best effort: when the
    lookup fails, ``status`` is returned as it is.

    :param status: a final status.
    :param backend: the backend of the job.
    :param fetch: sends an :class:`ApiCall` and returns its JSON.
    """
    api_call = backend.failure_call(status)
    if api_call is None:
        return status
    try:
        found = backend.failure_from(fetch(api_call))
    except (ApiError, ApiConnectionError) as err:
        _LOG.debug("could not look up why %s failed: %s", status.tuned_model, err)
        return status
    return status.with_failure(*found) if found else status


def wait_for_tuning(
    hook: Any,
    name: str,
    *,
    poll_interval: float = 30.0,
    deadline: float | None = None,
    max_consecutive_failures: int = 5,
    log: Any = None,
    api_version: str | None = None,
    retry_initial_delay: float = 2.0,
    retry_max_delay: float = 120.0,
    backend: str = "gemini",
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> TuningStatus:
    """Poll until the tuning job finishes, in the worker; return its final status.

    :param hook: a ``GenerativeLanguageHook``.
    :param name: ``tunedModels/<id>/operations/<op>`` or ``tunedModels/<id>`` (or a bare id).
    :param poll_interval: seconds between polls.
    :param deadline: absolute time (epoch seconds) to give up at; ``None`` waits without limit.
    :param max_consecutive_failures: transient failed polls in a row before the last error is raised.
    :param log: a logger for progress lines (each logged once, when it changes); default: this module's.
    :param api_version: API version used to poll a tuned model.
    :param retry_initial_delay: backoff after the first failed poll.
    :param retry_max_delay: cap of that backoff.
    :param backend: the backend's name.
    :param sleep: the function that waits (tests replace it).
    :param clock: the current epoch time (tests replace it).
    :return: the final status, a success.
    :raises TuningFailedError: the job ended FAILED (``TuningCancelledError`` when cancelled),
        with the API's message.
    :raises TuningTimeoutError: the deadline passed first.
    :raises ApiError: a final API error (e.g. 404), or the last transient one after
        ``max_consecutive_failures`` failures in a row.
    """
    impl = get_backend(backend)
    name = impl.normalize(name)
    policy = WaitPolicy(
        poll_interval, deadline, max_consecutive_failures, retry_initial_delay, retry_max_delay
    )
    logger = log if log is not None else _LOG
    state = WaitState()
    while True:
        try:
            status = check_tuning(hook, name, api_version=api_version, backend=impl, state=state)
        except GenerativeLanguageError as err:
            decision = policy.after_error(state, err, clock())
            if isinstance(decision, Sleep):
                logger.warning(
                    "%s: failed poll %d/%d (%s); retrying in %.2fs",
                    name,
                    state.failures,
                    policy.max_consecutive_failures,
                    err,
                    decision.seconds,
                )
        else:
            policy.log_status(state, status, logger, name)
            decision = policy.after_status(state, status, clock())
        if isinstance(decision, Done):
            final = decision.status
            if final.failed:
                explain_failure(final, impl, hook.call).raise_for_failure()
            return final
        if isinstance(decision, GiveUp):
            if isinstance(decision.error, TuningTimeoutError):
                raise TuningTimeoutError(policy.timeout_message(name, state))
            if decision.failures:
                logger.error("%s: %s", name, policy.give_up_message(name, decision))
            raise decision.error
        sleep(decision.seconds)
