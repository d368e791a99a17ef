"""The hook's HTTP layer: one pooled ``requests.Session``, timeouts, retries and error mapping."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_tuning import __version__
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    InvalidInputError,
    UnexpectedResponseError,
    api_error_from_response,
)
from airflow_provider_tuning.hooks.credentials import RequestAuth
from airflow_provider_tuning.hooks.retry import RetryPolicy, is_retryable_status

log = logging.getLogger("airflow_provider_tuning.hooks.generative_language")

USER_AGENT = f"airflow-provider-tuning/{__version__}"
_TRANSIENT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def new_session(*, pool_size: int = 10, trust_env: bool = True) -> requests.Session:
    """Return a pooled session that never retries on its own (the retry loop is ours).

    :param pool_size: connections kept per host.
    :param trust_env: honour proxy and ``.netrc`` settings from the environment.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = trust_env
    return session


def _describe(err: BaseException) -> str:
    """A short, secret-free description of a transport error (no URL, no headers)."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(err, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "connection dropped while reading the response"
    if isinstance(err, requests.exceptions.ConnectionError):
        return "connection error"
    return type(err).__name__


class ApiClient:
    """Sends requests to one base URL with auth headers, timeouts and retries; returns JSON dicts.

    :param base_url: e.g. ``https://generativelanguage.googleapis.com`` (no trailing slash).
    :param auth: the auth headers provider.
    :param session: the pooled session (one per hook).
    :param timeout: ``(connect, read)`` timeout of every request, in seconds.
    :param retry: the retry policy.
    :param sleep: the function used to wait between attempts (tests replace it).
    """

    def __init__(
        self,
        base_url: str,
        auth: RequestAuth,
        session: requests.Session,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.auth = auth
        self.session = session
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r}, auth={self.auth!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry_connection_errors: bool = True,
        retry: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """Send one API call and return its JSON object.

        :param method: HTTP method.
        :param path: API path starting with ``/`` (e.g. ``/v1beta/tunedModels``).
        :param params: query parameters (``None`` values are left out).
        :param body: JSON body, or ``None`` for no body.
        :param retry_connection_errors: retry after a connection error or timeout; ``False`` for
            a call that must not run twice (a create without a client-chosen id).
        :param retry: a policy for this call instead of the client's.
        :raises ApiError: the API answered with an error (after retries for 408/429/5xx).
        :raises ApiConnectionError: the API could not be reached (after retries).
        """
        policy = retry or self.retry
        route = f"{method} {path}"
        url = f"{self.base_url}{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        data = None
        if body is not None:
            try:
                data = json.dumps(body, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as err:
                raise InvalidInputError(f"{route}: the request body is not valid JSON: {err}") from None
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            try:
                headers = self.auth.headers(method, url)
                if data is not None:
                    headers["Content-Type"] = "application/json"
                response = self.session.request(
                    method,
                    url,
                    params=query or None,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except ApiConnectionError as err:  # the token endpoint is unreachable
                if policy.should_retry(attempt):
                    self._wait(route, "token endpoint unreachable", attempt, policy, None)
                    continue
                raise ApiConnectionError(f"{route}: {err} (after {attempt} attempt(s))") from None
            except _TRANSIENT_ERRORS as err:
                reason = _describe(err)
                if retry_connection_errors and policy.should_retry(attempt):
                    self._wait(route, reason, attempt, policy, None)
                    continue
                note = "" if retry_connection_errors else "; not retried, a retry could create a duplicate"
                raise ApiConnectionError(f"{route}: {reason} (after {attempt} attempt(s){note})") from err
            except requests.exceptions.RequestException as err:
                # e.g. an invalid header value: its message could quote the value, so no chaining
                raise ApiConnectionError(f"{route}: {_describe(err)}") from None

            status = response.status_code
            log.debug("%s -> HTTP %s", route, status)
            if status == 401 and self.auth.refreshable and not reauthenticated:
                reauthenticated = True
                attempt -= 1
                log.warning("%s answered HTTP 401; refreshing the credentials and retrying once", route)
                self.auth.invalidate()
                continue
            if is_retryable_status(status) and policy.should_retry(attempt):
                self._wait(route, f"HTTP {status}", attempt, policy, response.headers.get("Retry-After"))
                continue
            if status >= 300:
                raise self._error(response, route)
            return self._json(response, route)

    def _wait(
        self, route: str, reason: str, attempt: int, policy: RetryPolicy, retry_after: str | None
    ) -> None:
        delay = policy.delay(attempt, retry_after)
        log.warning(
            "%s failed (%s); retry %d/%d in %.2f s",
            route,
            reason,
            attempt + 1,
            policy.max_attempts,
            delay,
        )
        self.sleep(delay)

    def _error(self, response: requests.Response, route: str) -> ApiError:
        status = response.status_code
        if status < 400:
            return UnexpectedResponseError(
                status,
                None,
                f"unexpected redirect (HTTP {status}); redirects are not followed",
                request=route,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = dict(body["error"])
            if isinstance(error.get("message"), str):
                error["message"] = self.auth.scrub(error["message"])
            body = {"error": error}
        raw = None if body is not None else self.auth.scrub(response.text)
        return api_error_from_response(status, body, request=route, raw_text=raw)

    def _json(self, response: requests.Response, route: str) -> dict[str, Any]:
        content = response.content
        if not content.strip():
            return {}
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no Content-Type")
            raise UnexpectedResponseError(
                response.status_code,
                None,
                f"the response is not JSON ({kind}, {len(content)} bytes)",
                request=route,
            ) from None
        if not isinstance(data, dict):
            raise UnexpectedResponseError(
                response.status_code,
                None,
                f"the response is a JSON {type(data).__name__}, not an object",
                request=route,
            )
        return data

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()
