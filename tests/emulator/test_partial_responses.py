"""The ``fields`` system parameter (partial responses) with Google's syntax: comma-separated paths,
``a/b`` and ``a(b,c)`` sub-selections, the ``*`` wildcard; a malformed expression is a 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.emulator_support import Api, FakeClock, examples, tuned_model_body
from tuning_api_emulator.errors import StatusError
from tuning_api_emulator.partial import parse_fields, select

POLL_FIELDS = "name,done,metadata(completedSteps,totalSteps),error"


def _create(api: Api, model_id: str, **hyper: Any) -> dict[str, Any]:
    body = tuned_model_body(**hyper)
    return dict(api.post("/v1beta/tunedModels", body, params={"tunedModelId": model_id}))


def test_a_poll_of_a_long_job_leaves_the_snapshots_out(api: Api, clock: FakeClock) -> None:
    body = tuned_model_body(batchSize=1, epochCount=20)
    body["tuningTask"]["trainingData"]["examples"]["examples"] = examples(500)  # 10,000 steps
    operation = api.post("/v1beta/tunedModels", body, params={"tunedModelId": "long"})
    clock.advance(6000)
    full = api.request("GET", f"/v1/{operation['name']}")
    assert len(full.json()["metadata"]["snapshots"]) == 6000
    partial = api.request("GET", f"/v1/{operation['name']}", params={"fields": POLL_FIELDS})
    assert partial.json() == {
        "name": operation["name"],
        "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata",
            "completedSteps": 6000,
            "totalSteps": 10000,
        },
    }
    assert len(partial.content) < 500 < len(full.content) // 1000
    clock.advance(5000)
    done = api.get(f"/v1beta/{operation['name']}", params={"fields": POLL_FIELDS})
    assert (done["done"], done["metadata"]["completedSteps"], set(done)) == (
        True,
        10000,
        {"name", "done", "metadata"},
    )


def test_a_failed_job_keeps_its_error(api: Api, clock: FakeClock) -> None:
    operation = api.post(
        "/v1beta/tunedModels",
        tuned_model_body(display_name="emulator:fail-at=2"),
        params={"tunedModelId": "broken"},
    )
    clock.advance(100)
    polled = api.get(f"/v1/{operation['name']}", params={"fields": POLL_FIELDS})
    assert polled["error"]["code"] == 13
    assert polled["metadata"]["completedSteps"] == 2
    assert set(polled) == {"name", "done", "metadata", "error"}


def test_get_tuned_model_with_slash_paths_and_snake_case(api: Api, clock: FakeClock) -> None:
    _create(api, "picked", batchSize=2, epochCount=3)
    clock.advance(2)
    model = api.get(
        "/v1beta/tunedModels/picked", params={"fields": "name,state,tuning_task/hyperparameters/batchSize"}
    )
    assert model == {
        "name": "tunedModels/picked",
        "state": "CREATING",
        "tuningTask": {"hyperparameters": {"batchSize": 2}},
    }
    everything = api.get("/v1beta/tunedModels/picked", params={"fields": "*"})
    assert everything == api.get("/v1beta/tunedModels/picked")
    task = api.get("/v1beta/tunedModels/picked", params={"fields": "tuningTask/*"})
    assert set(task) == {"tuningTask"}
    assert set(task["tuningTask"]) == {"startTime", "snapshots", "hyperparameters"}
    assert api.get("/v1beta/tunedModels/picked", params={"fields": "noSuchField"}) == {}


def test_list_routes_select_inside_each_element(api: Api) -> None:
    for index in range(3):
        _create(api, f"listed-{index}")
    page = api.get(
        "/v1beta/tunedModels", params={"pageSize": 2, "fields": "tunedModels(name,state),nextPageToken"}
    )
    assert page["tunedModels"] == [
        {"name": "tunedModels/listed-0", "state": "CREATING"},
        {"name": "tunedModels/listed-1", "state": "CREATING"},
    ]
    assert page["nextPageToken"]
    operations = api.get("/v1/operations", params={"fields": "operations/name"})
    assert [set(op) for op in operations["operations"]] == [{"name"}] * 3
    models = api.get("/v1beta/models", params={"fields": "models(name,version)"})
    assert all(set(m) == {"name", "version"} for m in models["models"])
    assert "nextPageToken" not in models
    one_op = api.get(
        "/v1beta/tunedModels/listed-0/operations", params={"fields": "operations(metadata/tunedModel)"}
    )
    assert one_op["operations"][0]["metadata"]["tunedModel"] == "tunedModels/listed-0"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("name,", "it is empty or ends with a separator"),
        (",name", "a field name is missing before ','"),
        ("metadata(completedSteps", "'(' without a matching ')'"),
        ("metadata)", "')' without a matching '('"),
        ("metadata()", "a field name is missing before ')'"),
        ("meta data", "'data' must be separated from the name before it by ',' or '/'"),
        ("metadata.completedSteps", "unexpected character '.' at 8"),
        ("metadata(done)/x", "'/' cannot follow ')'"),
        ("name//done", "a field name is missing before '/'"),
    ],
)
def test_a_malformed_expression_is_invalid_argument(api: Api, expression: str, reason: str) -> None:
    error = api.error("GET", "/v1beta/models", 400, params={"fields": expression})
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == (f"Invalid field selection {expression!r} in the fields parameter: {reason}.")
    assert error["details"][0]["fieldViolations"][0]["field"] == "fields"


def test_a_malformed_expression_changes_nothing(api: Api) -> None:
    api.error(
        "POST",
        "/v1beta/tunedModels",
        400,
        json=tuned_model_body(),
        params={"tunedModelId": "x", "fields": "a("},
    )
    assert api.get("/v1beta/tunedModels") == {}


def test_the_parser_takes_any_depth_without_recursion(api: Api) -> None:
    selection: Any = parse_fields("a(" * 50_000 + "b" + ")" * 50_000)
    depth = 0
    while selection != {"b": None}:
        selection = selection["a"]
        depth += 1
    assert depth == 50_000
    with pytest.raises(StatusError, match=r"'\(' without a matching '\)'") as caught:
        parse_fields("a(" * 50_000 + "b")
    assert len(caught.value.message) < 300  # the expression is quoted up to 200 characters
    deep = "name(" * 500 + "x" + ")" * 500
    assert api.get("/v1beta/models/text-bison-001", params={"fields": deep}) == {
        "name": "models/text-bison-001"
    }


def test_merging_paths() -> None:
    assert parse_fields("a/b,a/c,a(d(e))") == {"a": {"b": None, "c": None, "d": {"e": None}}}
    assert parse_fields("a/b,a") == {"a": None}
    assert parse_fields("a,a/b") == {"a": None}
    body = {"a": {"b": 1, "c": 2, "x": 3}, "y": [{"b": 1, "z": 2}]}
    assert select(body, parse_fields("a(b,c),y/b")) == {"a": {"b": 1, "c": 2}, "y": [{"b": 1}]}
