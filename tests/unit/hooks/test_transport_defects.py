"""Regression tests of the one transport: token-endpoint outages, redirects of token requests,
partial secrets in messages, error details, and JSON nested too deeply."""

from __future__ import annotations

import json

import pytest

from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    InvalidArgumentError,
    InvalidInputError,
    UnauthenticatedError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.hooks.credentials import scrub_secrets
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.transport import Call, classify, is_transient, parse_json, prepare_request
from tests.unit.hooks.glapi_loopback import LoopbackServer, Reply, authorized_user_info, error_body

DEEP = b"[" * 100_000 + b"]" * 100_000


# -- defect 1: a token-endpoint outage is transient -------------------------------------------------


def test_a_token_endpoint_outage_is_transient_and_retried(make_hook, api_server, token_endpoint):
    """google-auth raises RefreshError(retryable=True) for a 5xx: a transient failure, not a 401."""
    token_endpoint.fail_with = Reply(503, {"error": "temporarily_unavailable"})
    hook = make_hook(
        host=api_server.url, extra={"keyfile_dict": authorized_user_info(token_endpoint.token_uri)}
    )
    with pytest.raises(ApiConnectionError, match="token endpoint could not issue a token") as info:
        hook.get_tuned_model("m1")
    assert is_transient(info.value)
    assert len(hook.sleeps) == hook.retry.max_attempts - 1  # retried like any transient failure
    assert api_server.requests == []

    token_endpoint.fail_with = None  # the endpoint is back: the next call works
    api_server.replies.append(Reply(200, {"name": "tunedModels/m1", "state": "ACTIVE"}))
    assert hook.get_tuned_model("m1")["state"] == "ACTIVE"


def test_a_refused_grant_stays_final(make_hook, api_server, token_endpoint):
    token_endpoint.fail_with = Reply(400, {"error": "invalid_grant", "error_description": "revoked"})
    hook = make_hook(
        host=api_server.url, extra={"keyfile_dict": authorized_user_info(token_endpoint.token_uri)}
    )
    with pytest.raises(UnauthenticatedError) as info:
        hook.get_tuned_model("m1")
    assert not is_transient(info.value)
    assert hook.sleeps == []


def test_a_create_without_an_id_is_retried_after_a_token_outage(make_hook, api_server, token_endpoint):
    """Nothing was sent while the token endpoint was down: repeating cannot duplicate the model."""
    attempts = {"n": 0}
    real = token_endpoint._respond

    def flaky(request):
        attempts["n"] += 1
        return Reply(503, {"error": "unavailable"}) if attempts["n"] <= 3 else real(request)

    token_endpoint.server.responder = flaky
    hook = make_hook(
        host=api_server.url, extra={"keyfile_dict": authorized_user_info(token_endpoint.token_uri)}
    )
    api_server.replies.append(Reply(200, {"name": "tunedModels/x/operations/o"}))
    assert hook.create_tuned_model({"baseModel": "models/x"})["name"] == "tunedModels/x/operations/o"
    assert len(api_server.requests) == 1


# -- defect 9: token requests never follow a redirect -----------------------------------------------


def test_a_token_request_does_not_follow_a_307(make_hook, api_server):
    """A 307 would re-post the client secret and refresh token to wherever it points."""
    with LoopbackServer() as elsewhere, LoopbackServer() as token:
        token.replies.append(Reply(307, b"", {"Location": f"{elsewhere.url}/token"}))
        info = authorized_user_info(f"{token.url}/token")
        hook = make_hook(host=api_server.url, extra={"keyfile_dict": info})
        with pytest.raises((UnauthenticatedError, ApiConnectionError)) as err:
            hook.get_tuned_model("m1")
        assert elsewhere.requests == []
        assert len(token.requests) == 1
        assert info["refresh_token"] not in str(err.value)
        assert info["client_secret"] not in str(err.value)


# -- defect 9: partial secrets and error details are scrubbed ----------------------------------------


def test_a_prefix_of_the_key_echoed_by_the_api_is_scrubbed(make_hook, api_server, api_key):
    body = error_body(400, "INVALID_ARGUMENT", f"API key {api_key[:12]}... is not valid")
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "metadata": {"key": api_key, "prefix": api_key[:10]},
        },
    ]
    api_server.replies.append(Reply(400, body))
    hook = make_hook(host=api_server.url, password=api_key)
    with pytest.raises(InvalidArgumentError) as info:
        hook.get_tuned_model("m1")
    text = str(info.value) + json.dumps(info.value.details)
    assert api_key[:8] not in text
    assert "API key ***... is not valid" in str(info.value)
    assert info.value.reason == "API_KEY_INVALID"  # details keep their shape


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key AIzaSyB4xQ9-abc rejected", "key *** rejected"),
        ("token ya29.a0AfH6SMB is bad", "token *** is bad"),
        ("short AIza ok", "short AIza ok"),  # under six characters: ordinary text
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_scrub_secrets_removes_every_fragment_of_six_characters_or_more(text, expected):
    secrets = ["AIzaSyB4xQ9-abcdefghijklmnop", "ya29.a0AfH6SMBxyz"]
    assert scrub_secrets(text, secrets) == expected


# -- defect 7: JSON nested too deeply ---------------------------------------------------------------


def test_parse_json_refuses_deep_nesting_with_a_value_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(DEEP)
    assert parse_json(b'{"a": [[["x"]]]}') == {"a": [[["x"]]]}
    assert parse_json('"[[[[ in a string ]]]]' + '"') == "[[[[ in a string ]]]]"


def test_a_deeply_nested_api_response_is_an_unexpected_response(make_hook, api_server, api_key):
    api_server.replies.extend([Reply(200, DEEP, {"Content-Type": "application/json"})] * 4)
    hook = make_hook(host=api_server.url, password=api_key)
    with pytest.raises(UnexpectedResponseError, match="nested too deeply"):
        hook.get_tuned_model("m1")


def test_a_deeply_nested_error_body_keeps_its_status():
    request = prepare_request("http://127.0.0.1:1", "GET", "/v1beta/models")
    error = classify(request, 503, DEEP)
    assert error.http_status == 503
    assert "nests too deeply" in str(error) or "nested too deeply" in str(error)


def test_a_request_body_nested_too_deeply_is_an_input_error():
    body: list = []
    for _ in range(100_000):
        body = [body]
    with pytest.raises(InvalidInputError, match="nests too deeply"):
        prepare_request("http://127.0.0.1:1", "POST", "/v1beta/tunedModels", body={"x": body})


# -- the one set of rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (200, True),
        (301, False),
        (307, False),
        (400, False),
        (404, False),
        (408, True),
        (429, True),
        (500, True),
        (501, False),
        (503, True),
        (520, True),
    ],
)
def test_one_rule_for_what_is_transient(status, transient):
    request = prepare_request("http://127.0.0.1:1", "GET", "/v1/x")
    outcome = classify(request, status, b"<html>not json</html>")
    assert is_transient(outcome) is transient


def test_a_redirect_is_final_for_every_request():
    call = Call(prepare_request("http://127.0.0.1:1", "GET", "/v1/x"), RetryPolicy(), refreshable=True)
    with pytest.raises(UnexpectedResponseError, match="redirects are not followed"):
        call.on_response(302, b"", headers={"Location": "http://elsewhere"})
