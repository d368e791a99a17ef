"""ConnectionSettings.from_connection: base URL rule, API version, auth modes and clear errors."""

from __future__ import annotations

import json
import os

import pytest
from airflow.sdk import Connection

from airflow_provider_tuning.exceptions import ConnectionConfigError
from airflow_provider_tuning.hooks.connection import (
    DEFAULT_BASE_URL,
    DEFAULT_SCOPES,
    ConnectionSettings,
    is_loopback_host,
)
from tests.unit.hooks.glapi_loopback import authorized_user_info, rsa_key_pair, service_account_info

TOKEN_URI = "http://127.0.0.1:9/token"


def conn(host=None, password=None, extra=None, port=None, conn_id="glapi"):
    return Connection(
        conn_id=conn_id,
        conn_type="generativelanguage",
        host=host,
        password=password,
        port=port,
        extra=json.dumps(extra) if isinstance(extra, dict) else extra,
    )


def parse(**kwargs) -> ConnectionSettings:
    return ConnectionSettings.from_connection(conn(**kwargs))


def config_error(**kwargs) -> str:
    with pytest.raises(ConnectionConfigError) as info:
        parse(**kwargs)
    message = str(info.value)
    assert message.startswith("Connection 'glapi': ")
    return message


# --- base URL -------------------------------------------------------------------------------------


def test_defaults_with_an_api_key():
    settings = parse(password="AIzaSy-test-key")
    assert settings.base_url == DEFAULT_BASE_URL == "https://generativelanguage.googleapis.com"
    assert settings.api_version == "v1beta"
    assert settings.auth_type == "api_key"
    assert settings.api_key == "AIzaSy-test-key"
    assert settings.effective_scopes == DEFAULT_SCOPES
    assert DEFAULT_SCOPES == (
        "https://www.googleapis.com/auth/cloud-platform",
        "https://www.googleapis.com/auth/generative-language.tuning",
    )


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("generativelanguage.googleapis.com", None, "https://generativelanguage.googleapis.com"),
        ("https://proxy.example.com/genai/", None, "https://proxy.example.com/genai"),
        ("https://proxy.example.com", 8443, "https://proxy.example.com:8443"),
        ("http://127.0.0.1:8085/", None, "http://127.0.0.1:8085"),
        ("http://127.9.8.7:1", None, "http://127.9.8.7:1"),
        ("http://localhost:8085", None, "http://localhost:8085"),
        ("http://LOCALHOST", 8085, "http://LOCALHOST:8085"),
        ("http://[::1]:8085", None, "http://[::1]:8085"),
    ],
)
def test_base_url_is_normalised(host, port, expected):
    assert parse(host=host, port=port, password="k-12345").base_url == expected


@pytest.mark.parametrize(
    "host",
    [
        "http://example.com",
        "http://10.0.0.1:8085",
        "http://128.0.0.1",
        "http://localhost.example.com",
        "http://[::2]:80",
        "http://0.0.0.0:8085",
    ],
)
def test_plain_http_is_refused_for_non_loopback_hosts(host):
    message = config_error(host=host, password="k-12345")
    assert "http://" in message
    assert "loopback" in message
    assert "127.0.0.0/8, localhost and ::1" in message


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("ftp://example.com", "scheme 'ftp'"),
        ("https://user:hunter2secret@example.com", "user info"),
        ("https://example.com/?key=abc", "query string"),
        ("https://example.com:notaport", "not a valid URL"),
    ],
)
def test_malformed_base_urls(host, fragment):
    message = config_error(host=host, password="k-12345")
    assert fragment in message
    assert "hunter2secret" not in message


def test_port_without_host_is_an_error():
    assert "port is set" in config_error(port=8085, password="k-12345")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("localhost", True),
        ("localhost.", True),
        ("128.0.0.1", False),
        ("::", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host, expected):
    assert is_loopback_host(host) is expected


# --- API version ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1beta3"])
def test_api_version_from_extra(version):
    assert parse(password="k-12345", extra={"api_version": version}).api_version == version


