"""Auth headers for API requests; google-auth builds and refreshes the credentials.

Every mode goes through ``credentials.before_request(...)`` of a google-auth credentials object
(``google.auth.api_key.Credentials`` for an API key), so no token handling is written here. Every
secret (API key, client secret, refresh token, private key, each new access token) is registered
with Airflow's secrets masker. google-auth is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ConnectionConfigError,
    UnauthenticatedError,
)
from airflow_provider_tuning.hooks.connection import (
    AUTH_ADC,
    AUTH_API_KEY,
    AUTH_AUTHORIZED_USER,
    AUTH_EXTERNAL_ACCOUNT,
    AUTH_SERVICE_ACCOUNT,
    CLOUD_PLATFORM_SCOPE,
    GOOGLE_TOKEN_URI,
    ConnectionSettings,
    parse_keyfile_json,
    read_keyfile,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

DEFAULT_AUTH_TIMEOUT: tuple[float, float] = (10.0, 60.0)
_MIN_MASK_LENGTH = 5


def mask_secret_value(value: Any) -> None:
    """Register ``value`` with Airflow's secrets masker (no-op when it is empty or unavailable).

    :param value: the secret string.
    """
    if not isinstance(value, str) or not value:
        return
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - depends on the installed Airflow
        try:
            from airflow.sdk.log import mask_secret
        except ImportError:
            log.debug("Airflow secrets masker unavailable; secret not registered")
            return
    try:
        mask_secret(value)
    except Exception:  # the masker must never break a request
        log.debug("Could not register a secret with the Airflow secrets masker")


def _private_key_parts(private_key: str) -> list[str]:
    """The whole PEM key plus each base64 line, so partial leaks are masked too."""
    parts = [private_key]
    for line in private_key.replace("\\n", "\n").splitlines():
        line = line.strip()
        if len(line) >= 16 and not line.startswith("-----"):
            parts.append(line)
    return parts


class RequestAuth:
    """Auth headers for one request: ``x-goog-api-key``, or ``Authorization: Bearer`` plus
    ``x-goog-user-project`` when the credentials carry a quota project.

    Thread-safe: one lock guards google-auth's refresh. :meth:`headers` blocks while a token is
    refreshed, so async code calls it through ``asyncio.to_thread``.

    :param credentials: a google-auth credentials object.
    :param mode: the auth mode, for messages (``api_key``, ``authorized_user``, ...).
    :param url: the API base URL (passed to google-auth's ``before_request``).
    :param session: a ``requests.Session`` for token requests (one is created when omitted).
    :param timeout: ``(connect, read)`` timeout of token requests, in seconds.
    :param secrets: strings to scrub from any message (they are also masked).
    """

    def __init__(
        self,
        credentials: Any,
        *,
        mode: str,
        url: str,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_AUTH_TIMEOUT,
        secrets: Iterable[str] = (),
    ) -> None:
        self._credentials = credentials
        self._mode = mode
        self._url = url
        self._session = session
        self._timeout = timeout
        self._lock = threading.Lock()
        self._transport: Any = None
        self._known_tokens: set[str] = set()
        self._secrets = [s for s in secrets if isinstance(s, str) and len(s) >= _MIN_MASK_LENGTH]

    def __repr__(self) -> str:
        return f"RequestAuth(mode={self._mode!r})"

    @property
    def mode(self) -> str:
        """The auth mode: ``api_key``, ``authorized_user``, ``service_account`` or ``adc``."""
        return self._mode

    @property
    def refreshable(self) -> bool:
        """Whether :meth:`invalidate` can lead to new credentials (not for an API key)."""
        return self._mode != AUTH_API_KEY

    @property
    def credentials(self) -> Any:
        """The underlying google-auth credentials object."""
        return self._credentials

    def _token_transport(self) -> Any:
        """google-auth's requests transport, with our timeout on every token request."""
        if self._transport is None:
            import requests
            from google.auth.transport.requests import Request

            default_timeout = self._timeout

            class _TimeoutRequest(Request):
                """google-auth's transport with a default ``(connect, read)`` timeout."""

                def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):  # type: ignore[no-untyped-def]
                    # Never follow a redirect: it would re-post the client secret, refresh
                    # token or signed assertion to wherever the token endpoint points.
                    kwargs["allow_redirects"] = False
                    return super().__call__(
                        url,
                        method=method,
                        body=body,
                        headers=headers,
                        timeout=timeout or default_timeout,
                        **kwargs,
                    )

            self._transport = _TimeoutRequest(self._session or requests.Session())
        return self._transport

    def headers(self, method: str = "GET", url: str | None = None) -> dict[str, str]:
        """Return the auth headers for one request, refreshing the credentials when needed.

        :param method: HTTP method of the request.
        :param url: URL of the request (defaults to the base URL).
        :raises UnauthenticatedError: the token endpoint refused to issue a token (a final answer,
            such as ``invalid_grant``).
        :raises ApiConnectionError: the token endpoint could not be reached or answered with a
            transient error (google-auth's ``RefreshError`` with ``retryable=True``): worth
            retrying, as for any transient API error.
        """
        from google.auth import exceptions as auth_exceptions

        headers: dict[str, str] = {}
        with self._lock:
            try:
                self._credentials.before_request(
                    self._token_transport() if self.refreshable else None, method, url or self._url, headers
                )
            except auth_exceptions.TransportError as err:
                raise ApiConnectionError(
                    f"could not reach the token endpoint to refresh the {self._mode} credentials: "
                    f"{self.scrub(_first_arg(err))}"
                ) from None
            except (auth_exceptions.RefreshError, auth_exceptions.DefaultCredentialsError) as err:
                if getattr(err, "retryable", False):  # the token endpoint is down (5xx, 429, ...)
                    raise ApiConnectionError(
                        f"the token endpoint could not issue a token for the {self._mode} credentials "
                        f"for now: {self.scrub(_first_arg(err))}"
                    ) from None
                raise UnauthenticatedError(
                    401,
                    "UNAUTHENTICATED",
                    f"could not obtain an access token for the {self._mode} credentials: "
                    f"{self.scrub(_first_arg(err))}",
                ) from None
            if self.refreshable:
                self._register_tokens()
        return {str(k): str(v) for k, v in headers.items()}

    def _register_tokens(self) -> None:
        """Mask each new access token (the impersonation source's too)."""
        for creds in (self._credentials, getattr(self._credentials, "_source_credentials", None)):
            token = getattr(creds, "token", None)
            if isinstance(token, str) and token not in self._known_tokens:
                mask_secret_value(token)
                self._known_tokens.add(token)
                if len(token) >= _MIN_MASK_LENGTH:
                    self._secrets.append(token)

    def invalidate(self) -> None:
        """Force a refresh before the next :meth:`headers` (after a 401). No-op for an API key."""
        if not self.refreshable:
            return
        with self._lock:
            for creds in (self._credentials, getattr(self._credentials, "_source_credentials", None)):
                if creds is not None and hasattr(creds, "token"):
                    creds.token = None
                    creds.expiry = None

    def scrub(self, text: str) -> str:
        """Replace every known secret in ``text``, and any part of one, by ``***``.

        :param text: a message that may echo a secret (whole, or a prefix or fragment of it).
        """
        return scrub_secrets(text, self._secrets)


