"""Hook methods: REST shapes, pagination, version checks, name handling, test_connection."""

from __future__ import annotations

import json

import pytest

from airflow_provider_tuning.exceptions import InvalidInputError, UnexpectedResponseError
from airflow_provider_tuning.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
from tests.unit.hooks.glapi_loopback import Reply, error_body


@pytest.fixture
def hook(make_hook, api_server, api_key):
    return make_hook(host=api_server.url, password=api_key)


def only_request(server):
    (request,) = server.requests
    return request


# --- pagination -------------------------------------------------------------------------------------


def test_list_tuned_models_follows_every_page(hook, api_server):
    api_server.replies += [
        Reply(
            200,
            {"tunedModels": [{"name": "tunedModels/a"}, {"name": "tunedModels/b"}], "nextPageToken": "p2"},
        ),
        Reply(200, {"tunedModels": [{"name": "tunedModels/c"}], "nextPageToken": "p3"}),
        Reply(200, {"tunedModels": [{"name": "tunedModels/d"}]}),
    ]
    models = hook.list_tuned_models(page_size=2, filter="owner:me")
    assert api_server.requests == []  # lazy: nothing is fetched before iteration
    assert [m["name"] for m in models] == ["tunedModels/a", "tunedModels/b", "tunedModels/c", "tunedModels/d"]
    assert [r.query for r in api_server.requests] == [
        {"pageSize": ["2"], "filter": ["owner:me"]},
        {"pageSize": ["2"], "filter": ["owner:me"], "pageToken": ["p2"]},
        {"pageSize": ["2"], "filter": ["owner:me"], "pageToken": ["p3"]},
    ]
    assert {r.path for r in api_server.requests} == {"/v1beta/tunedModels"}


def test_empty_list_and_missing_key(hook, api_server):
    api_server.replies.append(Reply(200, {}))
    assert list(hook.list_permissions("m1")) == []
    assert only_request(api_server).path == "/v1beta/tunedModels/m1/permissions"


def test_a_repeated_page_token_stops_the_iteration(hook, api_server):
    api_server.replies += [Reply(200, {"models": [{"name": "models/a"}], "nextPageToken": "same"})] * 3
    with pytest.raises(UnexpectedResponseError, match="repeated a nextPageToken"):
        list(hook.list_models())
    assert len(api_server.requests) == 2


def test_list_operations_and_permissions_pages(hook, api_server):
    api_server.replies += [
        Reply(200, {"operations": [{"name": "tunedModels/m1/operations/o1"}], "nextPageToken": "t"}),
        Reply(200, {"operations": [{"name": "tunedModels/m1/operations/o2"}]}),
    ]
    ops = list(hook.list_operations("tunedModels/m1", page_size=1, api_version="v1"))
    assert [o["name"] for o in ops] == ["tunedModels/m1/operations/o1", "tunedModels/m1/operations/o2"]
    assert [r.path for r in api_server.requests] == ["/v1/tunedModels/m1/operations"] * 2


# --- REST shapes ----------------------------------------------------------------------------------------


def test_create_sends_the_tuned_model_as_body_and_the_id_as_query(hook, api_server):
    tuned = {
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "tuningTask": {"hyperparameters": {"epochCount": 5}},
    }
    api_server.replies.append(Reply(200, {"name": "tunedModels/my-model/operations/o1"}))
    assert hook.create_tuned_model(tuned, "my-model") == {"name": "tunedModels/my-model/operations/o1"}
    request = only_request(api_server)
    assert (request.method, request.path, request.query) == (
        "POST",
        "/v1beta/tunedModels",
        {"tunedModelId": ["my-model"]},
    )
    assert request.json == tuned
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("bad_id", ["My-Model", "1abc", "a" * 41, "ends-with-", "has_underscore", ""])
def test_invalid_tuned_model_id_is_rejected_before_any_request(hook, api_server, bad_id):
    with pytest.raises(InvalidInputError, match="tuned_model_id"):
        hook.create_tuned_model({"baseModel": "models/x"}, bad_id)
    assert api_server.requests == []


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(["displayName", "description"], "displayName,description"), ("displayName, topK", "displayName,topK")],
)
def test_update_mask_is_a_query_parameter(hook, api_server, mask, expected):
    hook.update_tuned_model("tunedModels/m1", {"displayName": "new"}, update_mask=mask)
    request = only_request(api_server)
    assert (request.method, request.path) == ("PATCH", "/v1beta/tunedModels/m1")
    assert request.query == {"updateMask": [expected]}
    assert request.json == {"displayName": "new"}