def test_unknown_api_version():
    message = config_error(password="k-12345", extra={"api_version": "v2"})
    assert "unknown api_version 'v2'" in message
    assert "v1, v1beta, v1beta3" in message


@pytest.mark.parametrize("conn_type", ["generativelanguage", "generative_language"])
def test_ui_prefixed_extra_keys_are_read(conn_type):
    """The form's prefix of this type, and of the type earlier builds used."""
    settings = parse(password="k-12345", extra={f"extra__{conn_type}__api_version": "v1beta3"})
    assert settings.api_version == "v1beta3"


def test_a_connection_of_the_earlier_type_still_works():
    legacy = Connection(conn_id="old", conn_type="generative_language", password="k-12345")
    assert ConnectionSettings.from_connection(legacy).auth_type == "api_key"


def test_reading_the_connection_provokes_no_airflow_warning():
    """Airflow stores every connection it reads as a URI (its secrets cache) and warns when the type
    holds an '_'; the provider's type has none, so no task or trigger start logs that warning."""
    import structlog.testing
    from airflow.models.connection import Connection as StoredConnection

    from airflow_provider_tuning.constants import CONN_TYPE, LEGACY_CONN_TYPE

    def warnings_of(conn_type: str) -> list[str]:
        with structlog.testing.capture_logs() as logs:
            uri = StoredConnection(conn_id="c", conn_type=conn_type, host="http://127.0.0.1:1").get_uri()
        assert uri.startswith(f"{conn_type.replace('_', '-')}://")
        return [e["event"] for e in logs if "shall not contain" in str(e.get("event"))]

    assert warnings_of(CONN_TYPE) == []
    assert warnings_of(LEGACY_CONN_TYPE)  # control: the earlier type provokes it


def test_extra_that_is_not_json():
    message = config_error(password="k-12345", extra='{"api_version": ')
    assert "extra is not valid JSON" in message


# --- auth modes -----------------------------------------------------------------------------------


def test_api_key_from_extra():
    settings = parse(extra={"api_key": "AIzaSy-extra-key"})
    assert (settings.auth_type, settings.api_key) == ("api_key", "AIzaSy-extra-key")


def test_different_api_keys_in_password_and_extra():
    message = config_error(password="AIzaSy-one-key", extra={"api_key": "AIzaSy-two-key"})
    assert "conflicting API keys" in message
    assert "AIzaSy-one-key" not in message
    assert "AIzaSy-two-key" not in message


@pytest.mark.parametrize("as_string", [True, False])
def test_authorized_user_json_inferred(as_string):
    info = authorized_user_info(TOKEN_URI, quota_project_id="json-project")
    keyfile = json.dumps(info) if as_string else info
    settings = parse(extra={"keyfile_dict": keyfile, "scopes": "a, b ,", "quota_project_id": "qp-1"})
    assert settings.auth_type == "authorized_user"
    assert settings.keyfile_dict == info
    assert settings.scopes == ("a", "b")
    assert settings.quota_project_id == "qp-1"


def test_service_account_json_inferred_with_impersonation_list():
    info = service_account_info(TOKEN_URI)
    settings = parse(
        extra={
            "keyfile_dict": json.dumps(info),
            "impersonation_chain": ["d1@p.iam.gserviceaccount.com", "target@p.iam.gserviceaccount.com"],
            "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        }
    )
    assert settings.auth_type == "service_account"
    assert settings.impersonation_chain == (
        "d1@p.iam.gserviceaccount.com",
        "target@p.iam.gserviceaccount.com",
    )
    assert settings.effective_scopes == ("https://www.googleapis.com/auth/cloud-platform",)


def test_impersonation_chain_comma_string_and_bad_entry():
    chain = "a@p.iam.gserviceaccount.com , b@p.iam.gserviceaccount.com"
    settings = parse(extra={"impersonation_chain": chain})
    assert settings.auth_type == "adc"
    assert settings.impersonation_chain == ("a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com")
    assert "not a service-account email" in config_error(extra={"impersonation_chain": "not an email"})


def test_key_path_infers_the_file_type(tmp_path):
    path = tmp_path / "user.json"
    path.write_text(json.dumps(authorized_user_info(TOKEN_URI)))
    assert parse(extra={"key_path": str(path)}).auth_type == "authorized_user"
    path.write_text(json.dumps(service_account_info(TOKEN_URI)))
    settings = parse(extra={"key_path": str(path)})
    assert (settings.auth_type, settings.key_path, settings.keyfile_dict) == (
        "service_account",
        str(path),
        None,
    )


def test_adc_when_nothing_is_set():
    settings = parse(extra={"quota_project_id": "billing-project"})
    assert (settings.auth_type, settings.quota_project_id) == ("adc", "billing-project")


def test_explicit_auth_type_must_match_the_key_file(tmp_path):
    info = authorized_user_info(TOKEN_URI)
    message = config_error(extra={"auth_type": "service_account", "keyfile_dict": info})
    assert "auth_type is 'service_account' but keyfile_dict is an 'authorized_user' JSON" in message
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(service_account_info(TOKEN_URI)))
    message = config_error(extra={"auth_type": "authorized_user", "key_path": str(path)})
    assert "is an 'service_account' JSON" in message


