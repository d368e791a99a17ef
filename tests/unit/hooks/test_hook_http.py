"""The hook's HTTP layer against a loopback server: retries, backoff, Retry-After, errors, pooling."""

from __future__ import annotations

import logging
import socket

import pytest
import requests

from airflow_provider_tuning.exceptions import (
    AlreadyExistsError,
    ApiConnectionError,
    ApiError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    ServerError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.hooks.retry import RetryPolicy
from tests.unit.hooks.glapi_loopback import DROP, HANG, Reply, error_body, http_date

TUNED_MODEL = {
    "displayName": "number generator",
    "baseModel": "models/gemini-1.5-flash-001-tuning",
    "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}}},
}
OPERATION = {"name": "tunedModels/num-gen/operations/op-1", "metadata": {"totalSteps": 38}}


@pytest.fixture
def hook(make_hook, api_server, api_key):
    return make_hook(host=api_server.url, password=api_key)


def unavailable(message="The service is currently unavailable."):
    return Reply(503, error_body(503, "UNAVAILABLE", message))


# --- retries ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_with_growing_jittered_backoff(hook, api_server, status):
    api_server.replies += [Reply(status, error_body(status, "X", "transient"))] * 3
    api_server.replies.append(Reply(200, {"name": "tunedModels/m1"}))
    assert hook.get_tuned_model("m1") == {"name": "tunedModels/m1"}
    assert len(api_server.requests) == 4
    # FAST_RETRY: initial 1 s, x2, jitter 0.5 -> attempt n waits within [b/2, b], b = 1, 2, 4
    assert len(hook.sleeps) == 3
    for delay, ceiling in zip(hook.sleeps, (1.0, 2.0, 4.0), strict=True):
        assert ceiling * 0.5 <= delay <= ceiling


def test_retries_are_bounded_then_the_error_is_raised(hook, api_server):
    api_server.replies += [unavailable()] * 10
    with pytest.raises(ServerError) as info:
        hook.get_tuned_model("m1")
    assert len(api_server.requests) == hook.retry.max_attempts == 4
    assert len(hook.sleeps) == 3
    err = info.value
    assert (err.http_status, err.status, err.api_message) == (
        503,
        "UNAVAILABLE",
        "The service is currently unavailable.",
    )
    assert err.request == "GET /v1beta/tunedModels/m1"


def test_quota_exhausted_after_retries(hook, api_server):
    api_server.replies += [Reply(429, error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded."))] * 4
    with pytest.raises(QuotaExhaustedError, match=r"429 RESOURCE_EXHAUSTED: Quota exceeded\."):
        list(hook.list_tuned_models())


def test_retry_after_seconds_is_honoured(hook, api_server):
    api_server.replies += [
        Reply(429, error_body(429, "RESOURCE_EXHAUSTED", "slow down"), {"Retry-After": "7"}),
        Reply(503, error_body(503, "UNAVAILABLE", "x"), {"Retry-After": "120"}),
        Reply(200, {}),
    ]
    hook.get_tuned_model("m1")
    assert hook.sleeps == [7.0, 8.0]  # the second is capped at max_delay


def test_retry_after_http_date_is_honoured(hook, api_server):
    api_server.replies += [unavailable(), Reply(200, {})]
    api_server.replies[0].headers["Retry-After"] = http_date(5)
    hook.get_tuned_model("m1")
    (delay,) = hook.sleeps
    assert 2.0 < delay <= 5.0  # the date has one-second resolution


@pytest.mark.parametrize(
    ("status", "rpc_status", "cls"),
    [
        (400, "INVALID_ARGUMENT", InvalidArgumentError),
        (400, "FAILED_PRECONDITION", InvalidArgumentError),
        (403, "PERMISSION_DENIED", PermissionDeniedError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "ALREADY_EXISTS", AlreadyExistsError),
        (412, "FAILED_PRECONDITION", ApiError),
        (501, "UNIMPLEMENTED", ServerError),
    ],
)
def test_other_errors_are_not_retried_and_map_to_a_class(hook, api_server, status, rpc_status, cls):
    api_server.replies.append(Reply(status, error_body(status, rpc_status, f"message for {status}")))
    with pytest.raises(cls) as info:
        hook.update_tuned_model("m1", {"displayName": "x"}, update_mask=["displayName"])
    err = info.value
    assert type(err) is cls
    assert (err.http_status, err.status, err.api_message) == (status, rpc_status, f"message for {status}")
    assert err.request == "PATCH /v1beta/tunedModels/m1"  # never the query string
    assert str(err) == f"PATCH /v1beta/tunedModels/m1: {status} {rpc_status}: message for {status}"
    assert len(api_server.requests) == 1
    assert hook.sleeps == []


def test_error_details_are_kept(hook, api_server):
    body = error_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
    ]
    api_server.replies.append(Reply(400, body))
    with pytest.raises(InvalidArgumentError) as info:
        hook.get_model("models/text-bison-001")
    assert info.value.reason == "API_KEY_INVALID"


def test_error_message_never_echoes_the_api_key(hook, api_server, api_key):
    api_server.replies.append(Reply(400, error_body(400, "INVALID_ARGUMENT", f"bad key {api_key}")))
    api_server.replies.append(Reply(404, f"<html>no route for key={api_key}</html>"))
    with pytest.raises(InvalidArgumentError) as first:
        hook.get_tuned_model("m1")
    with pytest.raises(NotFoundError) as second:
        hook.get_tuned_model("m1")
    for err in (first.value, second.value):
        assert api_key not in str(err)
        assert api_key not in err.api_message
        assert "***" in str(err)


def test_html_error_page_becomes_an_error_with_a_snippet(hook, api_server):
    api_server.replies += [Reply(502, "<html><body>Bad Gateway</body></html>")] * 4
    with pytest.raises(ServerError) as info:
        hook.get_tuned_model("m1")
    assert info.value.http_status == 502
    assert info.value.status is None
    assert "Bad Gateway" in info.value.api_message


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (
            Reply(200, "<html>login page</html>"),
            "the response is not JSON (text/html; charset=utf-8, 23 bytes)",
        ),
        (Reply(200, b'{"name": "tunedModels/trunc', {"Content-Type": "application/json"}), "not JSON"),
        (Reply(200, [1, 2]), "the response is a JSON list, not an object"),
    ],
)
def test_a_200_that_is_not_a_json_object_is_unexpected(hook, api_server, reply, fragment):
    """Transient by the one rule (a proxy's page, a cut body): a GET repeats it, then raises."""
    api_server.replies.extend([reply] * hook.retry.max_attempts)
    with pytest.raises(UnexpectedResponseError) as info:
        hook.get_tuned_model("m1")
    assert fragment in str(info.value)
    assert info.value.request == "GET /v1beta/tunedModels/m1"
    assert len(api_server.requests) == hook.retry.max_attempts


