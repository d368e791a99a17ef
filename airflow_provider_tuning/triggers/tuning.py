"""Deferrable wait for a tuning job: async polling of its operation or of the tuned model.

The trigger never blocks the triggerer's event loop: the connection is read with
``get_async_connection``, everything that may block (parsing the connection, building credentials,
a token refresh, importing aiohttp) runs in a worker thread, and HTTP goes through aiohttp.
All triggers of one event loop that use the same connection share one ``aiohttp.ClientSession``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    InvalidInputError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.hooks.connection import API_VERSIONS
from airflow_provider_tuning.hooks.retry import RETRYABLE_STATUS, RetryPolicy
from airflow_provider_tuning.tuning_status import (
    RPC_CODES,
    TuningStatus,
    is_operation_name,
    normalize_tuning_name,
)

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_tuning.hooks.credentials import RequestAuth

#: Default of ``[generative_language] trigger_max_connections``: at most this many open connections per
#: shared session (one per event loop and conn id). At 100 ms per poll, 32 connections carried about
#: 300 polls/s: about 9,000 waits at the default 30 s poll interval (BENCHMARKS.md, section 1).
DEFAULT_MAX_CONNECTIONS = 32


def max_connections() -> int:
    """Read ``[generative_language] trigger_max_connections`` (a positive integer).

    :raises InvalidInputError: the option is set to something else.
    """
    raw = conf.get("generative_language", "trigger_max_connections", fallback=str(DEFAULT_MAX_CONNECTIONS))
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInputError(
            f"[generative_language] trigger_max_connections must be a positive integer, got {raw!r}"
        )
    return value


# -- one shared aiohttp session per (event loop, conn id) ---------------------------------------------


@dataclass
class _SharedSession:
    session: aiohttp.ClientSession
    users: int = 0


_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedSession]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def shared_session(conn_id: str, *, trust_env: bool = True) -> AsyncIterator[aiohttp.ClientSession]:
    """Lease the ``aiohttp.ClientSession`` shared by every trigger of this event loop using ``conn_id``.

    The session is created on first use and closed when its last user leaves.

    :param conn_id: the Airflow connection id.
    :param trust_env: honour proxy environment variables (set by the session's first user).
    """
    aiohttp = await _import_aiohttp()
    loop = asyncio.get_running_loop()
    per_loop = _SESSIONS.setdefault(loop, {})
    entry = per_loop.get(conn_id)
    if entry is None or entry.session.closed:
        connector = aiohttp.TCPConnector(limit=max_connections())
        session = aiohttp.ClientSession(
            connector=connector, trust_env=trust_env, cookie_jar=aiohttp.DummyCookieJar()
        )
        entry = _SharedSession(session)
        per_loop[conn_id] = entry
    entry.users += 1
    try:
        yield entry.session
    finally:
        entry.users -= 1
        if entry.users == 0:
            if per_loop.get(conn_id) is entry:
                del per_loop[conn_id]
            await entry.session.close()


async def _import_aiohttp() -> Any:
    """Import aiohttp in a worker thread: a first import would block the event loop."""
    import sys

    module = sys.modules.get("aiohttp")
    if module is None:
        import importlib

        module = await asyncio.to_thread(importlib.import_module, "aiohttp")
    return module


# -- poll outcomes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """A poll that did not return a parseable resource."""

    message: str
    transient: bool
    http_status: int | None = None
    rpc_status: str | None = None
    retry_after: str | None = None
    unauthorized: bool = False


class TuningOperationTrigger(BaseTrigger):
    """Poll a tuning operation (or a tuned model) until it finishes, then yield exactly one event.

    Events (plain JSON):

    * ``{"status": "success", "tuned_model": ..., "state": "ACTIVE", "operation": {...}}``
      (or ``"model": {...}`` when a tuned model is polled);
    * ``{"status": "failed", "tuned_model": ..., "message": <API's message>, "code": <rpc code or None>,
      "state": "FAILED" | "CANCELLED", "operation" | "model": {...}}`` when the job failed, or
      ``{..., "state": None, "http_status": 404, "rpc_status": "NOT_FOUND"}`` when the API refused
      the poll (a 4xx other than 408/429; a 401 only after one credential refresh);
    * ``{"status": "timeout", "tuned_model": ..., "message": ..., "deadline": ...}``;
    * ``{"status": "error", "tuned_model": ..., "message": ..., "failures": N, "http_status": ...}``
      after ``max_consecutive_failures`` transient failures in a row.

    :param conn_id: the Airflow connection id (the only thing that carries credentials).
    :param name: ``tunedModels/<id>/operations/<op>`` (polled at ``GET /{operation_api_version}/{name}``)
        or ``tunedModels/<id>`` (polled at ``GET /{api_version}/{name}``).
    :param api_version: API version used to poll a tuned model; default: the connection's.
    :param poll_interval: seconds between polls.
    :param deadline: absolute time (epoch seconds) after which the trigger yields a timeout event;
        ``None`` waits without limit. Absolute, so a triggerer restart does not reset it.
    :param max_consecutive_failures: transient failures in a row (connection errors, timeouts,
        408, 429, 5xx, a 200 that is not the expected JSON) before giving up with an error event.
    :param operation_api_version: API version used to poll an operation (``v1`` is the documented route).
    :param request_timeout: total seconds allowed for one HTTP request.
    :param retry_initial_delay: backoff before the first retry after a transient failure.
    :param retry_max_delay: cap of the backoff (also caps ``Retry-After``).
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
    ) -> None:
        super().__init__()
        if not isinstance(conn_id, str) or not conn_id:
            raise InvalidInputError(f"conn_id must be a non-empty string, got {conn_id!r}")
        _positive("poll_interval", poll_interval, allow_zero=True)
        _positive("request_timeout", request_timeout)
        _positive("retry_initial_delay", retry_initial_delay, allow_zero=True)
        _positive("retry_max_delay", retry_max_delay, allow_zero=True)
        if deadline is not None:
            _positive("deadline", deadline)
        if api_version is not None and api_version not in API_VERSIONS:
            raise InvalidInputError(
                f"api_version must be one of {', '.join(API_VERSIONS)}, got {api_version!r}"
            )
        if operation_api_version not in API_VERSIONS:
            raise InvalidInputError(
                f"operation_api_version must be one of {', '.join(API_VERSIONS)}, "
                f"got {operation_api_version!r}"
            )
        if (
            not isinstance(max_consecutive_failures, int)
            or isinstance(max_consecutive_failures, bool)
            or max_consecutive_failures < 1
        ):
            raise InvalidInputError(
                f"max_consecutive_failures must be an integer >= 1, got {max_consecutive_failures!r}"
            )
        self.conn_id = conn_id
        self.name = normalize_tuning_name(name)
        if api_version == "v1" and not is_operation_name(self.name):
            raise InvalidInputError("tuned models cannot be read in v1; use v1beta or v1beta3")
        self.api_version = api_version
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.max_consecutive_failures = max_consecutive_failures
        self.operation_api_version = operation_api_version
        self.request_timeout = float(request_timeout)
        self.retry_initial_delay = float(retry_initial_delay)
        self.retry_max_delay = float(retry_max_delay)
        self._session: aiohttp.ClientSession | None = None

    @property
    def polls_operation(self) -> bool:
        """Whether this trigger polls an operation (else a tuned model)."""
        return is_operation_name(self.name)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the kwargs that re-create this trigger (no secret: only the conn id)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "name": self.name,
                "api_version": self.api_version,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_failures": self.max_consecutive_failures,
                "operation_api_version": self.operation_api_version,
                "request_timeout": self.request_timeout,
                "retry_initial_delay": self.retry_initial_delay,
                "retry_max_delay": self.retry_max_delay,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job finishes, fails, times out or keeps failing; yield one event."""
        try:
            payload = await self._wait()
        except Exception as err:
            # A missing connection or a bad connection setting: permanent, and told once.
            self.log.error("Waiting for %s failed: %s: %s", self.name, type(err).__name__, err)
            payload = self._event("error", message=f"{type(err).__name__}: {err}")
        yield TriggerEvent(payload)

    # -- the polling loop ------------------------------------------------------------------------

    async def _wait(self) -> dict[str, Any]:
        settings, auth = await self._connect()
        version = (
            self.operation_api_version if self.polls_operation else (self.api_version or settings.api_version)
        )
        path = f"/{version}/{self.name}"
        url = f"{settings.base_url}{path}"

        policy = RetryPolicy(
            max_attempts=self.max_consecutive_failures,
            initial_delay=self.retry_initial_delay,
            max_delay=self.retry_max_delay,
        )
        failures = 0
        reauthenticated = False
        last_line: str | None = None
        last_status: TuningStatus | None = None
        # Like the hook: proxies from the environment, except for a loopback API (the emulator).
        async with shared_session(self.conn_id, trust_env=not settings.is_loopback) as session:
            self._session = session
            while True:
                outcome = await self._poll(session, auth, url, path)
                delay = self.poll_interval
                if isinstance(outcome, TuningStatus):
                    failures, reauthenticated, last_status = 0, False, outcome
                    line = outcome.progress_line()
                    if line != last_line:
                        self.log.info("%s: %s", outcome.tuned_model or self.name, line)
                        last_line = line
                    if outcome.done:
                        return await self._final_event(session, auth, settings.base_url, outcome)
                elif outcome.unauthorized and not reauthenticated:
                    reauthenticated = True
                    self.log.warning("%s: 401 from the API; refreshing credentials once", path)
                    await asyncio.to_thread(auth.invalidate)
                    delay = 0.0
                elif not outcome.transient:
                    return self._event(
                        "failed",
                        message=outcome.message,
                        code=RPC_CODES.get(outcome.rpc_status or ""),
                        state=None,
                        http_status=outcome.http_status,
                        rpc_status=outcome.rpc_status,
                    )
                else:
                    failures += 1
                    if failures >= self.max_consecutive_failures:
                        self.log.error(
                            "%s: giving up after %d consecutive failures: %s", path, failures, outcome.message
                        )
                        return self._event(
                            "error",
                            message=f"{failures} consecutive failures polling {path}; "
                            f"last: {outcome.message}",
                            failures=failures,
                            http_status=outcome.http_status,
                        )
                    delay = policy.delay(failures, outcome.retry_after)
                    self.log.warning(
                        "%s: transient failure %d/%d (%s); retrying in %.2fs",
                        path,
                        failures,
                        self.max_consecutive_failures,
                        outcome.message,
                        delay,
                    )
                if self.deadline is not None:
                    remaining = self.deadline - time.time()
                    if remaining <= 0:
                        return self._timeout_event(last_status)
                    delay = min(delay, remaining)
                await asyncio.sleep(delay)

    async def _connect(self) -> tuple[Any, RequestAuth]:
        """Read the connection and build credentials, without blocking the event loop."""
        await asyncio.to_thread(_import_dependencies)
        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_tuning.hooks.connection import ConnectionSettings
        from airflow_provider_tuning.hooks.credentials import build_request_auth

        conn = await get_async_connection(self.conn_id)
        # from_connection reads extra_dejson (which masks secrets with a blocking call) and
        # credentials may read a key file: both run in a worker thread.
        settings = await asyncio.to_thread(ConnectionSettings.from_connection, conn)
        auth = await asyncio.to_thread(build_request_auth, settings)
        return settings, auth

    async def _poll(
        self, session: aiohttp.ClientSession, auth: RequestAuth, url: str, path: str
    ) -> TuningStatus | _Failure:
        """GET the operation or tuned model once and classify the outcome."""
        parsed = await self._get_json(session, auth, url, path)
        try:
            if isinstance(parsed, _Failure):
                failure = parsed
            elif self.polls_operation:
                return TuningStatus.from_operation(parsed, request=f"GET {path}")
            else:
                return TuningStatus.from_tuned_model(parsed, request=f"GET {path}")
        except UnexpectedResponseError as err:
            failure = _Failure(str(err), transient=True, http_status=200)
        # An API message could echo a credential: scrub every known secret from it.
        return dataclasses.replace(failure, message=auth.scrub(failure.message))

    async def _get_json(self, session: aiohttp.ClientSession, auth: RequestAuth, url: str, path: str) -> Any:
        aiohttp = await _import_aiohttp()
        from airflow_provider_tuning.exceptions import api_error_from_response

        request = f"GET {path}"
        try:
            # May refresh a token (blocking HTTP): off the event loop.
            headers = await asyncio.to_thread(auth.headers, "GET", url)
        except ApiConnectionError as err:
            return _Failure(str(err), transient=True)
        except ApiError as err:
            return _Failure(
                err.api_message, transient=False, http_status=err.http_status, rpc_status=err.status
            )
        try:
            budget = self._request_budget()
            timeout = aiohttp.ClientTimeout(total=budget, sock_connect=min(10.0, budget))
            async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as resp:
                status = resp.status
                raw = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            return _Failure(f"{request}: timed out", transient=True)
        except aiohttp.ClientError as err:
            return _Failure(f"{request}: {type(err).__name__}: {err}", transient=True)

        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        if status == 200:
            if body is None:
                snippet = " ".join(text.split())[:120]
                bad = UnexpectedResponseError(
                    200, None, f"response is not JSON: {snippet!r}", request=request
                )
                return _Failure(str(bad), transient=True, http_status=200)
            return body
        error = api_error_from_response(status, body, request=request, raw_text=text)
        message = error.api_message or str(error)
        if status in RETRYABLE_STATUS or status >= 500:
            return _Failure(
                str(error),
                transient=True,
                http_status=status,
                rpc_status=error.status,
                retry_after=retry_after,
            )
        return _Failure(
            message,
            transient=False,
            http_status=status,
            rpc_status=error.status,
            unauthorized=status == 401,
        )

    async def _final_event(
        self, session: aiohttp.ClientSession, auth: RequestAuth, base_url: str, status: TuningStatus
    ) -> dict[str, Any]:
        key = "operation" if self.polls_operation else "model"
        if status.succeeded:
            return self._event(
                "success", tuned_model=status.tuned_model, state=status.state, **{key: status.resource}
            )
        message, code = status.error_message, status.error_code
        if not self.polls_operation and status.tuned_model:
            # A FAILED TunedModel carries no error: its operation does (best effort).
            detail = await self._operation_error(session, auth, base_url, status.tuned_model)
            if detail is not None:
                code, message = detail
        return self._event(
            "failed",
            tuned_model=status.tuned_model,
            state=status.state,
            message=message or f"state {status.state}",
            code=code,
            http_status=None,
            **{key: status.resource},
        )

    async def _operation_error(
        self, session: aiohttp.ClientSession, auth: RequestAuth, base_url: str, tuned_model: str
    ) -> tuple[int | None, str] | None:
        path = f"/{self.operation_api_version}/{tuned_model}/operations"
        body = await self._get_json(session, auth, f"{base_url}{path}", path)
        if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
            return None
        for op in reversed(body["operations"]):
            try:
                found = TuningStatus.from_operation(op)
            except UnexpectedResponseError:
                continue
            if found.failed and found.error_message:
                return found.error_code, auth.scrub(found.error_message)
        return None

    def _request_budget(self) -> float:
        """Seconds one request may take: ``request_timeout``, shortened near the deadline."""
        if self.deadline is None:
            return self.request_timeout
        return max(1.0, min(self.request_timeout, self.deadline - time.time() + 1.0))

    def _timeout_event(self, last: TuningStatus | None) -> dict[str, Any]:
        progress = last.progress_line() if last else "no successful poll"
        message = f"{self.name} did not finish before its deadline ({progress})"
        self.log.error("%s", message)
        return self._event("timeout", message=message, deadline=self.deadline, progress=progress)

    def _event(self, status: str, **fields: Any) -> dict[str, Any]:
        tuned_model = fields.pop("tuned_model", None) or self.name.split("/operations/")[0]
        return {"status": status, "tuned_model": tuned_model, "name": self.name, **fields}


# Modules imported lazily on the event loop by the trigger or by Airflow's async connection
# lookup; a first import there would block the loop, so they are imported in a worker thread.
_LAZY_MODULES = (
    "aiohttp",
    "asgiref.sync",
    "airflow.providers.common.compat.connection",
    "airflow.sdk.execution_time.cache",
    "airflow.sdk.execution_time.supervisor",
    "airflow_provider_tuning.hooks.connection",
    "airflow_provider_tuning.hooks.credentials",
)


def _import_dependencies() -> None:
    """Import every module in :data:`_LAZY_MODULES` (run in a worker thread)."""
    import importlib

    for name in _LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # e.g. another Airflow version without that module
            continue


def _positive(label: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidInputError(f"{label} must be a number {bound}, got {value!r}")
