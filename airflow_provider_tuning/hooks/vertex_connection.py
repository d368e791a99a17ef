"""Vertex AI settings from a ``google_cloud_platform`` connection, read without the Google provider.

A user who already has ``google_cloud_default`` uses it unchanged. The connection's extras are
read as the Google provider defines them, bare or with the form's prefix
(``extra__google_cloud_platform__<key>``): ``key_path``, ``keyfile_dict``,
``credential_config_file`` (a workload identity federation configuration, JSON or a path),
``scope``, ``project``, ``impersonation_chain`` and ``quota_project_id``. Vertex AI takes OAuth
only: no API key. The host is ``{location}-aiplatform.googleapis.com`` (``aiplatform.googleapis.com``
for ``global``) unless the connection's host names another (an ``http://`` loopback host for the
emulator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_tuning.exceptions import ConnectionConfigError
from airflow_provider_tuning.hooks.connection import (
    AUTH_ADC,
    CLOUD_PLATFORM_SCOPE,
    ConnectionSettings,
    normalize_url,
    parse_keyfile_json,
    read_extra,
    read_keyfile,
    str_option,
)
from airflow_provider_tuning.validation import quote

GCP_CONN_TYPE = "google_cloud_platform"
DEFAULT_GCP_CONN_ID = "google_cloud_default"
DEFAULT_LOCATION = "us-central1"
VERTEX_API_VERSIONS = ("v1", "v1beta1")
_EXTRA_KEYS = (
    "key_path",
    "keyfile_dict",
    "credential_config_file",
    "scope",
    "project",
    "impersonation_chain",
    "quota_project_id",
    "location",
)
_LOCATION = re.compile(r"[a-z][a-z0-9-]{0,62}")
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}")


@dataclass(frozen=True)
class VertexSettings:
    """Where and how to call Vertex AI.

    :param auth: the credentials part, and ``base_url`` (the regional host).
    :param project: the project id or number, if the connection or the caller gave one.
    :param location: the region, e.g. ``us-central1``.
    """

    auth: ConnectionSettings
    project: str | None
    location: str

    @property
    def base_url(self) -> str:
        """The API host, without a trailing slash."""
        return self.auth.base_url

    def parent(self, project: str | None = None) -> str:
        """``projects/<project>/locations/<location>``.

        :param project: a project overriding the connection's.
        :raises ConnectionConfigError: no project is known.
        """
        chosen = project or self.project
        if not chosen:
            raise ConnectionConfigError(
                "no Google Cloud project: set extra 'project' on the connection or pass project_id"
            )
        return f"projects/{chosen}/locations/{self.location}"


def default_host(location: str) -> str:
    """The regional Vertex AI host of ``location`` (``global``: the global host).

    :param location: a region such as ``us-central1``, or ``global``.
    """
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def vertex_settings(conn: Any, *, project: str | None = None, location: str | None = None) -> VertexSettings:
    """Read a ``google_cloud_platform`` connection for Vertex AI.

    :param conn: an Airflow connection.
    :param project: a project overriding the connection's extra ``project``.
    :param location: the region (default: the connection's extra ``location``, else ``us-central1``).
    :raises ConnectionConfigError: a field is missing, malformed or conflicting; never quoting key
        material.
    """
    conn_id = getattr(conn, "conn_id", None)
    try:
        return _vertex_settings(conn, conn_id, project, location)
    except ConnectionConfigError as err:
        prefix = f"Connection {conn_id!r}: " if conn_id else ""
        message = str(err)
        raise ConnectionConfigError(message if message.startswith(prefix) else f"{prefix}{message}") from None


def _vertex_settings(
    conn: Any, conn_id: str | None, project: str | None, location: str | None
) -> VertexSettings:
    extra = read_extra(getattr(conn, "extra", None), _EXTRA_KEYS, (GCP_CONN_TYPE,))
    if (getattr(conn, "password", None) or "").strip():
        raise ConnectionConfigError(
            "Vertex AI takes no API key: remove the password and use a service account, user "
            "credentials, a workload identity federation configuration or Application Default Credentials"
        )
    location = location or str_option(extra, "location") or DEFAULT_LOCATION
    if not _LOCATION.fullmatch(location):
        raise ConnectionConfigError(f"location {quote(location)} is not a region such as 'us-central1'")
    project = project or str_option(extra, "project")
    if project is not None and not _PROJECT.fullmatch(project):
        raise ConnectionConfigError(f"project {quote(project)} is not a Google Cloud project id or number")
    host = (getattr(conn, "host", None) or "").strip()
    base_url = normalize_url(host, port=getattr(conn, "port", None)) if host else default_host(location)

    keyfile: dict[str, Any] | None = None
    key_path = str_option(extra, "key_path")
    sources = [key for key in ("keyfile_dict", "key_path", "credential_config_file") if extra.get(key)]
    if len(sources) > 1:
        raise ConnectionConfigError(f"conflicting credentials: {' and '.join(sources)} are both set; set one")
    if extra.get("keyfile_dict"):
        keyfile = parse_keyfile_json(extra["keyfile_dict"], source="keyfile_dict")
    config = extra.get("credential_config_file")
    if isinstance(config, dict) or (isinstance(config, str) and config.lstrip().startswith("{")):
        keyfile = parse_keyfile_json(config, source="credential_config_file")
    elif isinstance(config, str):
        key_path = config.strip()
    elif config is not None:
        raise ConnectionConfigError("credential_config_file must be a JSON object, a JSON string or a path")
    if keyfile is not None:
        auth_type = str(keyfile["type"])
    elif key_path:
        auth_type = str(read_keyfile(key_path)["type"])
    else:
        auth_type = AUTH_ADC
    scopes = str_option(extra, "scope")
    return VertexSettings(
        auth=ConnectionSettings(
            base_url=base_url,
            api_version="v1",
            auth_type=auth_type,
            keyfile_dict=keyfile,
            key_path=key_path if keyfile is None else None,
            scopes=tuple(s.strip() for s in scopes.split(",") if s.strip())
            if scopes
            else (CLOUD_PLATFORM_SCOPE,),
            impersonation_chain=extra.get("impersonation_chain") or (),
            quota_project_id=str_option(extra, "quota_project_id"),
            conn_id=conn_id,
        ),
        project=project,
        location=location,
    )