#: The shortest fragment of a secret that :func:`scrub_secrets` removes; shorter runs are too likely
#: to be ordinary text (and reveal too little to matter).
SCRUB_FRAGMENT = 6


def scrub_secrets(text: str, secrets: Iterable[str], *, fragment: int = SCRUB_FRAGMENT) -> str:
    """Replace each run of ``text`` that is part of a secret (``fragment`` characters or more) by ``***``.

    An API that echoes only a prefix of a key ("API key AIzaSyB4x... not valid") leaves no whole
    secret to find, so every ``fragment``-long window of the text is looked up among the secrets'
    windows, and the runs they cover are replaced.

    :param text: a message.
    :param secrets: the secrets (each at least ``fragment`` characters long to count).
    :param fragment: the shortest run replaced.
    """
    secrets = [secret for secret in secrets if secret]
    for secret in sorted(secrets, key=len, reverse=True):  # whole secrets first, short ones too
        text = text.replace(secret, "***")
    grams: set[str] = set()
    for secret in secrets:
        if len(secret) >= fragment:
            grams.update(secret[i : i + fragment] for i in range(len(secret) - fragment + 1))
    if not grams or len(text) < fragment:
        return text
    covered = [False] * len(text)
    for start in range(len(text) - fragment + 1):
        if text[start : start + fragment] in grams:
            covered[start : start + fragment] = [True] * fragment
    if not any(covered):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not covered[index]:
            out.append(char)
        elif index == 0 or not covered[index - 1]:
            out.append("***")
    return "".join(out)


def _first_arg(err: BaseException) -> str:
    """The main message of a google-auth exception (its first argument), shortened."""
    text = str(err.args[0]) if err.args else type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:300] + "..."


def _load_keyfile(settings: ConnectionSettings) -> dict[str, Any]:
    if settings.keyfile_dict is not None:
        return parse_keyfile_json(settings.keyfile_dict, source="keyfile_dict")
    if settings.key_path:
        return read_keyfile(settings.key_path)
    raise ConnectionConfigError(f"auth_type {settings.auth_type!r} needs keyfile_dict or key_path")


def _user_credentials(info: dict[str, Any], scopes: list[str] | None, quota_project: str | None) -> Any:
    """OAuth user credentials from an ``authorized_user`` JSON, honouring its ``token_uri``."""
    from google.oauth2.credentials import Credentials

    return Credentials(
        token=None,
        refresh_token=info["refresh_token"],
        token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI,
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=scopes,
        quota_project_id=quota_project or info.get("quota_project_id"),
    )


