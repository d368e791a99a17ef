"""A ``google_cloud_platform`` connection read for Vertex AI, the way the Google provider defines it,
without importing the Google provider; credentials built with google-auth against loopback servers."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from airflow_provider_tuning.exceptions import ConnectionConfigError
from airflow_provider_tuning.hooks.credentials import build_request_auth
from airflow_provider_tuning.hooks.vertex_connection import default_host, vertex_settings
from tests.unit.hooks.glapi_loopback import authorized_user_info, service_account_info

SA = "tuner@test-project.iam.gserviceaccount.com"


def gcp(extra=None, host=None, password=None, conn_id="google_cloud_default"):
    return Connection(
        conn_id=conn_id,
        conn_type="google_cloud_platform",
        host=host,
        password=password,
        extra=json.dumps(extra) if isinstance(extra, dict) else extra,
    )


def error_of(conn, **kwargs) -> str:
    with pytest.raises(ConnectionConfigError) as info:
        vertex_settings(conn, **kwargs)
    return str(info.value)


def test_defaults_application_default_credentials_in_us_central1():
    settings = vertex_settings(gcp({"project": "my-project"}))
    assert settings.base_url == "https://us-central1-aiplatform.googleapis.com"
    assert settings.parent() == "projects/my-project/locations/us-central1"
    assert settings.auth.auth_type == "adc"
    assert settings.auth.scopes == ("https://www.googleapis.com/auth/cloud-platform",)


@pytest.mark.parametrize("prefix", ["", "extra__google_cloud_platform__"])
def test_bare_and_prefixed_extras(prefix):
    info = service_account_info("http://127.0.0.1:9/token")
    extra = {
        f"{prefix}keyfile_dict": json.dumps(info),
        f"{prefix}project": "123456789012",
        f"{prefix}scope": "https://www.googleapis.com/auth/cloud-platform, https://www.googleapis.com/auth/aiplatform",
        f"{prefix}impersonation_chain": SA,
        f"{prefix}quota_project_id": "billing-project",
    }
    settings = vertex_settings(gcp(extra), location="europe-west4")
    assert settings.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert settings.parent() == "projects/123456789012/locations/europe-west4"
    assert settings.auth.auth_type == "service_account"
    assert settings.auth.scopes == (
        "https://www.googleapis.com/auth/cloud-platform",
        "https://www.googleapis.com/auth/aiplatform",
    )
    assert settings.auth.impersonation_chain == (SA,)
    assert settings.auth.quota_project_id == "billing-project"


def test_the_caller_overrides_project_and_location_and_the_host_overrides_the_region():
    conn = gcp({"project": "from-conn-1", "location": "asia-east1"}, host="http://127.0.0.1:8085")
    settings = vertex_settings(conn, project="from-task-1")
    assert settings.parent() == "projects/from-task-1/locations/asia-east1"
    assert settings.base_url == "http://127.0.0.1:8085"
    assert default_host("global") == "https://aiplatform.googleapis.com"


def test_key_path_and_a_credential_config_file(tmp_path):
    key = tmp_path / "user.json"
    key.write_text(json.dumps(authorized_user_info("http://127.0.0.1:9/token")))
    assert vertex_settings(gcp({"key_path": str(key)})).auth.auth_type == "authorized_user"
    config = {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": str(tmp_path / "token")},
    }
    inline = vertex_settings(gcp({"credential_config_file": json.dumps(config)}))
    assert inline.auth.auth_type == "external_account"
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config))
    from_path = vertex_settings(gcp({"credential_config_file": str(path)}))
    assert (from_path.auth.auth_type, from_path.auth.key_path) == ("external_account", str(path))
    build_request_auth(from_path.auth)  # google-auth accepts the configuration


@pytest.mark.parametrize(
    ("conn", "fragment"),
    [
        (gcp({}, password="AIzaSy-an-api-key"), "Vertex AI takes no API key"),
        (gcp({"keyfile_dict": "{}", "key_path": "/k.json"}), "conflicting credentials"),
        (gcp({"project": "Bad Project"}), "is not a Google Cloud project id or number"),
        (gcp({"location": "US Central"}), "is not a region"),
        (gcp({"keyfile_dict": "{not json"}), "keyfile_dict is not valid JSON"),
        (gcp({}, host="http://vertex.example.com"), "not a loopback host"),
        (gcp("[1, 2]"), "extra must be a JSON object"),
    ],
)
def test_bad_connections_are_named_errors(conn, fragment):
    message = error_of(conn)
    assert fragment in message
    assert message.startswith("Connection 'google_cloud_default': ")
    assert "AIzaSy-an-api-key" not in message


def test_without_a_project_the_parent_is_a_clear_error():
    with pytest.raises(ConnectionConfigError, match="no Google Cloud project"):
        vertex_settings(gcp({})).parent()
