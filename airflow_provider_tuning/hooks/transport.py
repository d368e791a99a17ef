"""The transport core under the sync and the async hook: pure, no I/O.

It prepares a request, classifies what came back (a JSON result, a transient error worth repeating,
or a terminal error) and decides, attempt by attempt, what one API call does next. The two drivers
(:mod:`._http` with requests, :mod:`.async_hook` with aiohttp) only send bytes and sleep, as
google-auth splits ``_BaseAuthorizedSession`` from its transports::

    call = Call(prepare_request(base_url, "GET", path), policy, refreshable=True, scrub=auth.scrub)
    while True:
        step = call.on_response(status, headers, body)    # or call.on_error(connection_error)
        # step: the JSON dict (done), Retry(delay) or REAUTHENTICATE; a terminal error is raised

Rules (one place for each):

* **transient** (:func:`is_transient`): the API could not be reached (connection error, timeout, the
  token endpoint down), HTTP 408, 429 or 5xx (but 501 and 505), or a 2xx whose body is not the expected JSON;
* **401**: the credentials are refreshed once and the call repeated (not counted as an attempt);
* **redirects** are never followed (they would re-send credentials elsewhere): a terminal error;
* a call that is not safe to repeat (a create without a client-chosen id) is not repeated after a
  connection error, since the first attempt may have been committed;
* every message from the API is scrubbed of known secrets before it is put in an error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote as url_quote

from airflow_provider_tuning import __version__
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    GenerativeLanguageError,
    InvalidInputError,
    UnexpectedResponseError,
    api_error_from_response,
)
from airflow_provider_tuning.hooks.retry import RetryPolicy, is_retryable_status

log = logging.getLogger("airflow_provider_tuning.hooks.transport")

USER_AGENT = f"airflow-provider-tuning/{__version__}"
#: A path with nothing to percent-encode (every validated resource name gives one).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:~._-]*")
Scrub = Callable[[str], str]


def _no_scrub(text: str) -> str:
    return text


@dataclass(frozen=True)
class PreparedRequest:
    """One API request, ready for any driver.

    :param method: the HTTP method.
    :param url: the absolute URL, without query string.
    :param params: the query parameters (``None`` values already left out).
    :param body: the JSON body as bytes, or ``None``.
    :param headers: headers other than auth (``Content-Type``, ``User-Agent``).
    :param idempotent: whether the request may be sent again after a connection error.
    """

    method: str
    url: str
    params: dict[str, str]
    body: bytes | None
    headers: dict[str, str]
    idempotent: bool = True
    path: str = field(default="", repr=False)

    @property
    def route(self) -> str:
        """``"METHOD /path"``: names the call in messages (no host, no query string)."""
        return f"{self.method} {self.path}"


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def prepare_request(
    base_url: str,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
    content: bytes | None = None,
    content_type: str | None = None,
    idempotent: bool = True,
) -> PreparedRequest:
    """Build a :class:`PreparedRequest`; the body is encoded as strict JSON (no NaN, no infinity).

    :param base_url: scheme, host and optional prefix, without trailing slash.
    :param method: the HTTP method.
    :param path: the API path, starting with ``/``; each segment is percent-encoded as needed.
    :param params: query parameters; ``None`` values are left out.
    :param body: a JSON-serialisable body, or ``None``.
    :param content: raw bytes to send instead of a JSON body (an upload).
    :param content_type: the media type of ``content``.
    :param idempotent: whether the request may be repeated after a connection error.
    :raises InvalidInputError: the body cannot be encoded as JSON.
    """
    route = f"{method} {path}"
    data = None
    headers = {"User-Agent": USER_AGENT}
    if body is not None:
        try:
            data = json.dumps(body, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as err:
            reason = "it nests too deeply" if isinstance(err, RecursionError) else _short(str(err))
            raise InvalidInputError(f"{route}: the request body is not valid JSON: {reason}") from None
        headers["Content-Type"] = "application/json"
    elif content is not None:
        data = bytes(content)
        headers["Content-Type"] = content_type or "application/octet-stream"
    query = {key: _query_value(value) for key, value in params.items() if value is not None} if params else {}
    quoted = path if _PLAIN_PATH.fullmatch(path) else url_quote(path, safe="/:~.-_")
    url = f"{base_url}{quoted}"
    return PreparedRequest(method, url, query, data, headers, idempotent, path)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def parse_json(text: str | bytes) -> Any:
    """Parse a JSON document; one nested too deeply is a ``ValueError``, never a ``RecursionError``.

    :param text: the document.
    :raises ValueError: it is not JSON, or it nests too deeply.
    """
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except RecursionError:  # the C parser stops at the interpreter's recursion limit, cleanly
        raise ValueError("JSON nested too deeply to parse") from None


def _scrub_tree(value: Any, scrub: Scrub) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_tree(item, scrub) for item in value]
    if isinstance(value, dict):
        return {key: _scrub_tree(item, scrub) for key, item in value.items()}
    return value


def classify(
    request: PreparedRequest,
    status: int,
    content: bytes,
    *,
    content_type: str | None = None,
    retry_after: str | None = None,
    scrub: Scrub = _no_scrub,
) -> dict[str, Any] | ApiError:
    """Turn one HTTP answer into the JSON object of a success or the error to raise.

    :param request: the request that was sent.
    :param status: the HTTP status.
    :param content: the raw body.
    :param content_type: the ``Content-Type`` header, for messages.
    :param retry_after: the ``Retry-After`` header, kept on the error.
    :param scrub: removes known secrets from any text taken from the answer.
    :return: the JSON object (``{}`` for an empty body) or an :class:`ApiError` (not raised).
    """
    route = request.route
    if 300 <= status < 400:
        return UnexpectedResponseError(
            status, None, f"unexpected redirect (HTTP {status}); redirects are not followed", request=route
        )
    blank = not content.strip()
    try:
        body = None if blank else parse_json(content)
        problem = None
    except (ValueError, UnicodeDecodeError) as err:
        body, problem = None, str(err) if "nested" in str(err) else None
    if 200 <= status < 300:
        if blank:
            return {}
        if isinstance(body, dict):
            return body
        if problem is None and body is not None:
            problem = f"the response is a JSON {type(body).__name__}, not an object"
        elif problem is None:
            snippet = scrub(_short(content[:200].decode("utf-8", errors="replace"), 80))
            kind = content_type or "no Content-Type"
            problem = f"the response is not JSON ({kind}, {len(content)} bytes): {snippet!r}"
        what = problem
        return UnexpectedResponseError(status, None, what, request=route)
    raw = None
    try:
        error = body.get("error") if isinstance(body, dict) else None
        scrubbed = _scrub_tree(error, scrub) if isinstance(error, dict) else None
    except RecursionError:
        scrubbed, problem = None, "the error body nests too deeply"
    if isinstance(scrubbed, dict):
        body = {"error": scrubbed}
    else:
        body = None
        raw = problem or scrub(content.decode("utf-8", errors="replace"))
    return api_error_from_response(status, body, request=route, raw_text=raw, retry_after=retry_after)


def is_transient(err: BaseException) -> bool:
    """Return whether a call (or a poll) that failed with ``err`` is worth repeating.

    The API could not be reached (including the token endpoint), HTTP 408, 429 or 5xx, or a 2xx
    that is not the expected JSON; any other error (400, 401, 403, 404, 409, a redirect) is final.

    :param err: the exception.
    """
    if isinstance(err, ApiConnectionError):
        return True
    if isinstance(err, UnexpectedResponseError):
        return 200 <= err.http_status < 300
    return isinstance(err, ApiError) and is_retryable_status(err.http_status)


@dataclass(frozen=True)
class Retry:
    """Send the request again after ``delay`` seconds."""

    delay: float


class _Reauthenticate:
    """Refresh the credentials, then send the request again at once."""

    def __repr__(self) -> str:
        return "REAUTHENTICATE"


REAUTHENTICATE = _Reauthenticate()
Step = dict[str, Any] | Retry | _Reauthenticate


class Call:
    """The attempts of one API call: what each outcome leads to.

    :param request: the prepared request.
    :param policy: how many attempts and how long between them.
    :param refreshable: whether a 401 may be answered by refreshing the credentials (not an API key).
    :param scrub: removes known secrets from messages.
    """

    def __init__(
        self,
        request: PreparedRequest,
        policy: RetryPolicy,
        *,
        refreshable: bool,
        scrub: Scrub = _no_scrub,
    ) -> None:
        self.request = request
        self.policy = policy
        self.refreshable = refreshable
        self.scrub = scrub
        self.attempt = 0
        self._reauthenticated = False

    def on_response(self, status: int, content: bytes, *, headers: Mapping[str, str] | None = None) -> Step:
        """Decide after an HTTP answer.

        :param status: the HTTP status.
        :param content: the raw body.
        :param headers: the response headers (``Retry-After``, ``Content-Type``).
        :raises ApiError: the answer is an error that is final, or the attempts are used up.
        """
        self.attempt += 1
        headers = headers or {}
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> HTTP %s", self.request.route, status)
        if status == 401 and self.refreshable and not self._reauthenticated:
            self._reauthenticated = True
            self.attempt -= 1
            log.warning(
                "%s answered HTTP 401; refreshing the credentials and retrying once", self.request.route
            )
            return REAUTHENTICATE
        outcome = classify(
            self.request,
            status,
            content,
            content_type=headers.get("Content-Type"),
            retry_after=headers.get("Retry-After"),
            scrub=self.scrub,
        )
        if isinstance(outcome, dict):
            return outcome
        repeatable = self.request.idempotent or status >= 300
        if repeatable and is_transient(outcome) and self.policy.should_retry(self.attempt):
            return self._retry(f"HTTP {status}", outcome.retry_after)
        raise outcome

    def on_error(self, err: GenerativeLanguageError, *, sent: bool = True) -> Step:
        """Decide after the request could not be sent or answered.

        :param err: the error (an :class:`ApiConnectionError` for a network or token-endpoint
            failure, another error for refused credentials).
        :param sent: whether the request may have reached the API (``False`` when the token
            endpoint failed before it was sent, so repeating it cannot duplicate anything).
        :raises GenerativeLanguageError: ``err`` (with the attempt count) when it is final.
        """
        self.attempt += 1
        repeatable = self.request.idempotent or not sent
        if repeatable and is_transient(err) and self.policy.should_retry(self.attempt):
            return self._retry(str(err).removeprefix(f"{self.request.route}: "), None)
        if isinstance(err, ApiConnectionError):
            note = "" if repeatable else "; not retried, a retry could create a duplicate"
            raise ApiConnectionError(f"{err} (after {self.attempt} attempt(s){note})") from None
        raise err

    def _retry(self, reason: str, retry_after: str | None) -> Retry:
        delay = self.policy.delay(self.attempt, retry_after)
        log.warning(
            "%s failed (%s); retry %d/%d in %.2f s",
            self.request.route,
            self.scrub(reason),
            self.attempt + 1,
            self.policy.max_attempts,
            delay,
        )
        return Retry(delay)