def _service_account_credentials(info: dict[str, Any], scopes: list[str], quota_project: str | None) -> Any:
    from google.oauth2 import service_account

    try:
        creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    except ValueError as err:  # bad private key: cryptography's message never quotes the key
        raise ConnectionConfigError(
            f"the service-account key cannot be loaded: {_first_arg(err)[:200]}"
        ) from None
    return creds.with_quota_project(quota_project) if quota_project else creds


def _external_account_credentials(info: dict[str, Any], scopes: list[str], quota_project: str | None) -> Any:
    """Workload identity federation credentials from their configuration (AWS, an executable, or a
    file or URL that holds the outside token), built without the project lookup google-auth's
    ``load_credentials_from_dict`` makes over the network."""
    source = info.get("credential_source") or {}
    if str(source.get("environment_id", "")).startswith("aws"):
        from google.auth import aws as module
    elif "executable" in source:
        from google.auth import pluggable as module  # type: ignore[no-redef]
    else:
        from google.auth import identity_pool as module  # type: ignore[no-redef]
    try:
        credentials = module.Credentials.from_info(info, scopes=scopes)
    except (ValueError, TypeError) as err:
        raise ConnectionConfigError(
            f"the external_account configuration cannot be loaded: {_first_arg(err)[:200]}"
        ) from None
    return credentials.with_quota_project(quota_project) if quota_project else credentials


def build_request_auth(
    settings: ConnectionSettings,
    *,
    session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_AUTH_TIMEOUT,
) -> RequestAuth:
    """Build the credentials of a connection and wrap them in a :class:`RequestAuth`.

    No network call is made here; tokens are fetched on the first :meth:`RequestAuth.headers`.

    :param settings: the parsed connection.
    :param session: a ``requests.Session`` to send token requests through.
    :param timeout: ``(connect, read)`` timeout of token requests, in seconds.
    :raises ConnectionConfigError: the key material cannot be read or loaded, or ADC is not found.
    """
    mode = settings.auth_type
    quota_project = settings.quota_project_id
    impersonating = bool(settings.impersonation_chain)
    secrets: list[str] = []

    if mode == AUTH_API_KEY:
        from google.auth import api_key

        key = settings.api_key or ""
        mask_secret_value(key)
        return RequestAuth(
            api_key.Credentials(key), mode=mode, url=settings.base_url, session=session, secrets=[key]
        )

    # Source credentials; when impersonating, the quota project goes on the target only.
    source_quota = None if impersonating else quota_project
    if mode in (AUTH_AUTHORIZED_USER, AUTH_SERVICE_ACCOUNT, AUTH_EXTERNAL_ACCOUNT):
        info = _load_keyfile(settings)
        if info["type"] != mode:
            raise ConnectionConfigError(f"auth_type is {mode!r} but the key file is an {info['type']!r} JSON")
        if mode == AUTH_EXTERNAL_ACCOUNT:
            federated = [CLOUD_PLATFORM_SCOPE] if impersonating else list(settings.effective_scopes)
            credentials = _external_account_credentials(info, federated, source_quota)
        elif mode == AUTH_AUTHORIZED_USER:
            secrets += [info["client_secret"], info["refresh_token"]]
            scopes = list(settings.scopes) if settings.scopes else None
            credentials = _user_credentials(info, scopes, source_quota)
        else:
            secrets += _private_key_parts(info["private_key"])
            scopes = [CLOUD_PLATFORM_SCOPE] if impersonating else list(settings.effective_scopes)
            credentials = _service_account_credentials(info, scopes, source_quota)
    elif mode == AUTH_ADC:
        import google.auth
        from google.auth import exceptions as auth_exceptions

        scopes = [CLOUD_PLATFORM_SCOPE] if impersonating else list(settings.effective_scopes)
        try:
            credentials, _ = google.auth.default(scopes=scopes, quota_project_id=source_quota)
        except auth_exceptions.DefaultCredentialsError as err:
            raise ConnectionConfigError(
                f"Application Default Credentials are not available: {_first_arg(err)}"
            ) from None
        for attr in ("client_secret", "refresh_token"):
            value = getattr(credentials, attr, None)
            if isinstance(value, str):
                secrets.append(value)
    else:  # pragma: no cover - ConnectionSettings validates auth_type
        raise ConnectionConfigError(f"unknown auth_type {mode!r}")

    if impersonating:
        from google.auth import impersonated_credentials

        chain = settings.impersonation_chain
        delegates = [
            d if d.startswith("projects/") else f"projects/-/serviceAccounts/{d}" for d in chain[:-1]
        ]
        credentials = impersonated_credentials.Credentials(
            source_credentials=credentials,
            target_principal=chain[-1].removeprefix("projects/-/serviceAccounts/"),
            target_scopes=list(settings.effective_scopes),
            delegates=delegates or None,
            quota_project_id=quota_project,
            iam_endpoint_override=settings.iam_endpoint_override,
        )

    for secret in secrets:
        mask_secret_value(secret)
    return RequestAuth(
        credentials, mode=mode, url=settings.base_url, session=session, timeout=timeout, secrets=secrets
    )