def test_unknown_auth_type():
    assert "unknown auth_type 'kerberos'" in config_error(extra={"auth_type": "kerberos"})


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"password": "AIzaSy-key", "extra": {"keyfile_dict": "SA"}}, "api key (password) and keyfile_dict"),
        ({"extra": {"keyfile_dict": "SA", "key_path": "/k.json"}}, "keyfile_dict and key_path"),
        ({"password": "AIzaSy-key", "extra": {"auth_type": "adc"}}, "auth_type 'adc' with api key"),
        ({"extra": {"auth_type": "api_key", "keyfile_dict": "SA"}}, "needs the API key"),
        ({"extra": {"auth_type": "service_account"}}, "needs keyfile_dict or key_path"),
        (
            {"password": "AIzaSy-key", "extra": {"impersonation_chain": "t@p.iam.gserviceaccount.com"}},
            "impersonation_chain cannot be used with an API key",
        ),
        ({"password": "AIzaSy-key", "extra": {"quota_project_id": "p"}}, "quota_project_id cannot be used"),
    ],
)
def test_conflicting_auth_modes(kwargs, fragment):
    extra = kwargs.get("extra", {})
    if extra.get("keyfile_dict") == "SA":
        extra["keyfile_dict"] = service_account_info(TOKEN_URI)
    message = config_error(**kwargs)
    assert fragment in message
    assert "AIzaSy-key" not in message
    assert "PRIVATE KEY" not in message


# --- key material errors never quote the material -------------------------------------------------


def _assert_no_key_material(message: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message
    assert "BEGIN PRIVATE KEY" not in message


def test_keyfile_that_is_not_json_is_reported_without_its_content():
    info = authorized_user_info(TOKEN_URI)
    broken = json.dumps(info)[:-5]
    message = config_error(extra={"keyfile_dict": broken})
    assert "keyfile_dict is not valid JSON (line 1, column" in message
    _assert_no_key_material(message, info["client_secret"], info["refresh_token"])


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (
            {"type": "impersonated_service_account"},
            "type 'impersonated_service_account', which is not supported",
        ),
        (
            {"type": "external_account", "audience": "x"},
            "missing required field(s): subject_token_type, token_url",
        ),
        ({"client_id": "x", "client_secret": "GOCSPX-hidden-value"}, "has no 'type' field"),
        ([1, 2], "must be a JSON object, got a JSON list"),
    ],
)
def test_keyfile_of_unknown_type(payload, fragment):
    message = config_error(extra={"keyfile_dict": json.dumps(payload)})
    assert fragment in message
    assert "GOCSPX-hidden-value" not in message


def test_service_account_missing_fields_are_named():
    info = service_account_info(TOKEN_URI)
    del info["client_email"]
    info["token_uri"] = ""
    message = config_error(extra={"keyfile_dict": info})
    assert "(service_account) is missing required field(s): client_email, token_uri" in message
    _assert_no_key_material(message, info["private_key"], info["private_key"].splitlines()[1])