def test_update_without_mask_sends_none_in_v1beta_but_is_refused_in_v1beta3(hook, api_server):
    hook.update_tuned_model("m1", {"description": "d"})
    assert only_request(api_server).query == {}
    with pytest.raises(InvalidInputError, match=r"update_mask is required by tunedModels\.patch in v1beta3"):
        hook.update_tuned_model("m1", {"description": "d"}, api_version="v1beta3")
    with pytest.raises(InvalidInputError, match="update_mask is empty"):
        hook.update_tuned_model("m1", {"description": "d"}, update_mask=" , ")
    assert len(api_server.requests) == 1


def test_generate_content_from_a_plain_string(hook, api_server):
    hook.generate_content(
        "tunedModels/m1",
        "What is 2+2?",
        generation_config={"temperature": 0.2},
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        system_instruction="Answer with a number.",
    )
    request = only_request(api_server)
    assert (request.method, request.path) == ("POST", "/v1beta/tunedModels/m1:generateContent")
    assert request.json == {
        "contents": [{"parts": [{"text": "What is 2+2?"}]}],
        "generationConfig": {"temperature": 0.2},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "systemInstruction": {"parts": [{"text": "Answer with a number."}]},
    }


def test_generate_content_with_content_dicts_on_a_base_model(hook, api_server):
    contents = [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "bye"}]},
    ]
    hook.generate_content("gemini-1.5-flash-001", contents, api_version="v1")
    request = only_request(api_server)
    assert request.path == "/v1/models/gemini-1.5-flash-001:generateContent"
    assert request.json == {"contents": contents}


