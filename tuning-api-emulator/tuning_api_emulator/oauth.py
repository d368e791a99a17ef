"""``POST /token``: Google's OAuth 2.0 token endpoint, for credentials whose ``token_uri`` is here.

Two grants, form-encoded as ``google-auth`` sends them:

* ``refresh_token`` (authorized-user credentials): ``client_id``, ``client_secret`` and
  ``refresh_token`` are required;
* ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (service accounts): an ``assertion`` JWT whose
  ``aud`` is Google's token URL (``google-auth`` puts Google's URL there whatever ``token_uri``
  is), with ``iss``, a ``scope`` and an ``exp`` at most an hour after ``iat``. The signature is
  not checked: the emulator has no registry of service-account keys.

The answer is ``{"access_token", "expires_in": 3599, "token_type": "Bearer", "scope"}``. Errors
are OAuth's ``{"error", "error_description"}`` with HTTP 400 (401 for an unknown client). With no
credential configured any well-formed grant is honoured; once credentials are configured, only a
configured refresh token (``--refresh-token``) or service account (``--service-account``) is.
Issued tokens are accepted by every API route until they expire.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URLS = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
        "https://accounts.google.com/o/oauth2/token",
    }
)
TOKEN_SECONDS = 3600
BEARER = "Bearer"
_CLOCK_SKEW = 300


@dataclass(frozen=True)
class OAuthError(Exception):
    """An OAuth error answer."""

    error: str
    description: str
    http_status: int = 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Grant:
    """A grant that passed the checks: who asked and for which scopes."""

    subject: str
    scope: str


def _form(raw: bytes, content_type: str) -> dict[str, str]:
    text = raw.decode("utf-8", errors="replace")
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text or "{}")
        except ValueError:
            raise OAuthError("invalid_request", "Invalid JSON body.") from None
        if not isinstance(data, dict):
            raise OAuthError("invalid_request", "The body must be a JSON object.")
        return {str(k): str(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True))


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()))


def _jwt_grant(assertion: str, now: float, service_accounts: frozenset[str] | None) -> Grant:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise OAuthError("invalid_grant", "Invalid JWT: the assertion must have three dot-separated parts.")
    try:
        header, claims = _b64_json(parts[0]), _b64_json(parts[1])
    except ValueError:
        raise OAuthError(
            "invalid_grant", "Invalid JWT: the header or claims are not base64url JSON."
        ) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "Invalid JWT: the header and claims must be JSON objects.")
    audience = claims.get("aud")
    if audience not in GOOGLE_TOKEN_URLS:
        raise OAuthError(
            "invalid_grant",
            "Invalid JWT: Failed audience check. The right audience is https://oauth2.googleapis.com/token",
        )
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise OAuthError(
            "invalid_grant", "Invalid JWT: the iss claim (the service account's email) is missing."
        )
    issued, expiry = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expiry, int | float):
        raise OAuthError("invalid_grant", "Invalid JWT: iat and exp must be numbers.")
    if expiry - issued > TOKEN_SECONDS or expiry < now - _CLOCK_SKEW or issued > now + _CLOCK_SKEW:
        raise OAuthError(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
            "Check your iat and exp values in the JWT claim.",
        )
    scope = claims.get("scope")
    if not isinstance(scope, str) or not scope:
        raise OAuthError("invalid_scope", "Empty or missing scope not allowed.")
    if service_accounts is not None and issuer not in service_accounts:
        raise OAuthError("invalid_grant", "Invalid grant: account not found", http_status=400)
    return Grant(issuer, scope)


def grant(
    raw: bytes,
    content_type: str,
    now: float,
    *,
    refresh_tokens: frozenset[str] | None,
    service_accounts: frozenset[str] | None,
) -> Grant:
    """Check a token request.

    :param refresh_tokens: accepted refresh tokens (``None``: any non-empty one).
    :param service_accounts: accepted JWT issuers (``None``: any).
    :raises OAuthError: when the request is malformed or the grant is refused.
    """
    form = _form(raw, content_type)
    kind = form.get("grant_type", "")
    if kind == "refresh_token":
        if not form.get("client_id"):
            raise OAuthError("invalid_request", "Could not determine client ID from request.")
        if not form.get("client_secret"):
            raise OAuthError("invalid_client", "The OAuth client was not found.", http_status=401)
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
        if refresh_tokens is not None and not any(secrets.compare_digest(token, t) for t in refresh_tokens):
            raise OAuthError("invalid_grant", "Bad Request")
        return Grant(form["client_id"], form.get("scope") or "https://www.googleapis.com/auth/cloud-platform")
    if kind == JWT_BEARER:
        assertion = form.get("assertion", "")
        if not assertion:
            raise OAuthError("invalid_request", "Missing required parameter: assertion")
        return _jwt_grant(assertion, now, service_accounts)
    raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {kind}")


def new_token() -> str:
    """A fresh access token (the ``ya29.`` prefix of Google's, marked as the emulator's)."""
    return f"ya29.emulator-{secrets.token_urlsafe(24)}"


def answer(token: str, scope: str) -> dict[str, Any]:
    """The token endpoint's success body."""
    return {"access_token": token, "expires_in": TOKEN_SECONDS - 1, "scope": scope, "token_type": BEARER}