def test_authorized_user_missing_refresh_token_is_named():
    info = authorized_user_info(TOKEN_URI)
    del info["refresh_token"]
    message = config_error(extra={"keyfile_dict": info})
    assert "(authorized_user) is missing required field(s): refresh_token" in message
    _assert_no_key_material(message, info["client_secret"])


def test_token_uri_must_be_https_unless_loopback():
    info = authorized_user_info("http://tokens.example.com/token")
    message = config_error(extra={"keyfile_dict": info})
    assert "keyfile_dict token_uri uses plain http://" in message
    _assert_no_key_material(message, info["client_secret"], info["refresh_token"])


def test_unreadable_key_path(tmp_path):
    missing = tmp_path / "nope.json"
    message = config_error(extra={"key_path": str(missing)})
    assert f"key_path '{missing}' cannot be read: No such file or directory" in message
    message = config_error(extra={"key_path": str(tmp_path)})
    assert "cannot be read: Is a directory" in message


def test_key_path_with_broken_json_does_not_leak(tmp_path):
    pem, _ = rsa_key_pair()
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": pem})[:-10])
    message = config_error(extra={"key_path": str(path)})
    assert "is not valid JSON" in message
    _assert_no_key_material(message, pem.splitlines()[1])


# --- direct construction and repr ---------------------------------------------------------------


def test_repr_and_str_never_show_secrets(tmp_path):
    sa = service_account_info(TOKEN_URI)
    user = authorized_user_info(TOKEN_URI)
    for settings in (
        parse(password="AIzaSy-secret-key-1234"),
        parse(extra={"keyfile_dict": sa}),
        parse(extra={"keyfile_dict": json.dumps(user)}),
    ):
        for text in (repr(settings), str(settings)):
            assert "AIzaSy-secret-key-1234" not in text
            assert user["client_secret"] not in text
            assert user["refresh_token"] not in text
            assert "PRIVATE KEY" not in text
            assert sa["private_key"].splitlines()[1] not in text
            assert "base_url=" in text


def test_direct_construction_is_validated():
    settings = ConnectionSettings(base_url="http://127.0.0.1:8085/", auth_type="api_key", api_key="k-12345")
    assert settings.base_url == "http://127.0.0.1:8085"
    assert settings.is_loopback
    assert not ConnectionSettings(api_key="k-12345", auth_type="api_key").is_loopback
    with pytest.raises(ConnectionConfigError, match="loopback"):
        ConnectionSettings(base_url="http://example.com", auth_type="api_key", api_key="k-12345")
    with pytest.raises(ConnectionConfigError, match="unknown api_version"):
        ConnectionSettings(api_version="v9")
    assert hash(ConnectionSettings(keyfile_dict=authorized_user_info(), auth_type="authorized_user"))


def test_direct_construction_infers_the_auth_type(tmp_path):
    assert ConnectionSettings(api_key="k-12345").auth_type == "api_key"
    assert ConnectionSettings(keyfile_dict=authorized_user_info()).auth_type == "authorized_user"
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(service_account_info(TOKEN_URI)))
    assert ConnectionSettings(key_path=str(path)).auth_type == "service_account"
    assert ConnectionSettings().auth_type == "adc"
    with pytest.raises(ConnectionConfigError, match="conflicting auth modes"):
        ConnectionSettings(api_key="k-12345", key_path=str(path))


def test_key_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "sa.json").write_text(json.dumps(service_account_info(TOKEN_URI)))
    assert parse(extra={"key_path": "~/sa.json"}).auth_type == "service_account"
    assert os.path.exists(tmp_path / "sa.json")


def test_base_url_must_not_carry_the_api_version():
    message = config_error(host="https://generativelanguage.googleapis.com/v1beta/", password="k-12345")
    assert "base URL ends with the API version 'v1beta'" in message


def test_api_key_is_stripped_and_must_not_contain_whitespace():
    assert parse(password="AIzaSy-key-123\n").api_key == "AIzaSy-key-123"
    message = config_error(password="AIzaSy key\x00123")
    assert "whitespace or control characters" in message
    assert "AIzaSy" not in message
