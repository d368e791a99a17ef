"""Every auth mode with real google-auth credentials, a loopback token endpoint and a capture server."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from airflow_provider_tuning.exceptions import ApiConnectionError, ConnectionConfigError, UnauthenticatedError
from airflow_provider_tuning.hooks.connection import DEFAULT_SCOPES, ConnectionSettings
from airflow_provider_tuning.hooks.credentials import build_request_auth
from tests.unit.hooks.glapi_loopback import (
    Reply,
    authorized_user_info,
    decode_jwt,
    error_body,
    rsa_key_pair,
    service_account_info,
)

SA_EMAIL = "tuner@test-project.iam.gserviceaccount.com"
CLOUD = "https://www.googleapis.com/auth/cloud-platform"


def _no_key_in_url(request, key: str) -> None:
    assert key not in request.target
    assert "key" not in request.query


def _verify_jwt(assertion: str) -> dict:
    """Check the RS256 signature with the generated public key; return the claims."""
    header, claims, signed, signature = decode_jwt(assertion)
    assert header["alg"] == "RS256"
    _, public_key = rsa_key_pair()
    public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())  # raises if forged
    return claims


def test_api_key_travels_only_in_the_header(make_hook, api_server, api_key):
    hook = make_hook(host=api_server.url, password=api_key)
    api_server.replies.append(Reply(200, {"name": "tunedModels/m1", "state": "ACTIVE"}))
    assert hook.get_tuned_model("m1") == {"name": "tunedModels/m1", "state": "ACTIVE"}
    (request,) = api_server.requests
    assert request.headers["x-goog-api-key"] == api_key
    assert "authorization" not in request.headers
    assert "x-goog-user-project" not in request.headers
    _no_key_in_url(request, api_key)
    assert (request.method, request.path) == ("GET", "/v1beta/tunedModels/m1")


def test_authorized_user_refreshes_at_the_loopback_token_endpoint(make_hook, api_server, token_endpoint):
    info = authorized_user_info(token_endpoint.token_uri, quota_project_id="json-quota")
    hook = make_hook(host=api_server.url, extra={"keyfile_dict": json.dumps(info)})
    hook.get_tuned_model("m1")
    hook.get_tuned_model("m2")

    (token_request,) = token_endpoint.requests  # one refresh, then the cached token
    form = token_request.form
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == [info["refresh_token"]]
    assert form["client_id"] == [info["client_id"]]
    assert form["client_secret"] == [info["client_secret"]]
    assert "scope" not in form  # a user token keeps the scopes it was granted unless configured
    for request in api_server.requests:
        assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
        assert request.headers["x-goog-user-project"] == "json-quota"
        assert "x-goog-api-key" not in request.headers


def test_authorized_user_with_configured_scopes_and_quota_project(make_hook, api_server, token_endpoint):
    info = authorized_user_info(token_endpoint.token_uri, quota_project_id="json-quota")
    hook = make_hook(
        host=api_server.url,
        extra={"keyfile_dict": info, "scopes": f"{CLOUD}", "quota_project_id": "conn-quota"},
    )
    hook.get_model("gemini-1.5-flash-001")
    assert token_endpoint.requests[0].form["scope"] == [CLOUD]
    (request,) = api_server.requests
    assert request.path == "/v1beta/models/gemini-1.5-flash-001"
    assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert request.headers["x-goog-user-project"] == "conn-quota"


def test_service_account_json_signs_a_jwt_grant(make_hook, api_server, token_endpoint):
    info = service_account_info(token_endpoint.token_uri)
    hook = make_hook(host=api_server.url, extra={"keyfile_dict": json.dumps(info), "quota_project_id": "qp"})
    hook.get_tuned_model("tunedModels/m1")

    (token_request,) = token_endpoint.requests
    assert token_request.form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = _verify_jwt(token_request.form["assertion"][0])
    assert claims["iss"] == SA_EMAIL
    assert claims["scope"].split() == list(DEFAULT_SCOPES)
    (request,) = api_server.requests
    assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert request.headers["x-goog-user-project"] == "qp"


def test_service_account_key_path(make_hook, api_server, token_endpoint, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(service_account_info(token_endpoint.token_uri)))
    hook = make_hook(host=api_server.url, extra={"key_path": str(path)})
    hook.delete_tuned_model("m1")
    claims = _verify_jwt(token_endpoint.requests[0].form["assertion"][0])
    assert claims["iss"] == SA_EMAIL
    (request,) = api_server.requests
    assert (request.method, request.path) == ("DELETE", "/v1beta/tunedModels/m1")
    assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert "x-goog-user-project" not in request.headers


def test_application_default_credentials_from_the_environment(
    make_hook, api_server, token_endpoint, tmp_path, monkeypatch
):
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(service_account_info(token_endpoint.token_uri)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    hook = make_hook(host=api_server.url, extra={"quota_project_id": "adc-quota"})
    assert hook.settings.auth_type == "adc"
    hook.get_tuned_model("m1")
    claims = _verify_jwt(token_endpoint.requests[0].form["assertion"][0])
    assert claims["scope"].split() == list(DEFAULT_SCOPES)
    (request,) = api_server.requests
    assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert request.headers["x-goog-user-project"] == "adc-quota"


def test_adc_with_the_gcloud_authorized_user_file(
    make_hook, api_server, token_endpoint, tmp_path, monkeypatch
):
    """The seeds' flow: `gcloud auth application-default login --client-id-file ...` writes an
    authorized_user file without token_uri; google-auth then always uses Google's token endpoint,
    so the test points that module constant at the loopback endpoint."""
    import google.oauth2.credentials
    from airflow.providers.common.compat.sdk import redact

    monkeypatch.setattr(google.oauth2.credentials, "_GOOGLE_OAUTH2_TOKEN_ENDPOINT", token_endpoint.token_uri)
    info = authorized_user_info(quota_project_id="gcloud-quota")
    path = tmp_path / "application_default_credentials.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    hook = make_hook(host=api_server.url)
    assert list(hook.list_tuned_models(page_size=1)) == []
    (token_request,) = token_endpoint.requests
    assert token_request.form["refresh_token"] == [info["refresh_token"]]
    (request,) = api_server.requests
    assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert request.headers["x-goog-user-project"] == "gcloud-quota"
    for secret in (info["client_secret"], info["refresh_token"]):
        assert secret not in redact(secret)


def test_adc_not_found_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ConnectionConfigError, match="Application Default Credentials are not available"):
        build_request_auth(ConnectionSettings(auth_type="adc"))


def test_impersonation_chain_through_a_loopback_iam_endpoint(make_hook, api_server, token_endpoint):
    target = "target@test-project.iam.gserviceaccount.com"
    delegate = "middle@test-project.iam.gserviceaccount.com"
    iam_url = f"{token_endpoint.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    hook = make_hook(
        host=api_server.url,
        extra={
            "keyfile_dict": service_account_info(token_endpoint.token_uri),
            "impersonation_chain": f"{delegate},{target}",
            "iam_endpoint_override": iam_url,
            "quota_project_id": "imp-quota",
        },
    )
    hook.get_tuned_model("m1")

    source_grant, iam_call = token_endpoint.requests
    # the source service account gets a token to call IAM (google-auth scopes it to IAM)...
    assert _verify_jwt(source_grant.form["assertion"][0])["scope"] == "https://www.googleapis.com/auth/iam"
    assert iam_call.path == f"/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    assert iam_call.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    body = iam_call.json
    assert body["delegates"] == [f"projects/-/serviceAccounts/{delegate}"]
    assert body["scope"] == list(DEFAULT_SCOPES)
    # ...and the API call carries the impersonated token and the quota project
    (request,) = api_server.requests
    assert request.headers["authorization"] == f"Bearer {token_endpoint.impersonated[0]}"
    assert request.headers["x-goog-user-project"] == "imp-quota"


def test_401_invalidates_the_token_and_retries_once(make_hook, api_server, token_endpoint):
    info = authorized_user_info(token_endpoint.token_uri)
    hook = make_hook(host=api_server.url, extra={"keyfile_dict": info})
    api_server.replies += [
        Reply(401, error_body(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")),
        Reply(200, {"name": "tunedModels/m1"}),
    ]
    assert hook.get_tuned_model("m1") == {"name": "tunedModels/m1"}
    first, second = api_server.requests
    assert len(token_endpoint.issued) == 2
    assert first.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert second.headers["authorization"] == f"Bearer {token_endpoint.issued[1]}"
    assert hook.sleeps == []  # re-authentication is immediate

    # a second 401 in a row is an error, not a loop
    api_server.replies += [Reply(401, error_body(401, "UNAUTHENTICATED", "bad token"))] * 2
    with pytest.raises(UnauthenticatedError) as info:
        hook.get_tuned_model("m1")
    assert info.value.http_status == 401
    assert len(api_server.requests) == 4


def test_401_with_an_api_key_is_not_retried(make_hook, api_server, api_key):
    hook = make_hook(host=api_server.url, password=api_key)
    api_server.replies.append(Reply(401, error_body(401, "UNAUTHENTICATED", "API key not valid.")))
    expected = r"GET /v1beta/models: 401 UNAUTHENTICATED: API key not valid"
    with pytest.raises(UnauthenticatedError, match=expected):
        list(hook.list_models())
    assert len(api_server.requests) == 1


def test_refused_refresh_is_unauthenticated_without_secrets(make_hook, api_server, token_endpoint):
    info = authorized_user_info(token_endpoint.token_uri)
    token_endpoint.fail_with = Reply(
        400, {"error": "invalid_grant", "error_description": "Token has been revoked."}
    )
    hook = make_hook(host=api_server.url, extra={"keyfile_dict": info})
    with pytest.raises(UnauthenticatedError) as info_err:
        hook.get_tuned_model("m1")
    message = str(info_err.value)
    assert "could not obtain an access token for the authorized_user credentials" in message
    assert "invalid_grant" in message
    assert info["refresh_token"] not in message
    assert info["client_secret"] not in message
    assert api_server.requests == []  # no API call without credentials


def test_unreachable_token_endpoint_is_retried_then_a_connection_error(make_hook, api_server):
    import socket

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
    hook = make_hook(host=api_server.url, extra={"keyfile_dict": authorized_user_info(dead)})
    with pytest.raises(ApiConnectionError, match="could not reach the token endpoint"):
        hook.get_tuned_model("m1")
    assert len(hook.sleeps) == hook.retry.max_attempts - 1
    assert api_server.requests == []


def test_request_auth_is_thread_safe_and_refreshes_once(token_endpoint):
    from concurrent.futures import ThreadPoolExecutor

    settings = ConnectionSettings(
        auth_type="authorized_user", keyfile_dict=authorized_user_info(token_endpoint.token_uri)
    )
    auth = build_request_auth(settings)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: auth.headers(), range(32)))
    assert len(token_endpoint.requests) == 1
    assert {r["authorization"] for r in results} == {f"Bearer {token_endpoint.issued[0]}"}
    auth.invalidate()
    assert auth.headers()["authorization"] == f"Bearer {token_endpoint.issued[1]}"
    assert repr(auth) == "RequestAuth(mode='authorized_user')"


def test_api_key_auth_has_nothing_to_refresh(api_key):
    auth = build_request_auth(ConnectionSettings(auth_type="api_key", api_key=api_key))
    assert auth.headers() == {"x-goog-api-key": api_key}
    assert not auth.refreshable
    auth.invalidate()
    assert auth.headers() == {"x-goog-api-key": api_key}
    assert api_key not in repr(auth)


def test_bad_private_key_is_a_config_error_without_the_key(token_endpoint):
    info = service_account_info(token_endpoint.token_uri)
    info["private_key"] = (
        "-----BEGIN PRIVATE KEY-----\nTm90QVJlYWxLZXlBdEFsbEp1c3RUZXh0\n-----END PRIVATE KEY-----\n"
    )
    settings = ConnectionSettings(auth_type="service_account", keyfile_dict=info)
    with pytest.raises(ConnectionConfigError, match="service-account key cannot be loaded") as err:
        build_request_auth(settings)
    assert "Tm90QVJlYWxLZXlBdEFsbEp1c3RUZXh0" not in str(err.value)


def test_secrets_are_registered_with_the_airflow_masker(token_endpoint, api_key):
    from airflow.providers.common.compat.sdk import redact

    user = authorized_user_info(token_endpoint.token_uri)
    sa = service_account_info(token_endpoint.token_uri)
    key_line = sa["private_key"].splitlines()[5]
    auth = build_request_auth(ConnectionSettings(auth_type="authorized_user", keyfile_dict=user))
    build_request_auth(ConnectionSettings(auth_type="service_account", keyfile_dict=sa))
    build_request_auth(ConnectionSettings(auth_type="api_key", api_key=api_key))
    token = auth.headers()["authorization"].removeprefix("Bearer ")
    for secret in (user["client_secret"], user["refresh_token"], key_line, sa["private_key"], api_key, token):
        redacted = redact(f"value={secret} end")
        assert secret not in redacted, "secret was not registered with the masker"
        assert "***" in redacted


def external_account_info(token_url: str, subject_token_file: str) -> dict:
    """A workload identity federation configuration whose subject token is read from a file."""
    return {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/q",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": token_url,
        "credential_source": {"file": subject_token_file},
    }


def test_external_account_trades_its_subject_token_at_the_sts_endpoint(
    make_hook, api_server, token_endpoint, tmp_path
):
    subject = tmp_path / "oidc-token"
    subject.write_text("outside-oidc-token-abc")
    info = external_account_info(token_endpoint.token_uri, str(subject))
    hook = make_hook(host=api_server.url, extra={"keyfile_dict": info})
    hook.get_tuned_model("m1")
    (exchange,) = token_endpoint.requests
    form = exchange.form
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:token-exchange"]
    assert form["subject_token"] == ["outside-oidc-token-abc"]
    assert form["audience"] == [info["audience"]]
    assert api_server.requests[0].headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"


def test_external_account_without_a_credential_source_is_a_config_error():
    info = {
        "type": "external_account",
        "audience": "a",
        "subject_token_type": "t",
        "token_url": "https://sts.googleapis.com/v1/token",
    }
    with pytest.raises(ConnectionConfigError, match=r"missing required field.*credential_source"):
        ConnectionSettings(keyfile_dict=info)
