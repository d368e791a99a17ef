"""Credentials on the Vertex AI routes and the OAuth token endpoint ``/token``: google-auth's own
refresh paths (authorized user, service account JWT), bearer-only Vertex routes, configured
credentials, and 404 for paths the services do not have."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import google.auth.transport.requests
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account

from tests.emulator.vertex.vertex_support import (
    CLOUD_PLATFORM,
    PROJECT,
    REFRESH_TOKEN,
    VertexApi,
    credentials,
)
from tuning_api_emulator import Emulator

SERVICE_ACCOUNT = "tuner@tuning-project.iam.gserviceaccount.com"


def _service_account(url: str) -> service_account.Credentials:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": SERVICE_ACCOUNT,
        "client_id": "1234567890",
        "token_uri": f"{url}/token",
    }
    return service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])


def _unsigned_jwt(claims: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def _tuning_jobs(emulator: Emulator) -> str:
    return f"{emulator.url}/v1/projects/{PROJECT}/locations/us-central1/tuningJobs"


def test_authorized_user_credentials_refresh_at_the_emulator(emulator: Emulator) -> None:
    creds = credentials(emulator.url)
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token.startswith("ya29.emulator-")
    assert creds.expiry is not None
    token_request = [r for r in emulator.request_log if r["path"] == "/token"][-1]
    assert token_request["body"] == "<redacted>"  # the refresh token and client secret never reach the log
    assert token_request["rpc"] == "Token"
    answer = requests.get(
        _tuning_jobs(emulator), headers={"Authorization": f"Bearer {creds.token}"}, timeout=30
    )
    assert answer.status_code == 200


def test_service_account_credentials_refresh_with_a_jwt_for_googles_audience(emulator: Emulator) -> None:
    creds = _service_account(emulator.url)
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token.startswith("ya29.emulator-")
    now = int(time.time())
    claims = {"iss": SERVICE_ACCOUNT, "scope": CLOUD_PLATFORM, "iat": now, "exp": now + 3600}
    wrong_audience = requests.post(
        f"{emulator.url}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _unsigned_jwt({**claims, "aud": f"{emulator.url}/token"}),
        },
        timeout=30,
    )
    assert wrong_audience.status_code == 400
    assert wrong_audience.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT: Failed audience check. The right audience is "
        "https://oauth2.googleapis.com/token",
    }
    too_long = requests.post(
        f"{emulator.url}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _unsigned_jwt(
                {**claims, "aud": "https://oauth2.googleapis.com/token", "exp": now + 7200}
            ),
        },
        timeout=30,
    )
    assert too_long.json()["error"] == "invalid_grant"
    assert "short-lived" in too_long.json()["error_description"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "r"}, "invalid_request"),
        ({"grant_type": "refresh_token", "client_id": "c", "client_secret": "s"}, "invalid_request"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y"}, "invalid_grant"),
    ],
)
def test_the_token_endpoint_refuses_malformed_grants(
    emulator: Emulator, form: dict[str, str], error: str
) -> None:
    answer = requests.post(f"{emulator.url}/token", data=form, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"] == error


def test_vertex_routes_take_bearer_tokens_only(emulator: Emulator) -> None:
    url = _tuning_jobs(emulator)
    with_key = requests.get(url, headers={"x-goog-api-key": "a-key"}, timeout=30)
    assert with_key.status_code == 401
    assert with_key.json()["error"]["message"].startswith("API keys are not supported by this API.")
    assert with_key.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"
    assert requests.get(url, params={"key": "a-key"}, timeout=30).status_code == 401
    missing = requests.get(url, timeout=30)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert missing.json()["error"]["message"].startswith(
        "Request is missing required authentication credential."
    )
    basic = requests.get(url, headers={"Authorization": "Basic eDp5"}, timeout=30)
    assert basic.status_code == 401
    # while no credential is configured, any bearer token passes
    assert requests.get(url, headers={"Authorization": "Bearer anything"}, timeout=30).status_code == 200


def test_configured_credentials_accept_only_configured_and_issued_tokens(
    make_emulator: Callable[..., Emulator],
) -> None:
    emulator = make_emulator(
        tokens=["static-token"],
        api_keys=["gemini-key"],
        refresh_tokens=[REFRESH_TOKEN],
        service_accounts=[SERVICE_ACCOUNT],
    )
    url = _tuning_jobs(emulator)
    assert requests.get(url, headers={"Authorization": "Bearer static-token"}, timeout=30).status_code == 200
    wrong = requests.get(url, headers={"Authorization": "Bearer guessed"}, timeout=30)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["status"] == "UNAUTHENTICATED"
    assert requests.get(url, headers={"x-goog-api-key": "gemini-key"}, timeout=30).status_code == 401

    issued = VertexApi(emulator.url)  # refreshes with the configured refresh token
    assert issued.get(f"{issued.parent()}/tuningJobs") == {}
    sa = _service_account(emulator.url)
    sa.refresh(google.auth.transport.requests.Request())
    assert requests.get(url, headers={"Authorization": f"Bearer {sa.token}"}, timeout=30).status_code == 200
    # issued tokens pass on the Gemini routes too, where configured keys still work
    gemini = f"{emulator.url}/v1beta/models"
    assert (
        requests.get(gemini, headers={"Authorization": f"Bearer {issued.token}"}, timeout=30).status_code
        == 200
    )
    assert requests.get(gemini, headers={"x-goog-api-key": "gemini-key"}, timeout=30).status_code == 200

    with pytest.raises(RefreshError, match="invalid_grant"):
        credentials(emulator.url, refresh_token="not-configured").refresh(
            google.auth.transport.requests.Request()
        )
    stranger = _service_account(emulator.url)
    stranger._service_account_email = "stranger@example.iam.gserviceaccount.com"
    with pytest.raises(RefreshError, match="account not found"):
        stranger.refresh(google.auth.transport.requests.Request())


def test_issued_tokens_expire_after_an_hour(make_emulator: Callable[..., Emulator], clock: object) -> None:
    emulator = make_emulator(tokens=["static-token"], refresh_tokens=[REFRESH_TOKEN])
    api = VertexApi(emulator.url)
    assert api.get(f"{api.parent()}/tuningJobs") == {}
    clock.advance(3600)  # type: ignore[attr-defined]
    assert api.error("GET", f"{api.parent()}/tuningJobs", 401)["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1beta1/tuningJobs"),  # what google-genai builds with an API key (python-genai#908)
        ("GET", "/v1beta1/projects/p/locations/us-central1/widgets"),
        ("DELETE", "/v1/projects/p/locations/us-central1/tuningJobs/1"),  # tuning jobs have no delete
        ("GET", "/v1/projects/p/locations/us-central1/models/1:generateContent"),
        ("GET", "/v2/projects/p/locations/us-central1/tuningJobs"),
        ("GET", "/nothing/here"),
        ("GET", "/token"),  # the token endpoint takes POST only
    ],
)
def test_unknown_paths_answer_404(emulator: Emulator, method: str, path: str) -> None:
    answer = requests.request(
        method, f"{emulator.url}{path}", headers={"Authorization": "Bearer t"}, timeout=30
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == {"code": 404, "message": "Method not found.", "status": "NOT_FOUND"}


def test_unknown_storage_paths_answer_404(emulator: Emulator) -> None:
    answer = requests.get(f"{emulator.url}/storage/v1/projects/x/serviceAccount", timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"]["errors"][0]["reason"] == "notFound"
