"""No secret in any log record (captured at DEBUG), exception message or repr, in every auth mode."""

from __future__ import annotations

import logging

import pytest
from airflow.providers.common.compat.sdk import redact

from airflow_provider_tuning.exceptions import GenerativeLanguageError
from tests.unit.hooks.glapi_loopback import (
    DROP,
    Reply,
    authorized_user_info,
    error_body,
    service_account_info,
)

LOGGERS = ("", "airflow_provider_tuning", "google", "google.auth", "urllib3", "requests", "airflow")


@pytest.fixture
def capture(caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _texts(records, errors, objects):
    """Every string a log handler or a user could see."""
    for record in records:
        yield record.getMessage()
        yield repr(record.args)
        if record.exc_info:
            yield logging.Formatter().formatException(record.exc_info)
        if record.name.startswith("airflow_provider_tuning"):
            yield repr(vars(record))
    for err in errors:
        yield str(err)
        yield repr(err)
        yield repr(getattr(err, "api_message", ""))
    for obj in objects:
        yield repr(obj)
        yield str(obj)


def assert_no_secret(secrets, records, errors=(), objects=()):
    secrets = [s for s in secrets if s]
    assert secrets
    for text in _texts(records, errors, objects):
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]!r}"


def _run(call):
    try:
        call()
    except GenerativeLanguageError as err:
        logging.getLogger("airflow_provider_tuning.test").exception("call failed")
        return err
    return None


def test_api_key_mode_leaks_nothing(make_hook, api_server, api_key, capture):
    hook = make_hook(host=api_server.url, password=api_key)
    api_server.replies += [
        Reply(503, error_body(503, "UNAVAILABLE", "busy")),
        DROP,
        Reply(200, {"models": [{"name": "models/a"}], "nextPageToken": "n"}),
        Reply(200, {"models": [{"name": "models/b"}]}),
        Reply(400, error_body(400, "INVALID_ARGUMENT", f"API key not valid: {api_key}")),
        Reply(404, f"<html>{api_key}</html>"),
        Reply(403, error_body(403, "PERMISSION_DENIED", "denied")),
    ]
    errors = [
        _run(lambda: list(hook.list_models())),
        _run(lambda: hook.get_tuned_model("m1")),
        _run(lambda: hook.get_tuned_model("m2")),
    ]
    ok, message = hook.test_connection()
    assert not ok
    assert len([e for e in errors if e is not None]) == 2
    assert capture.records  # the scenario really logged (retries at WARNING, requests at DEBUG)
    assert any(r.levelno == logging.WARNING for r in capture.records)
    assert_no_secret(
        [api_key],
        capture.records,
        [e for e in errors if e] + [message],
        [hook, hook.settings, hook.client, hook.client.auth],
    )
    for request in api_server.requests:
        assert api_key not in request.target


def test_oauth_modes_leak_nothing(make_hook, api_server, token_endpoint, capture):
    user = authorized_user_info(token_endpoint.token_uri, quota_project_id="qp")
    sa = service_account_info(token_endpoint.token_uri)
    target = "target@test-project.iam.gserviceaccount.com"
    user_hook = make_hook(host=api_server.url, extra={"keyfile_dict": user})
    iam_url = f"{token_endpoint.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    sa_hook = make_hook(
        host=api_server.url,
        extra={"keyfile_dict": sa, "impersonation_chain": target, "iam_endpoint_override": iam_url},
    )
    api_server.replies += [
        Reply(401, error_body(401, "UNAUTHENTICATED", "expired")),
        Reply(200, {"name": "tunedModels/m1"}),
        Reply(503, error_body(503, "UNAVAILABLE", "busy")),
        Reply(200, {"name": "tunedModels/m1"}),
        Reply(404, error_body(404, "NOT_FOUND", "no such model")),
    ]
    errors = [
        _run(lambda: user_hook.get_tuned_model("m1")),
        _run(lambda: sa_hook.get_tuned_model("m1")),
        _run(lambda: sa_hook.get_tuned_model("missing")),
    ]
    token_endpoint.fail_with = Reply(400, {"error": "invalid_grant", "error_description": "revoked"})
    user_hook.client.auth.invalidate()
    errors.append(_run(lambda: user_hook.get_tuned_model("m1")))
    assert [type(e).__name__ if e else None for e in errors] == [
        None,
        None,
        "NotFoundError",
        "UnauthenticatedError",
    ]
    tokens = token_endpoint.issued + token_endpoint.impersonated
    secrets = [user["client_secret"], user["refresh_token"], *sa["private_key"].splitlines()[1:-1], *tokens]
    assert_no_secret(
        secrets,
        capture.records,
        [e for e in errors if e],
        [user_hook, sa_hook, user_hook.settings, sa_hook.settings, user_hook.client, sa_hook.client],
    )
    # google-auth's own DEBUG request log (emitted only when the "google" logger is configured)
    # carries request headers as structured extras, e.g. the impersonation source's bearer token
    # on the IAM call. Every such token is registered with Airflow's masker, which scrubs them.
    for record in capture.records:
        for token in tokens:
            assert token not in redact(repr(vars(record)))