def test_a_malformed_200_to_a_create_without_an_id_is_not_repeated(hook, api_server):
    """The create may have been committed: repeating it could make a second model."""
    api_server.replies.append(Reply(200, "<html>proxy</html>"))
    with pytest.raises(UnexpectedResponseError):
        hook.create_tuned_model({"baseModel": "models/x"})
    assert len(api_server.requests) == 1


def test_empty_success_body_is_an_empty_dict(hook, api_server):
    api_server.replies.append(Reply(200, b""))
    assert hook.delete_tuned_model("m1") == {}


def test_redirects_are_not_followed(hook, api_server):
    api_server.replies.append(Reply(302, b"", {"Location": "http://127.0.0.1:9/elsewhere"}))
    with pytest.raises(UnexpectedResponseError, match="redirects are not followed"):
        hook.get_tuned_model("m1")
    assert len(api_server.requests) == 1


# --- connection errors and timeouts --------------------------------------------------------------------


def test_dropped_connection_is_retried_for_reads(hook, api_server):
    api_server.replies += [DROP, DROP, Reply(200, {"name": "tunedModels/m1"})]
    assert hook.get_tuned_model("m1") == {"name": "tunedModels/m1"}
    assert len(api_server.requests) == 3
    assert len(hook.sleeps) == 2


def test_refused_connection_after_retries(make_hook, api_key):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    hook = make_hook(host=url, password=api_key)
    with pytest.raises(ApiConnectionError, match=r"GET /v1beta/tunedModels/m1: connection error \(after 4"):
        hook.get_tuned_model("m1")
    assert len(hook.sleeps) == 3


def test_read_timeout_is_retried_then_reported(make_hook, api_server, api_key):
    hook = make_hook(
        host=api_server.url, password=api_key, timeout=(2.0, 0.2), retry=RetryPolicy(max_attempts=2)
    )
    api_server.replies += [HANG, HANG]
    with pytest.raises(ApiConnectionError, match="read timeout"):
        hook.get_tuned_model("m1")
    assert len(api_server.requests) == 2
    assert hook.client.timeout == (2.0, 0.2)


def test_create_without_id_is_not_retried_after_a_dropped_connection(hook, api_server):
    api_server.replies += [DROP, Reply(200, OPERATION)]
    with pytest.raises(ApiConnectionError, match="not retried, a retry could create a duplicate"):
        hook.create_tuned_model(TUNED_MODEL)
    assert [r.method for r in api_server.requests] == ["POST"]  # exactly one create reached the server
    assert hook.sleeps == []


def test_create_with_id_is_retried_after_a_dropped_connection(hook, api_server):
    api_server.replies += [DROP, Reply(200, OPERATION)]
    assert hook.create_tuned_model(TUNED_MODEL, "num-gen") == OPERATION
    assert [(r.method, r.query) for r in api_server.requests] == [("POST", {"tunedModelId": ["num-gen"]})] * 2


def test_create_without_id_is_retried_on_a_503(hook, api_server):
    api_server.replies += [unavailable(), Reply(200, OPERATION)]
    assert hook.create_tuned_model(TUNED_MODEL) == OPERATION
    assert len(api_server.requests) == 2
    assert api_server.requests[0].query == {}


# --- session, logging ----------------------------------------------------------------------------------


def test_one_pooled_session_reuses_its_connection(hook, api_server):
    session = hook.get_conn()
    assert isinstance(session, requests.Session)
    for _ in range(3):
        hook.get_tuned_model("m1")
    assert hook.get_conn() is session
    assert len({r.client_port for r in api_server.requests}) == 1  # keep-alive: one TCP connection
    assert session.trust_env is False  # loopback: no proxy from the environment
    hook.close()
    hook.get_tuned_model("m1")
    assert hook.get_conn() is not session


def test_each_retry_is_logged_at_warning(hook, api_server, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    api_server.replies += [unavailable(), DROP, Reply(200, {})]
    hook.get_tuned_model("m1")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("GET /v1beta/tunedModels/m1 failed (HTTP 503); retry 2/4 in ")
    assert warnings[1].startswith("GET /v1beta/tunedModels/m1 failed (connection error); retry 3/4 in ")
    assert all(api_key not in r.getMessage() for r in caplog.records)
