"""Authentication as the service does it, with configurable accepted keys and tokens."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests

from tests.emulator.emulator_support import Api
from tuning_api_emulator import Emulator
from tuning_api_emulator.app import safe_query

PATH = "/v1beta/models"


def test_no_credentials_is_permission_denied(api: Api) -> None:
    anonymous = Api(api.base_url, headers={})
    error = anonymous.error("GET", PATH, 403)
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"].startswith("Method doesn't allow unregistered callers")
    assert error["details"][0]["reason"] == "CONSUMER_INVALID"


def test_defaults_accept_any_non_empty_key_or_token(api: Api) -> None:
    for headers, params in (
        ({"x-goog-api-key": "anything"}, {}),
        ({}, {"key": "anything"}),
        ({"Authorization": "Bearer whatever"}, {}),
        ({}, {"access_token": "whatever"}),
    ):
        Api(api.base_url, headers=headers).get(PATH, params=params)
    error = Api(api.base_url, headers={"x-goog-api-key": ""}).error("GET", PATH, 400)
    assert (error["status"], error["details"][0]["reason"]) == ("INVALID_ARGUMENT", "API_KEY_INVALID")
    assert (
        Api(api.base_url, headers={"Authorization": "Bearer "}).error("GET", PATH, 401)["status"]
        == "UNAUTHENTICATED"
    )


def test_configured_keys_and_tokens(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(api_keys=["good-key"], tokens=["good-token"])
    good_key = Api(emulator.url, headers={"x-goog-api-key": "good-key"})
    good_key.get(PATH)
    Api(emulator.url, headers={}).get(PATH, params={"key": "good-key"})
    Api(emulator.url, headers={"Authorization": "Bearer good-token", "x-goog-user-project": "p"}).get(PATH)

    error = Api(emulator.url, headers={"x-goog-api-key": "bad-key"}).error("GET", PATH, 400)
    assert error["message"] == "API key not valid. Please pass a valid API key."
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (
        Api(emulator.url, headers={}).error("GET", PATH, 400, params={"key": "bad-key"})["status"]
        == "INVALID_ARGUMENT"
    )
    error = Api(emulator.url, headers={"Authorization": "Bearer bad-token"}).error("GET", PATH, 401)
    assert error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Request had invalid authentication credentials.")
    assert (
        Api(emulator.url, headers={"Authorization": "Basic Zm9vOmJhcg=="}).error("GET", PATH, 401)["status"]
        == "UNAUTHENTICATED"
    )
    # a good token does not excuse a bad key
    both = {"Authorization": "Bearer good-token", "x-goog-api-key": "bad-key"}
    assert Api(emulator.url, headers=both).error("GET", PATH, 400)["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("configured", "headers", "params", "status"),
    [
        ({"api_keys": ["good-key"]}, {"Authorization": "Bearer any-token"}, {}, 401),
        ({"api_keys": ["good-key"]}, {}, {"access_token": "any-token"}, 401),
        ({"api_keys": ["good-key"]}, {}, {"oauth_token": "any-token"}, 401),
        ({"tokens": ["good-token"]}, {"x-goog-api-key": "any-key"}, {}, 400),
        ({"tokens": ["good-token"]}, {}, {"key": "any-key"}, 400),
    ],
)
def test_once_a_credential_is_configured_only_configured_ones_pass(
    make_emulator: Callable[..., Emulator],
    configured: dict[str, list[str]],
    headers: dict[str, str],
    params: dict[str, str],
    status: int,
) -> None:
    emulator = make_emulator(**configured)
    error = Api(emulator.url, headers=headers).error("GET", PATH, status, params=params)
    assert error["status"] == ("UNAUTHENTICATED" if status == 401 else "INVALID_ARGUMENT")
    good = (
        {"x-goog-api-key": "good-key"} if "api_keys" in configured else {"Authorization": "Bearer good-token"}
    )
    Api(emulator.url, headers=good).get(PATH)
    state = emulator.state()
    assert (state["acceptedApiKeys"], state["acceptedTokens"]) == (
        len(configured.get("api_keys", [])),
        len(configured.get("tokens", [])),
    )


def test_no_keys_accepted_at_all(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(api_keys=[], tokens=["only-token"])
    assert (
        Api(emulator.url, headers={"x-goog-api-key": "k"}).error("GET", PATH, 400)["status"]
        == "INVALID_ARGUMENT"
    )
    Api(emulator.url, headers={"Authorization": "Bearer only-token"}).get(PATH)


def test_control_paths_need_no_credentials(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(api_keys=["k"])
    assert requests.get(f"{emulator.url}/_emulator/state", timeout=10).status_code == 200


def test_unknown_route_is_not_found_before_auth(api: Api) -> None:
    assert (
        Api(api.base_url, headers={}).error("GET", "/v1beta/nothing/here", 404)["message"]
        == "Method not found."
    )


@pytest.mark.parametrize("where", ["header", "bearer"])
def test_request_log_never_holds_credential_headers(
    make_emulator: Callable[..., Emulator], where: str
) -> None:
    emulator = make_emulator()
    secret = "s3cr3t-value-123"
    headers = {"x-goog-api-key": secret} if where == "header" else {"Authorization": f"Bearer {secret}"}
    Api(emulator.url, headers=headers).post(
        "/v1beta/models/gemini-1.0-pro-001:countTokens", {"contents": [{"parts": [{"text": "hi"}]}]}
    )
    entry = emulator.request_log[-1]
    assert secret not in repr(entry)
    assert entry["method"] == "POST"
    assert entry["path"] == "/v1beta/models/gemini-1.0-pro-001:countTokens"
    assert '"text": "hi"' in entry["body"]
    assert entry["rpc"] == "CountTokens"
    assert entry["status"] == 200
    redacted = {k.lower(): v for k, v in entry["headers"].items()}
    assert redacted["x-goog-api-key" if where == "header" else "authorization"] == "<redacted>"


@pytest.mark.parametrize("name", ["key", "access_token", "oauth_token", "$key", "api_key"])
def test_request_log_redacts_credentials_sent_in_the_url(
    make_emulator: Callable[..., Emulator], name: str
) -> None:
    emulator = make_emulator()
    secret = "leaky-secret-42"
    url = f"{emulator.url}{PATH}?pageSize=1&{name}={secret}&pageSize=2"
    requests.get(url, headers={"x-goog-api-key": "k"}, timeout=10)
    logged = requests.get(f"{emulator.url}/_emulator/requests", timeout=10).json()["requests"]
    assert secret not in repr(emulator.request_log)
    assert secret not in json.dumps(logged)
    assert logged[-1]["query"] == f"pageSize=1&{name}=<redacted>&pageSize=2"


def test_safe_query_decodes_names_and_keeps_everything_else() -> None:
    assert safe_query("%6Bey=s&ACCESS_TOKEN=t&key&alt=json") == (
        "%6Bey=<redacted>&ACCESS_TOKEN=<redacted>&key=<redacted>&alt=json"
    )
    assert safe_query("") == ""