@pytest.mark.parametrize(
    ("contents", "fragment"),
    [("  ", "empty string"), ([], "empty list"), (["x"], r"contents\[0\] must be a dict")],
)
def test_generate_content_rejects_bad_contents(hook, api_server, contents, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        hook.generate_content("models/m", contents)
    assert api_server.requests == []


def test_generate_text_body(hook, api_server):
    hook.generate_text(
        "tunedModels/palm-1",
        "1, 2, 3,",
        temperature=0.0,
        candidate_count=2,
        max_output_tokens=16,
        top_p=0.9,
        top_k=40,
        stop_sequences=["\n"],
    )
    request = only_request(api_server)
    assert (request.method, request.path) == ("POST", "/v1beta3/tunedModels/palm-1:generateText")
    assert request.json == {
        "prompt": {"text": "1, 2, 3,"},
        "temperature": 0.0,
        "candidateCount": 2,
        "maxOutputTokens": 16,
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["\n"],
    }


def test_operations_permissions_and_models_paths(hook, api_server):
    hook.get_operation("tunedModels/m1/operations/op-9")
    hook.cancel_operation("tunedModels/m1/operations/op-9")
    hook.create_permission("m1", {"granteeType": "USER", "emailAddress": "a@b.c", "role": "READER"})
    hook.delete_permission("tunedModels/m1/permissions/p1")
    hook.transfer_ownership("m1", "new-owner@example.com")
    hook.get_model("models/text-bison-001", api_version="v1beta3")
    calls = [(r.method, r.path, r.json) for r in api_server.requests]
    assert calls == [
        ("GET", "/v1/tunedModels/m1/operations/op-9", None),
        ("POST", "/v1/tunedModels/m1/operations/op-9:cancel", {}),
        (
            "POST",
            "/v1beta/tunedModels/m1/permissions",
            {"granteeType": "USER", "emailAddress": "a@b.c", "role": "READER"},
        ),
        ("DELETE", "/v1beta/tunedModels/m1/permissions/p1", None),
        ("POST", "/v1beta/tunedModels/m1:transferOwnership", {"emailAddress": "new-owner@example.com"}),
        ("GET", "/v1beta3/models/text-bison-001", None),
    ]


# --- versions and names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (
            lambda h: h.create_tuned_model({}, api_version="v1"),
            "tunedModels.create is not available in the v1 API",
        ),
        (lambda h: h.get_tuned_model("m", api_version="v1"), "tunedModels.get is not available in the v1"),
        (lambda h: h.list_tuned_models(api_version="v1"), "tunedModels.list is not available in the v1"),
        (
            lambda h: h.list_tuned_models(filter="x", api_version="v1beta3"),
            "filter is only available in v1beta",
        ),
        (
            lambda h: h.generate_content("models/m", "hi", api_version="v1beta3"),
            "generateContent is not available",
        ),
        (
            lambda h: h.generate_text("models/m", "hi", api_version="v1"),
            "generateText is not available in the v1",
        ),
        (lambda h: h.create_permission("m", {}, api_version="v1"), "permissions.create is not available"),
        (
            lambda h: h.transfer_ownership("m", "a@b.c", api_version="v1"),
            "transferOwnership is not available",
        ),
        (lambda h: h.get_model("m", api_version="v2"), "unknown api_version 'v2'"),
        (lambda h: h.list_models(page_size=0), "page_size must be a positive integer"),
    ],
)
def test_unsupported_versions_fail_before_any_request(hook, api_server, call, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        call(hook)
    assert api_server.requests == []


def test_api_version_resolution_order(make_hook, api_server, api_key):
    from_conn = make_hook(host=api_server.url, password=api_key, extra={"api_version": "v1beta3"})
    from_hook = make_hook(
        host=api_server.url, password=api_key, api_version="v1", extra={"api_version": "v1beta3"}
    )
    default = make_hook(host=api_server.url, password=api_key)
    api_server.replies += [Reply(200, {})] * 4
    from_conn.get_model("m")
    from_hook.get_model("m")
    from_hook.get_model("m", api_version="v1beta")
    default.get_model("m")
    assert [r.path for r in api_server.requests] == [
        "/v1beta3/models/m",
        "/v1/models/m",
        "/v1beta/models/m",
        "/v1beta/models/m",
    ]


def test_hook_rejects_an_unknown_api_version_and_bad_timeout():
    with pytest.raises(InvalidInputError, match="unknown api_version 'v3'"):
        GenerativeLanguageHook("x", api_version="v3")
    with pytest.raises(InvalidInputError, match="timeout"):
        GenerativeLanguageHook("x", timeout=(0, 5))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda h: h.get_tuned_model("a/b"), "must be 'tunedModels/<id>' or '<id>', got 'a/b'"),
        (lambda h: h.get_tuned_model("../admin"), "must be 'tunedModels/<id>' or '<id>'"),
        (lambda h: h.get_tuned_model("m?key=1"), "must be 'tunedModels/<id>' or '<id>'"),
        (lambda h: h.get_tuned_model(""), "must be a non-empty string"),
        (lambda h: h.get_model("tunedModels/m"), "model must be 'models/<id>' or '<id>'"),
        (lambda h: h.generate_content("corpora/x", "hi"), "model must be 'models/<id>', 'tunedModels/<id>'"),
        (lambda h: h.get_operation("tunedModels/m"), "tunedModels/<id>/operations/<operation>"),
        (lambda h: h.delete_permission("p1"), "tunedModels/<id>/permissions/<permission>"),
        (lambda h: h.transfer_ownership("m", "nobody"), "is not an email address"),
        (lambda h: h.create_tuned_model(["not", "a", "dict"]), "tuned_model must be a dict"),
    ],
)
def test_bad_names_fail_before_any_request(hook, api_server, call, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("?", r"\?")):
        call(hook)
    assert api_server.requests == []


