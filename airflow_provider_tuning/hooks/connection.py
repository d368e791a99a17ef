"""Settings of a ``generativelanguage`` Airflow connection: base URL, API version and auth mode.

Parsing is pure and cheap (no network, no google-auth import), so the async trigger can use it too.
Secrets are dataclass fields with ``repr=False`` and no error message quotes them.

Connection fields: ``host`` = base URL, ``password`` = API key; ``extra`` keys: ``api_version``,
``auth_type`` (``api_key`` | ``authorized_user`` | ``service_account`` | ``adc``; inferred when
absent), ``keyfile_dict``, ``key_path``, ``scopes``, ``impersonation_chain``, ``quota_project_id``
and ``iam_endpoint_override`` (the full ``generateAccessToken`` URL, for private endpoints).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_tuning.constants import CONN_TYPE, DEFAULT_CONN_ID, LEGACY_CONN_TYPE
from airflow_provider_tuning.exceptions import ConnectionConfigError

__all__ = ["CONN_TYPE", "DEFAULT_CONN_ID"]  # re-exported: the hooks and users import them from here too

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"
API_VERSIONS = ("v1", "v1beta", "v1beta3")
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TUNING_SCOPE = "https://www.googleapis.com/auth/generative-language.tuning"
DEFAULT_SCOPES: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE, TUNING_SCOPE)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret

AUTH_API_KEY = "api_key"
AUTH_AUTHORIZED_USER = "authorized_user"
AUTH_SERVICE_ACCOUNT = "service_account"
AUTH_ADC = "adc"
#: Workload identity federation: a credential configuration (``gcloud iam workload-identity-pools
#: create-cred-config``) that trades an outside token for a Google one; no key is stored.
AUTH_EXTERNAL_ACCOUNT = "external_account"
AUTH_TYPES = (AUTH_API_KEY, AUTH_AUTHORIZED_USER, AUTH_SERVICE_ACCOUNT, AUTH_EXTERNAL_ACCOUNT, AUTH_ADC)
KEYFILE_TYPES = (AUTH_AUTHORIZED_USER, AUTH_SERVICE_ACCOUNT, AUTH_EXTERNAL_ACCOUNT)

_REQUIRED_KEYFILE_FIELDS: dict[str, tuple[str, ...]] = {
    AUTH_AUTHORIZED_USER: ("client_id", "client_secret", "refresh_token"),
    AUTH_SERVICE_ACCOUNT: ("client_email", "private_key", "token_uri"),
    AUTH_EXTERNAL_ACCOUNT: ("audience", "subject_token_type", "token_url"),
}
_EXTRA_KEYS = (
    "api_version",
    "auth_type",
    "api_key",
    "keyfile_dict",
    "key_path",
    "scopes",
    "impersonation_chain",
    "quota_project_id",
    "iam_endpoint_override",
)


def is_loopback_host(hostname: str | None) -> bool:
    """Return whether ``hostname`` is a loopback host: ``localhost``, ``127.0.0.0/8`` or ``::1``.

    :param hostname: a host name or IP literal (without brackets or port).
    """
    if not hostname:
        return False
    host = hostname.strip().lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_url(raw: str, *, what: str = "base URL", port: int | None = None) -> str:
    """Validate and normalise an endpoint URL: ``https://`` anywhere, plain ``http://`` only on loopback.

    A value without a scheme gets ``https://``. The result has no trailing slash.

    :param raw: the URL or host name.
    :param what: what the URL is, for error messages.
    :param port: a port to add when the URL has none (the connection's ``port`` field).
    :raises ConnectionConfigError: the URL is malformed, carries credentials or is plain http elsewhere.
    """
    text = raw.strip()
    if "://" not in text:
        text = f"https://{text}"
    # The parser's own messages quote the URL or port text, which may hold a pasted secret: not shown.
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConnectionConfigError(f"{what} is not a valid URL") from None
    try:
        url_port = parts.port
    except ValueError:
        raise ConnectionConfigError(
            f"{what} is not a valid URL: its port must be a number from 0 to 65535"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConnectionConfigError(
            f"{what} must use https:// (or http:// for a loopback host), got scheme {scheme!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConnectionConfigError(
            f"{what} must not contain user info; put the API key in the password field "
            "and other credentials in the extra fields"
        )
    hostname = parts.hostname
    if not hostname:
        raise ConnectionConfigError(f"{what} has no host")
    if parts.query or parts.fragment:
        raise ConnectionConfigError(f"{what} must not have a query string or fragment")
    if scheme == "http" and not is_loopback_host(hostname):
        raise ConnectionConfigError(
            f"{what} uses plain http:// for {hostname!r}, which is not a loopback host: http:// is "
            "accepted only for 127.0.0.0/8, localhost and ::1 (such as the local emulator) so that "
            "credentials never travel unencrypted; use https://"
        )
    netloc = parts.netloc
    if port is not None and url_port is None:
        netloc = f"{netloc}:{_port_number(port)}"
    elif port is not None and _port_number(port) != url_port:
        raise ConnectionConfigError(
            f"the port field ({_port_number(port)}) differs from the port in the {what} ({url_port}); "
            "set one of them, or the same port in both"
        )
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _port_number(port: Any) -> int:
    """Return the connection's port as an int in 0-65535 (never quoting its text, see normalize_url)."""
    try:
        number = int(port)
    except (TypeError, ValueError):
        number = -1
    if isinstance(port, bool) or not 0 <= number <= 65535:
        raise ConnectionConfigError("port must be a number from 0 to 65535")
    return number


def load_json(raw: str | bytes, source: str) -> Any:
    """Parse JSON text from ``source``; an error names the position, never the text (it may be a key).

    :param raw: the JSON text.
    :param source: what the text is (``extra``, ``keyfile_dict``...), for the message.
    :raises ConnectionConfigError: not JSON, not UTF-8, or nested too deeply.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ConnectionConfigError(
            f"{source} is not valid JSON: nested too deeply (more levels of lists or objects than can "
            "be parsed)"
        ) from None
    except (ValueError, UnicodeDecodeError) as err:
        where = (
            f" (line {err.lineno}, column {err.colno}: {err.msg})"
            if isinstance(err, json.JSONDecodeError)
            else ""
        )
        raise ConnectionConfigError(f"{source} is not valid JSON{where}") from None


def _split_list(value: Any, what: str) -> tuple[str, ...]:
    """Turn a comma-separated string or a list of strings into a tuple of non-empty strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.replace("\n", ",").split(",")
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise ConnectionConfigError(f"{what} must be a comma-separated string or a list of strings")
    result = []
    for item in items:
        if not isinstance(item, str):
            raise ConnectionConfigError(f"{what} must contain only strings")
        if item.strip():
            result.append(item.strip())
    return tuple(result)


def _safe_value(value: Any, limit: int = 40) -> str:
    """Quote a short non-secret value for an error message."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_keyfile_json(raw: Any, *, source: str) -> dict[str, Any]:
    """Parse and check an ``authorized_user`` or ``service_account`` key file.

    :param raw: a JSON string or an already parsed mapping.
    :param source: where it came from (``keyfile_dict`` or ``key_path '<path>'``), for messages.
    :raises ConnectionConfigError: bad JSON, unknown ``type`` or missing fields (named, never quoted).
    """
    if isinstance(raw, Mapping):
        info = dict(raw)
    elif isinstance(raw, (str, bytes)):
        info = load_json(raw, source)
    else:
        raise ConnectionConfigError(f"{source} must be a JSON object or a JSON string")
    if not isinstance(info, dict):
        raise ConnectionConfigError(f"{source} must be a JSON object, got a JSON {type(info).__name__}")
    kind = info.get("type")
    if kind is None:
        raise ConnectionConfigError(
            f"{source} has no 'type' field; expected 'authorized_user' (the file written by "
            "`gcloud auth application-default login`), 'service_account' (a service-account key) "
            "or 'external_account' (a workload identity federation configuration)"
        )
    if kind not in KEYFILE_TYPES:
        raise ConnectionConfigError(
            f"{source} has type {_safe_value(kind)}, which is not supported; "
            "expected 'authorized_user', 'service_account' or 'external_account'"
        )
    missing = [
        name
        for name in _REQUIRED_KEYFILE_FIELDS[kind]
        if not isinstance(info.get(name), str) or not info[name].strip()
    ]
    if missing:
        raise ConnectionConfigError(f"{source} ({kind}) is missing required field(s): {', '.join(missing)}")
    if kind == AUTH_EXTERNAL_ACCOUNT and not isinstance(info.get("credential_source"), Mapping):
        raise ConnectionConfigError(f"{source} ({kind}) is missing required field(s): credential_source")
    for key in ("token_uri", "token_url", "service_account_impersonation_url"):
        url = info.get(key)
        if url is not None:
            if not isinstance(url, str):
                raise ConnectionConfigError(f"{source} field {key} must be a string")
            normalize_url(url, what=f"{source} {key}")
    return info


def read_keyfile(path: str) -> dict[str, Any]:
    """Read and check the key file at ``path``.

    :param path: path of an ``authorized_user`` or ``service_account`` JSON file.
    :raises ConnectionConfigError: the file cannot be read or is not a valid key file.
    """
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConnectionConfigError(f"key_path {path!r} cannot be read: {reason}") from None
    except UnicodeDecodeError:
        raise ConnectionConfigError(f"key_path {path!r} is not UTF-8 text") from None
    return parse_keyfile_json(raw, source=f"key_path {path!r}")


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to call the API, parsed from an Airflow connection.

    :param base_url: scheme, host and optional path prefix, without trailing slash.
    :param api_version: default API version (``v1``, ``v1beta`` or ``v1beta3``).
    :param auth_type: ``api_key``, ``authorized_user``, ``service_account`` or ``adc``; inferred
        when ``None`` (API key, else the key file's ``type``, else ``adc``).
    :param api_key: the API key (``api_key`` mode).
    :param keyfile_dict: parsed ``authorized_user`` or ``service_account`` JSON.
    :param key_path: path of such a JSON file (read when credentials are built).
    :param scopes: OAuth scopes; ``None`` means :data:`DEFAULT_SCOPES` (user credentials then keep
        the scopes their refresh token was granted).
    :param impersonation_chain: service accounts to impersonate; the last is the target, earlier
        ones are delegates.
    :param quota_project_id: project billed for quota, sent as ``x-goog-user-project``.
    :param iam_endpoint_override: full ``generateAccessToken`` URL used for impersonation.
    :param conn_id: the connection id, for messages.
    """

    base_url: str = DEFAULT_BASE_URL
    api_version: str = DEFAULT_API_VERSION
    auth_type: str | None = None
    api_key: str | None = field(default=None, repr=False)
    keyfile_dict: Mapping[str, Any] | None = field(default=None, repr=False, hash=False)
    key_path: str | None = None
    scopes: tuple[str, ...] | None = None
    impersonation_chain: tuple[str, ...] = ()
    quota_project_id: str | None = None
    iam_endpoint_override: str | None = None
    conn_id: str | None = None

    def __post_init__(self) -> None:
        prefix = f"Connection {self.conn_id!r}: " if self.conn_id else ""
        try:
            self._validate()
        except ConnectionConfigError as err:
            raise ConnectionConfigError(f"{prefix}{err}") from None

    def _validate(self) -> None:
        object.__setattr__(self, "base_url", normalize_url(self.base_url))
        last_segment = urlsplit(self.base_url).path.rsplit("/", 1)[-1]
        if last_segment in API_VERSIONS:
            raise ConnectionConfigError(
                f"base URL ends with the API version {last_segment!r}; give the host only "
                "(e.g. https://generativelanguage.googleapis.com) and set extra 'api_version'"
            )
        if self.api_version not in API_VERSIONS:
            raise ConnectionConfigError(
                f"unknown api_version {_safe_value(self.api_version)}; expected one of "
                f"{', '.join(API_VERSIONS)}"
            )
        if self.auth_type is None:
            object.__setattr__(self, "auth_type", self._infer_auth_type())
        if self.auth_type not in AUTH_TYPES:
            raise ConnectionConfigError(
                f"unknown auth_type {_safe_value(self.auth_type)}; expected one of {', '.join(AUTH_TYPES)}"
            )
        if self.scopes is not None:
            object.__setattr__(self, "scopes", _split_list(self.scopes, "scopes") or None)
        object.__setattr__(
            self, "impersonation_chain", _split_list(self.impersonation_chain, "impersonation_chain")
        )
        for account in self.impersonation_chain:
            if "@" not in account or any(ch.isspace() for ch in account):
                raise ConnectionConfigError(
                    f"impersonation_chain entry {_safe_value(account, 80)} is not a service-account email"
                )
        if self.iam_endpoint_override:
            object.__setattr__(
                self,
                "iam_endpoint_override",
                normalize_url(self.iam_endpoint_override, what="iam_endpoint_override"),
            )
        self._validate_auth()

    def _infer_auth_type(self) -> str:
        if self.api_key:
            return AUTH_API_KEY
        if self.keyfile_dict is not None:
            return str(parse_keyfile_json(self.keyfile_dict, source="keyfile_dict")["type"])
        if self.key_path:
            return str(read_keyfile(self.key_path)["type"])
        return AUTH_ADC

    def _validate_auth(self) -> None:
        material = [
            name
            for name, value in (
                ("api key (password)", self.api_key),
                ("keyfile_dict", self.keyfile_dict),
                ("key_path", self.key_path),
            )
            if value
        ]
        if len(material) > 1:
            raise ConnectionConfigError(
                f"conflicting auth modes: {' and '.join(material)} are both set; set exactly one "
                "(or none, with auth_type 'adc', for Application Default Credentials)"
            )
        auth = self.auth_type
        if self.api_key and any(ch.isspace() or not ch.isprintable() for ch in self.api_key):
            raise ConnectionConfigError("the API key contains whitespace or control characters")
        if self.api_key and not self.api_key.isascii():
            # It travels in the x-goog-api-key header, which holds ASCII only (Google's keys are ASCII).
            raise ConnectionConfigError(
                "the API key contains a non-ASCII character; API keys are ASCII letters, digits, '-' "
                "and '_': copy the key again from its source"
            )
        if auth == AUTH_API_KEY:
            if not self.api_key:
                raise ConnectionConfigError("auth_type 'api_key' needs the API key in the password field")
            if self.impersonation_chain:
                raise ConnectionConfigError("impersonation_chain cannot be used with an API key")
            if self.quota_project_id:
                raise ConnectionConfigError(
                    "quota_project_id cannot be used with an API key (the key's own project is billed); "
                    "use OAuth, a service account or ADC"
                )
        elif auth == AUTH_ADC:
            if material:
                raise ConnectionConfigError(f"conflicting auth modes: auth_type 'adc' with {material[0]}")
        else:
            if not (self.keyfile_dict or self.key_path):
                raise ConnectionConfigError(f"auth_type {auth!r} needs keyfile_dict or key_path")
            if self.api_key:
                raise ConnectionConfigError(f"conflicting auth modes: auth_type {auth!r} with an API key")
            if self.keyfile_dict is not None:
                info = parse_keyfile_json(self.keyfile_dict, source="keyfile_dict")
                if info["type"] != auth:
                    raise ConnectionConfigError(
                        f"auth_type is {auth!r} but keyfile_dict is an {info['type']!r} JSON"
                    )
                object.__setattr__(self, "keyfile_dict", info)

    @property
    def effective_scopes(self) -> tuple[str, ...]:
        """The configured scopes, or :data:`DEFAULT_SCOPES`."""
        return self.scopes or DEFAULT_SCOPES

    @property
    def is_loopback(self) -> bool:
        """Whether the base URL points at a loopback host (e.g. the local emulator)."""
        return is_loopback_host(urlsplit(self.base_url).hostname)

    def url(self, path: str) -> str:
        """Return the absolute URL of an API path such as ``/v1beta/models``.

        :param path: path starting with ``/``.
        """
        return f"{self.base_url}{path}"

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        """Parse an Airflow connection of type ``generativelanguage``.

        :param conn: an Airflow ``Connection`` (task SDK or core).
        :raises ConnectionConfigError: a field is missing, malformed or conflicting; the message
            names it and never quotes key material.
        """
        conn_id = getattr(conn, "conn_id", None)
        prefix = f"Connection {conn_id!r}: " if conn_id else ""
        try:
            return cls._from_connection(conn, conn_id)
        except ConnectionConfigError as err:
            message = str(err)
            if prefix and not message.startswith(prefix):
                message = f"{prefix}{message}"
            raise ConnectionConfigError(message) from None

    @classmethod
    def _from_connection(cls, conn: Any, conn_id: str | None) -> ConnectionSettings:
        extra = read_extra(getattr(conn, "extra", None), _EXTRA_KEYS, (CONN_TYPE, LEGACY_CONN_TYPE))
        host = (getattr(conn, "host", None) or "").strip()
        # No port, or 0: Airflow 3.3's connection list sends port 0 for an empty port field.
        port = getattr(conn, "port", None) or None
        if host:
            base_url = normalize_url(host, port=port)
        elif port:
            raise ConnectionConfigError("port is set but host (the base URL) is empty")
        else:
            base_url = DEFAULT_BASE_URL

        api_version = str_option(extra, "api_version") or DEFAULT_API_VERSION
        password = (getattr(conn, "password", None) or "").strip() or None
        extra_key = str_option(extra, "api_key")
        if password and extra_key and password != extra_key:
            raise ConnectionConfigError(
                "conflicting API keys: the password field and extra 'api_key' differ; set one of them"
            )
        api_key = password or extra_key

        keyfile_raw = extra.get("keyfile_dict")
        keyfile: dict[str, Any] | None = None
        if keyfile_raw not in (None, "", {}):
            keyfile = parse_keyfile_json(keyfile_raw, source="keyfile_dict")
        key_path = str_option(extra, "key_path")

        key_type = None
        if key_path and not api_key and keyfile is None:
            key_type = read_keyfile(key_path)["type"]

        auth_type = str_option(extra, "auth_type")
        if auth_type:
            auth_type = auth_type.lower()
        elif api_key:
            auth_type = AUTH_API_KEY
        elif keyfile is not None:
            auth_type = keyfile["type"]
        else:
            auth_type = key_type or AUTH_ADC
        if key_type and auth_type in KEYFILE_TYPES and key_type != auth_type:
            raise ConnectionConfigError(
                f"auth_type is {auth_type!r} but key_path {key_path!r} is an {key_type!r} JSON"
            )

        scopes_raw = extra.get("scopes")
        scopes = _split_list(scopes_raw, "scopes") or None
        return cls(
            base_url=base_url,
            api_version=api_version,
            auth_type=auth_type,
            api_key=api_key,
            keyfile_dict=keyfile,
            key_path=key_path,
            scopes=scopes,
            impersonation_chain=_split_list(extra.get("impersonation_chain"), "impersonation_chain"),
            quota_project_id=str_option(extra, "quota_project_id"),
            iam_endpoint_override=str_option(extra, "iam_endpoint_override"),
            conn_id=conn_id,
        )


def read_extra(raw: Any, keys: Sequence[str], conn_types: Sequence[str]) -> dict[str, Any]:
    """Return the ``keys`` of a connection's extra, bare or with the form's prefix of any of
    ``conn_types`` (``extra__<conn type>__<key>``); empty values are left out.

    :param raw: the connection's ``extra``: JSON text, a mapping, or nothing.
    :param keys: the keys to read.
    :param conn_types: the connection types whose form prefixes count.
    :raises ConnectionConfigError: the extra is not a JSON object (the text is never quoted).
    """
    if raw is None or raw == "":
        data: Any = {}
    elif isinstance(raw, Mapping):
        data = dict(raw)
    elif isinstance(raw, str):
        data = load_json(raw, "extra")
    else:
        raise ConnectionConfigError("extra must be a JSON object")
    if not isinstance(data, dict):
        raise ConnectionConfigError("extra must be a JSON object")
    result: dict[str, Any] = {}
    for key in keys:
        value = data.get(key)
        for conn_type in conn_types:
            if value in (None, ""):
                value = data.get(f"extra__{conn_type}__{key}")
        if value not in (None, ""):
            result[key] = value
    return result


def str_option(extra: Mapping[str, Any], key: str) -> str | None:
    """Return a string option of ``extra`` (stripped), ``None`` when absent or blank.

    :param extra: the extras :func:`read_extra` returned.
    :param key: the option.
    :raises ConnectionConfigError: the value is not a string.
    """
    value = extra.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConnectionConfigError(f"extra field {key!r} must be a string")
    return value.strip() or None


class ConnectionHookAttributes:
    """The Airflow hook attributes every hook of this connection type shares (sync and async)."""

    conn_name_attr = "conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
