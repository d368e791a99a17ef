"""The sync driver of the transport: one pooled ``requests.Session`` sends what :mod:`.transport` decides.

Everything but sending bytes and sleeping (request preparation, classification, retries, the
one-refresh-on-401 rule) lives in :mod:`.transport`, shared with the async hook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_tuning.exceptions import ApiConnectionError, GenerativeLanguageError
from airflow_provider_tuning.hooks.credentials import RequestAuth
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.transport import REAUTHENTICATE, USER_AGENT, Call, Retry, prepare_request

if TYPE_CHECKING:
    from airflow_provider_tuning.hooks.ratelimit import SlidingWindowRateLimiter

log = logging.getLogger("airflow_provider_tuning.hooks.generative_language")

_TRANSIENT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class RateLimitedHTTPAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` that takes a rate-limiter slot before every send.

    Every HTTP request the session sends goes through :meth:`send`, so retries (after a 429 or a
    5xx) count against the limit too.

    :param limiter: the limiter to acquire from, or ``None`` for no limit.
    """

    def __init__(self, *args: Any, limiter: SlidingWindowRateLimiter | None = None, **kwargs: Any) -> None:
        self.limiter = limiter
        super().__init__(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if self.limiter is not None:
            self.limiter.acquire()
        return super().send(request, *args, **kwargs)


def new_session(
    *, pool_size: int = 10, trust_env: bool = True, limiter: SlidingWindowRateLimiter | None = None
) -> requests.Session:
    """Return a pooled session that never retries or redirects on its own (the transport decides).

    :param pool_size: connections kept per host: at least the number of concurrent calls.
    :param trust_env: honour proxy and ``.netrc`` settings from the environment.
    :param limiter: a rate limiter every request (retries included) must pass, if any.
    """
    session = requests.Session()
    adapter = RateLimitedHTTPAdapter(
        pool_connections=2, pool_maxsize=pool_size, max_retries=0, limiter=limiter
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = trust_env
    return session


def describe_error(err: BaseException) -> str:
    """A short, secret-free description of a requests transport error (no URL, no headers).

    :param err: the exception requests raised.
    """
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
    """Sends API calls to one base URL with auth headers, timeouts and retries; returns JSON dicts.

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
        content: bytes | None = None,
        content_type: str | None = None,
        base_url: str | None = None,
    ) -> dict[str, Any]:
        """Send one API call and return its JSON object.

        :param method: HTTP method.
        :param path: API path starting with ``/`` (e.g. ``/v1beta/tunedModels``).
        :param params: query parameters (``None`` values are left out).
        :param body: JSON body, or ``None`` for no body.
        :param retry_connection_errors: retry after a connection error or timeout; ``False`` for
            a call that must not run twice (a create without a client-chosen id).
        :param retry: a policy for this call instead of the client's.
        :param content: raw bytes to send instead of ``body`` (an upload).
        :param content_type: the media type of ``content``.
        :param base_url: another host of the same credentials (Cloud Storage beside Vertex AI).
        :raises ApiError: the API answered with an error (after retries for 408/429/5xx).
        :raises ApiConnectionError: the API could not be reached (after retries).
        """
        prepared = prepare_request(
            base_url or self.base_url,
            method,
            path,
            params=params,
            body=body,
            content=content,
            content_type=content_type,
            idempotent=retry_connection_errors,
        )
        call = Call(prepared, retry or self.retry, refreshable=self.auth.refreshable, scrub=self.auth.scrub)
        while True:
            step = self._attempt(call)
            if step is REAUTHENTICATE:
                self.auth.invalidate()
            elif isinstance(step, Retry):
                self.sleep(step.delay)
            else:
                return step  # type: ignore[no-any-return]

    def _attempt(self, call: Call) -> Any:
        prepared = call.request
        try:
            headers = {**prepared.headers, **self.auth.headers(prepared.method, prepared.url)}
        except GenerativeLanguageError as err:  # the token endpoint failed: nothing was sent
            return call.on_error(err, sent=False)
        try:
            response = self.session.request(
                prepared.method,
                prepared.url,
                params=prepared.params or None,
                data=prepared.body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except _TRANSIENT_ERRORS as err:
            return call.on_error(ApiConnectionError(f"{prepared.route}: {describe_error(err)}"))
        except requests.exceptions.RequestException as err:
            # e.g. an invalid header value: its message could quote the value, so no chaining
            raise ApiConnectionError(f"{prepared.route}: {describe_error(err)}") from None
        return call.on_response(response.status_code, response.content, headers=response.headers)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()
