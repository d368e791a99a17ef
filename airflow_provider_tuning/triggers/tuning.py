"""Deferrable wait for a tuning job: the shared wait policy, driven on the triggerer's event loop.

The trigger holds no HTTP code (as ``HttpTrigger`` awaits ``HttpAsyncHook``): it awaits
:class:`~airflow_provider_tuning.hooks.async_hook.GenerativeLanguageAsyncHook`, asks its backend
what to poll and how to read it, and lets :class:`~airflow_provider_tuning.waiting.WaitPolicy`
decide when to poll again, give up or finish. Its events are small (a summary, never the job's
snapshots): Airflow stores them in the metadata database and prints them in the task log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_tuning import validation
from airflow_provider_tuning.backends import TuningBackend, get_backend
from airflow_provider_tuning.exceptions import (
    ApiError,
    GenerativeLanguageError,
    InvalidArgumentError,
    InvalidInputError,
    TuningTimeoutError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.hooks.async_hook import (
    DEFAULT_MAX_CONNECTIONS,
    GenerativeLanguageAsyncHook,
    async_hook_for,
    max_connections,
)
from airflow_provider_tuning.hooks.connection import API_VERSIONS
from airflow_provider_tuning.tuning_status import RPC_CODES, TuningStatus, shorten
from airflow_provider_tuning.waiting import (
    POLL_RETRY,
    Done,
    GiveUp,
    Sleep,
    WaitPolicy,
    WaitState,
    poll_options,
    refuses_partial,
)

__all__ = ["DEFAULT_MAX_CONNECTIONS", "TuningOperationTrigger", "max_connections"]


class TuningOperationTrigger(BaseTrigger):
    """Poll a tuning job (its operation or the tuned model) until it ends, then yield one event.

    Events (plain JSON, under 4 KB):

    * ``{"status": "success", "tuned_model": ..., "name": ..., "summary": {state, steps, loss...}}``;
    * ``{"status": "failed", "tuned_model": ..., "message": <API's message>, "code": <rpc code or None>,
      "state": "FAILED" | "CANCELLED", "summary": {...}}`` when the job failed, or
      ``{..., "state": None, "http_status": 404, "rpc_status": "NOT_FOUND"}`` when the API refused
      the poll (a 4xx other than 408/429; a 401 only after one credential refresh);
    * ``{"status": "timeout", "tuned_model": ..., "message": ..., "deadline": ..., "progress": ...}``;
    * ``{"status": "error", "tuned_model": ..., "message": ..., "failures": N, "http_status": ...}``
      after ``max_consecutive_failures`` transient failures in a row (or a bad connection).

    :param conn_id: the Airflow connection id (the only thing that carries credentials).
    :param name: ``tunedModels/<id>/operations/<op>`` or ``tunedModels/<id>``.
    :param api_version: API version used to poll a tuned model; default: the connection's.
    :param poll_interval: seconds between polls.
    :param deadline: absolute time (epoch seconds) after which the trigger yields a timeout event;
        ``None`` waits without limit. Absolute, so a triggerer restart does not reset it.
    :param max_consecutive_failures: transient failures in a row (connection errors, timeouts,
        408, 429, 5xx, a 2xx that is not the expected JSON) before giving up with an error event.
    :param operation_api_version: accepted for triggers serialized by earlier releases; operations
        are always read on ``v1``, the route Google documents.
    :param request_timeout: total seconds allowed for one HTTP request.
    :param retry_initial_delay: backoff before the first retry after a transient failure.
    :param retry_max_delay: cap of the backoff (also caps ``Retry-After``).
    :param cancel_on_kill: cancel the job when a user kills the deferred task (``on_kill``).
    :param backend: the tuning service: ``gemini`` (the Generative Language API; ``conn_id`` a
        ``generativelanguage`` connection) or ``vertex`` (Vertex AI tuning jobs; ``conn_id`` a
        ``google_cloud_platform`` connection, ``name`` a tuning job).
    """

    def __init__(
        self,
        conn_id: str,
        name: str,
        api_version: str | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_consecutive_failures: int = 5,
        operation_api_version: str = "v1",
        request_timeout: float = 60.0,
        retry_initial_delay: float = 2.0,
        retry_max_delay: float = 120.0,
        backend: str = "gemini",
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(conn_id, str) or not conn_id:
            raise InvalidInputError(f"conn_id must be a non-empty string, got {validation.quote(conn_id)}")
        versions = ("v1", "v1beta1") if backend == "vertex" else API_VERSIONS
        if api_version is not None and api_version not in versions:
            raise InvalidInputError(
                f"api_version must be one of {', '.join(versions)}, got {validation.quote(api_version)}"
            )
        if operation_api_version not in API_VERSIONS:
            raise InvalidInputError(
                f"operation_api_version must be one of {', '.join(API_VERSIONS)}, "
                f"got {validation.quote(operation_api_version)}"
            )
        self.backend = backend
        self.conn_id = conn_id
        self.name = get_backend(backend).normalize(name)
        if backend == "gemini" and api_version == "v1" and not validation.is_operation_name(self.name):
            raise InvalidInputError("tuned models cannot be read in v1; use v1beta or v1beta3")
        self.api_version = api_version
        # The policy validates every duration (finite, not negative) and the failure budget.
        self.policy = WaitPolicy(
            poll_interval, deadline, max_consecutive_failures, retry_initial_delay, retry_max_delay
        )
        self.request_timeout = validation.seconds("request_timeout", request_timeout)
        if not isinstance(cancel_on_kill, bool):
            raise InvalidInputError(
                f"cancel_on_kill must be True or False, got {validation.quote(cancel_on_kill)}"
            )
        self.cancel_on_kill = cancel_on_kill

    @property
    def deadline(self) -> float | None:
        """The absolute deadline (epoch seconds), if any."""
        return self.policy.deadline

    @property
    def polls_operation(self) -> bool:
        """Whether this trigger polls an operation (else a tuned model)."""
        return validation.is_operation_name(self.name)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the kwargs that re-create this trigger (no secret: only the conn id)."""
        policy = self.policy
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "name": self.name,
                "api_version": self.api_version,
                "poll_interval": policy.poll_interval,
                "deadline": policy.deadline,
                "max_consecutive_failures": policy.max_consecutive_failures,
                "request_timeout": self.request_timeout,
                "retry_initial_delay": policy.retry_initial_delay,
                "retry_max_delay": policy.retry_max_delay,
                "backend": self.backend,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def on_kill(self) -> None:
        """A user killed the deferred task (mark failed, clear...): cancel the job, when
        ``cancel_on_kill`` is set and the service can (never on a triggerer restart or a timeout)."""
        if not self.cancel_on_kill:
            return
        call = get_backend(self.backend).cancel_call(self.name)
        if call is None:
            self.log.warning("%s cannot be cancelled (no cancel route for it); it keeps running", self.name)
            return
        async with async_hook_for(self.backend, self.conn_id, self.name, request_timeout=30.0) as hook:
            await hook.call(call, timeout=30.0)
        self.log.info("Cancelled %s: the task was killed", self.name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job finishes, fails, times out or keeps failing; yield one event."""
        try:
            payload = await self._wait()
        except Exception as err:
            # A missing connection or a bad connection setting: permanent, and told once.
            message = shorten(f"{type(err).__name__}: {err}")
            self.log.error("Waiting for %s failed: %s", self.name, message)
            payload = self._event("error", message=message)
        yield TriggerEvent(payload)

    async def _wait(self) -> dict[str, Any]:
        backend = get_backend(self.backend)
        state = WaitState()
        async with async_hook_for(
            self.backend, self.conn_id, self.name, request_timeout=self.request_timeout
        ) as hook:
            version = self.api_version or hook.default_api_version()
            while True:
                try:
                    status = await self._poll(hook, backend, version, state)
                except GenerativeLanguageError as err:
                    decision = self.policy.after_error(state, err, time.time())
                    if isinstance(decision, Sleep):
                        self.log.warning(
                            "%s: transient failure %d/%d (%s); retrying in %.2fs",
                            self.name,
                            state.failures,
                            self.policy.max_consecutive_failures,
                            err,
                            decision.seconds,
                        )
                else:
                    self.policy.log_status(state, status, self.log, self.name)
                    decision = self.policy.after_status(state, status, time.time())
                if isinstance(decision, Done):
                    return await self._final_event(hook, backend, decision.status)
                if isinstance(decision, GiveUp):
                    return self._give_up_event(decision, state)
                await asyncio.sleep(decision.seconds)

    async def _poll(
        self, hook: GenerativeLanguageAsyncHook, backend: TuningBackend, version: str, state: WaitState
    ) -> TuningStatus:
        """One poll (one HTTP attempt); a partial poll the API refuses is repeated in full."""
        timeout = self._request_budget()

        def parse(resource: dict[str, Any]) -> TuningStatus:
            return backend.parse(self.name, resource)

        try:
            try:
                call = backend.poll_call(self.name, **poll_options(version, state))
                status: TuningStatus = await hook.call(call, retry=POLL_RETRY, timeout=timeout, then=parse)
            except InvalidArgumentError as err:
                if not (state.partial and refuses_partial(err)):
                    raise
                state.partial = False
                call = backend.poll_call(self.name, api_version=version, partial=False)
                status = await hook.call(call, retry=POLL_RETRY, timeout=timeout, then=parse)
        except UnexpectedResponseError as err:  # its text may quote the answer: scrubbed
            raise UnexpectedResponseError(err.http_status, None, hook.scrub(err.api_message)) from None
        return status

    async def _final_event(
        self, hook: GenerativeLanguageAsyncHook, backend: TuningBackend, status: TuningStatus
    ) -> dict[str, Any]:
        if status.succeeded:
            return self._event("success", tuned_model=status.tuned_model, summary=status.summary())
        failure_call = backend.failure_call(status)
        if failure_call is not None:  # "why did it fail": the same lookup as explain_failure
            try:
                found = backend.failure_from(await hook.call(failure_call, timeout=self._request_budget()))
            except GenerativeLanguageError as err:
                self.log.info("Could not look up why %s failed: %s", status.tuned_model, err)
                found = None
            if found is not None:
                status = status.with_failure(found[0], hook.scrub(found[1]))
        return self._event(
            "failed",
            tuned_model=status.tuned_model,
            state=status.state,
            message=shorten(status.error_message or f"state {status.state}"),
            code=status.error_code,
            http_status=None,
            summary=status.summary(),
        )

    def _give_up_event(self, decision: GiveUp, state: WaitState) -> dict[str, Any]:
        err = decision.error
        if isinstance(err, TuningTimeoutError):
            message = self.policy.timeout_message(self.name, state)
            self.log.error("%s", message)
            progress = state.last_status.progress_line() if state.last_status else "no successful poll"
            return self._event("timeout", message=message, deadline=self.policy.deadline, progress=progress)
        http_status = err.http_status if isinstance(err, ApiError) else None
        if decision.failures:
            message = self.policy.give_up_message(self.name, decision)
            self.log.error("%s: giving up: %s", self.name, message)
            return self._event("error", message=message, failures=decision.failures, http_status=http_status)
        rpc_status = err.status if isinstance(err, ApiError) else None
        message = err.api_message if isinstance(err, ApiError) else str(err)
        return self._event(
            "failed",
            message=shorten(message),
            code=RPC_CODES.get(rpc_status or ""),
            state=None,
            http_status=http_status,
            rpc_status=rpc_status,
        )

    def _request_budget(self) -> float:
        """Seconds one request may take: ``request_timeout``, shortened near the deadline."""
        deadline = self.policy.deadline
        if deadline is None:
            return self.request_timeout
        return max(1.0, min(self.request_timeout, deadline - time.time() + 1.0))

    def _event(self, status: str, **fields: Any) -> dict[str, Any]:
        tuned_model = fields.pop("tuned_model", None) or get_backend(self.backend).subject(self.name)
        return {"status": status, "tuned_model": tuned_model, "name": self.name, **fields}
