"""One exception class per outcome a pipeline may want to branch on.

API errors carry the HTTP status and the ``google.rpc.Status`` body (``error.status`` and
``error.message``) of the response. Messages never contain credentials: they are built from the
API's own error text and the request's method and path (never the query string or headers).
"""

from __future__ import annotations

from typing import Any


class GenerativeLanguageError(Exception):
    """Base class of every error raised by this provider."""


# --- configuration and input (the user's mistake: no API call was made) -------------------------


class ConnectionConfigError(GenerativeLanguageError, ValueError):
    """The Airflow connection is missing a field, has a bad value, or cannot build credentials."""


class InvalidInputError(GenerativeLanguageError, ValueError):
    """An operator argument is invalid; raised before any API call."""


class TrainingDataError(GenerativeLanguageError, ValueError):
    """Training or prompt data failed validation; names the source, line and field.

    :param message: what is wrong (the first problem when there are several).
    :param source: the file, URI or ``"inline"`` the data came from.
    :param line: 1-based line (JSONL/CSV) or item number (JSON list, inline), if known.
    :param field: the field at fault, if any.
    :param unit: ``"line"`` or ``"item"``: how ``line`` is named in the text.
    :param problems: every problem found as ``(line, field, message)``, when more than one is reported.
    :param total: how many problems there were in all (``problems`` may hold only the first few).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "inline",
        line: int | None = None,
        field: str | None = None,
        unit: str = "line",
        problems: list[tuple[int | None, str | None, str]] | None = None,
        total: int | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.unit = unit
        self.problems = problems or [(line, field, message)]
        self.total = total if total is not None else len(self.problems)
        if self.total <= 1:
            text = f"{self._where(source, line, field)}: {message}"
        else:
            shown = len(self.problems)
            head = f"{self.total} problems" + (f", the first {shown}:" if self.total > shown else ":")
            items = [f"- {self._where(None, p, f)}: {m}" for p, f, m in self.problems]
            text = "\n".join([f"{source}: {head}", *items])
        super().__init__(text)

    def _where(self, source: str | None, line: int | None, field: str | None) -> str:
        parts = [source] if source else []
        if line is not None:
            parts.append(f"{self.unit} {line}")
        if field:
            parts.append(f"field {field!r}")
        return ", ".join(parts)


# --- API errors ------------------------------------------------------------------------------------


class ApiError(GenerativeLanguageError):
    """The API answered with an error status.

    :param http_status: HTTP status code of the response.
    :param status: ``error.status`` of the body (a ``google.rpc.Code`` name), if any.
    :param message: ``error.message`` of the body, if any.
    :param details: ``error.details`` of the body.
    :param request: ``"METHOD /path"`` of the request (no query string, no headers).
    :param retry_after: the response's ``Retry-After`` header, if any.
    """

    def __init__(
        self,
        http_status: int,
        status: str | None,
        message: str,
        *,
        details: list[Any] | None = None,
        request: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.status = status
        self.api_message = message
        self.details = details or []
        self.request = request
        self.retry_after = retry_after
        prefix = f"{request}: " if request else ""
        label = f"{http_status} {status}" if status else str(http_status)
        super().__init__(f"{prefix}{label}: {message}")

    @property
    def reason(self) -> str | None:
        """``ErrorInfo.reason`` of the first ErrorInfo detail, if the body had one."""
        for detail in self.details:
            if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
                return detail.get("reason")
        return None


class InvalidArgumentError(ApiError):
    """400 INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE."""


class UnauthenticatedError(ApiError):
    """401 UNAUTHENTICATED: missing or invalid credentials."""


class PermissionDeniedError(ApiError):
    """403 PERMISSION_DENIED: the credentials may not do this (or the API key is not accepted)."""


class NotFoundError(ApiError):
    """404 NOT_FOUND."""


class AlreadyExistsError(ApiError):
    """409 ALREADY_EXISTS (for example a taken ``tunedModelId``) or ABORTED."""


class QuotaExhaustedError(ApiError):
    """429 RESOURCE_EXHAUSTED, after the hook's retries were used up."""


class ServerError(ApiError):
    """5xx, after the hook's retries were used up."""


class UnexpectedResponseError(ApiError):
    """The API answered with something that is not the JSON it should be (HTML, truncated, wrong shape)."""


class ApiConnectionError(GenerativeLanguageError):
    """The API could not be reached (connection refused or dropped, timeout) after retries."""


_BY_HTTP_STATUS: dict[int, type[ApiError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: AlreadyExistsError,
    429: QuotaExhaustedError,
}


def api_error_from_response(
    http_status: int,
    body: Any,
    *,
    request: str | None = None,
    raw_text: str | None = None,
    retry_after: str | None = None,
) -> ApiError:
    """Build the matching :class:`ApiError` subclass from an error response.

    :param http_status: HTTP status code.
    :param body: parsed JSON body, or ``None`` when the body was not JSON.
    :param request: ``"METHOD /path"`` of the request.
    :param raw_text: the body as text, used (shortened) when it is not a google.rpc.Status.
    :param retry_after: the response's ``Retry-After`` header, if any.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        status = error.get("status") if isinstance(error.get("status"), str) else None
        message = str(error.get("message") or "")
        details = error.get("details") if isinstance(error.get("details"), list) else []
    else:
        status, details = None, []
        snippet = " ".join((raw_text or "").split())[:200]
        message = f"response is not a google.rpc.Status error body: {snippet!r}" if snippet else "empty body"
    cls = _BY_HTTP_STATUS.get(http_status)
    if cls is None:
        cls = ServerError if http_status >= 500 else ApiError
    return cls(http_status, status, message, details=details, request=request, retry_after=retry_after)


# --- tuning outcomes -------------------------------------------------------------------------------


class TuningFailedError(GenerativeLanguageError):
    """The tuning job ended FAILED (or its operation ended with an error); carries the API's message.

    :param tuned_model: the ``tunedModels/<id>`` name.
    :param message: the API's error message.
    :param code: the ``google.rpc.Code`` number of the operation's error, if any.
    """

    def __init__(self, tuned_model: str, message: str, code: int | None = None) -> None:
        self.tuned_model = tuned_model
        self.api_message = message
        self.code = code
        super().__init__(f"tuning of {tuned_model} failed: {message}")


class TuningCancelledError(TuningFailedError):
    """The tuning operation was cancelled (``error.code`` 1, CANCELLED)."""


class TuningTimeoutError(GenerativeLanguageError):
    """The wait for a tuning job passed its deadline before the job finished."""


class EvaluationBelowThresholdError(GenerativeLanguageError):
    """An evaluation score fell below the required minimum."""