def test_bare_and_prefixed_names_are_equivalent(hook, api_server):
    hook.get_tuned_model("m1")
    hook.get_tuned_model("tunedModels/m1")
    hook.get_model("text-bison-001")
    hook.get_model("models/text-bison-001")
    assert [r.path for r in api_server.requests] == ["/v1beta/tunedModels/m1"] * 2 + [
        "/v1beta/models/text-bison-001"
    ] * 2


# --- Airflow integration --------------------------------------------------------------------------------


def test_test_connection_lists_one_model(hook, api_server):
    api_server.replies.append(Reply(200, {"models": [{"name": "models/gemini-1.5-flash-001"}]}))
    ok, message = hook.test_connection()
    assert ok is True
    assert "works" in message
    assert "models/gemini-1.5-flash-001" in message
    request = only_request(api_server)
    assert (request.path, request.query) == ("/v1beta/models", {"pageSize": ["1"]})


def test_test_connection_reports_failures(hook, api_server, api_key):
    api_server.replies.append(
        Reply(403, error_body(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."))
    )
    ok, message = hook.test_connection()
    assert ok is False
    assert "PermissionDeniedError" in message
    assert "403 PERMISSION_DENIED" in message
    assert api_key not in message


def test_test_connection_reports_a_bad_connection(make_hook, api_key):
    hook = make_hook(host="http://example.com", password=api_key)
    ok, message = hook.test_connection()
    assert ok is False
    assert "ConnectionConfigError" in message
    assert "loopback" in message
    assert api_key not in message


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_airflow_connection_test_reaches_the_hook(api_server, api_key, monkeypatch):
    """What `airflow connections test` and the UI do: Connection.test_connection() -> hook."""
    from airflow.models.connection import Connection

    monkeypatch.setenv(
        "AIRFLOW_CONN_GLAPI_CLI_TEST",
        json.dumps({"conn_type": "generativelanguage", "host": api_server.url, "password": api_key}),
    )
    api_server.replies.append(Reply(200, {"models": [{"name": "models/x"}]}))
    conn = Connection(
        conn_id="glapi_cli_test", conn_type="generativelanguage", host=api_server.url, password=api_key
    )
    ok, message = conn.test_connection()
    assert ok is True, message
    assert only_request(api_server).headers["x-goog-api-key"] == api_key


def test_the_form_comes_from_the_provider_info_only():
    """Airflow >= 3.2 reads conn-fields and ui-field-behaviour; the < 3.2 hook methods are gone."""
    assert "get_connection_form_widgets" not in vars(GenerativeLanguageHook)
    assert "get_ui_field_behaviour" not in vars(GenerativeLanguageHook)
    assert UI_FIELD_BEHAVIOUR["hidden-fields"] == ["schema", "login"]
    assert set(CONN_FIELDS) >= {"keyfile_dict", "key_path", "api_version", "scopes"}


def test_repr_of_hook_has_no_secret(hook, api_key):
    hook.settings  # noqa: B018 - load the connection
    assert api_key not in repr(hook)
    assert api_key not in repr(hook.client)
    assert repr(hook).startswith("GenerativeLanguageHook(conn_id='glapi_test_")


@pytest.mark.parametrize("value", [float("nan"), object()])
def test_a_body_that_is_not_json_fails_before_any_request(hook, api_server, value):
    with pytest.raises(InvalidInputError, match="the request body is not valid JSON"):
        hook.generate_content("models/m", "hi", generation_config={"temperature": value})
    assert api_server.requests == []
