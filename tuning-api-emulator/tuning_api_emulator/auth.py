"""Authentication as the services do it (Vertex AI: :func:`check_bearer`).

A call needs an API key (``x-goog-api-key`` header or ``?key=``) or an OAuth access token
(``Authorization: Bearer``, or ``?access_token=``/``?oauth_token=``):

* neither -> 403 PERMISSION_DENIED "Method doesn't allow unregistered callers ..." (Google's answer);
* a key that is empty or not accepted -> 400 INVALID_ARGUMENT "API key not valid. ..." (reason
  ``API_KEY_INVALID``);
* a token that is empty or not accepted, or a malformed ``Authorization`` header ->
  401 UNAUTHENTICATED "Request had invalid authentication credentials. ...".

With no credential configured (both ``api_keys`` and ``tokens`` ``None``) any non-empty key or
token is accepted. Once either is configured, only configured credentials pass: a key must be
one of ``api_keys`` and a token one of ``tokens`` (``None`` then accepts none). The
``/_emulator/`` control paths need no credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Mapping

from tuning_api_emulator.errors import StatusError, error_info

UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
KEY_INVALID = "API key not valid. Please pass a valid API key."
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def _accepted(value: str, allowed: Collection[str] | None) -> bool:
    """Whether ``value`` is non-empty and one of ``allowed`` (``None``: any value)."""
    if not value:
        return False
    if allowed is None:
        return True
    return any(hmac.compare_digest(value.encode(), candidate.encode()) for candidate in allowed)


def check(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    api_keys: Collection[str] | None,
    tokens: Collection[str] | None,
) -> None:
    """Raise the service's error when the request's credentials are missing or not accepted.

    :param headers: the request headers.
    :param query: the query parameters.
    :param api_keys: the accepted API keys, ``None`` for any (only while ``tokens`` is ``None`` too).
    :param tokens: the accepted access tokens, ``None`` for any (only while ``api_keys`` is ``None`` too).
    """
    if api_keys is not None or tokens is not None:  # configured: nothing else passes
        api_keys, tokens = api_keys or (), tokens or ()
    key = headers.get("x-goog-api-key")
    if key is None:
        key = query.get("key")
    token: str | None = None
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise StatusError(
                "UNAUTHENTICATED", INVALID_CREDENTIALS, details=[error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED")]
            )
        token = value.strip()
    if token is None:
        token = query.get("access_token", query.get("oauth_token"))
    if key is None and token is None:
        raise StatusError("PERMISSION_DENIED", UNREGISTERED, details=[error_info("CONSUMER_INVALID")])
    if key is not None and not _accepted(key.strip(), api_keys):
        raise StatusError("INVALID_ARGUMENT", KEY_INVALID, details=[error_info("API_KEY_INVALID")])
    if token is not None and not _accepted(token, tokens):
        raise StatusError(
            "UNAUTHENTICATED", INVALID_CREDENTIALS, details=[error_info("ACCESS_TOKEN_EXPIRED")]
        )


MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
API_KEYS_UNSUPPORTED = (
    "API keys are not supported by this API. Expected OAuth2 access token or other authentication "
    "credentials that assert a principal. See https://cloud.google.com/docs/authentication"
)
VERTEX_SERVICE = "aiplatform.googleapis.com"


def bearer(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The OAuth access token a request carries (``Authorization: Bearer`` or ``?access_token=``).

    :raises StatusError: 401 for an ``Authorization`` header of another scheme.
    """
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise StatusError(
                "UNAUTHENTICATED",
                INVALID_CREDENTIALS,
                details=[error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", service=VERTEX_SERVICE)],
            )
        return value.strip()
    return query.get("access_token", query.get("oauth_token"))


def check_bearer(
    headers: Mapping[str, str], query: Mapping[str, str], *, tokens: Collection[str] | None
) -> None:
    """Vertex AI's rule: an OAuth access token is required and an API key is refused (401).

    :param tokens: the accepted access tokens; ``None`` accepts any non-empty token.
    """
    if headers.get("x-goog-api-key") is not None or query.get("key") is not None:
        raise StatusError(
            "UNAUTHENTICATED",
            API_KEYS_UNSUPPORTED,
            details=[error_info("CREDENTIALS_MISSING", service=VERTEX_SERVICE)],
        )
    token = bearer(headers, query)
    if token is None:
        raise StatusError(
            "UNAUTHENTICATED",
            MISSING_CREDENTIALS,
            details=[error_info("CREDENTIALS_MISSING", service=VERTEX_SERVICE)],
        )
    if not _accepted(token, tokens):
        raise StatusError(
            "UNAUTHENTICATED",
            INVALID_CREDENTIALS,
            details=[error_info("ACCESS_TOKEN_EXPIRED", service=VERTEX_SERVICE)],
        )
