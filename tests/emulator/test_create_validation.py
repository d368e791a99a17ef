"""CreateTunedModel validates as the service does and answers with google.rpc.Status errors."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.emulator.emulator_support import Api, tuned_model_body


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


def _example(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        example = body["tuningTask"]["trainingData"]["examples"]["examples"][index]
        if value is None:
            del example[key]
        else:
            example[key] = value

    return mutate


# (id, mutation, version, HTTP status, google.rpc.Code, message pattern)
CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, int, str, str]] = [
    ("no tuning task", _drop("tuningTask"), "v1beta", 400, "INVALID_ARGUMENT", r"tuning_task is required"),
    (
        "no examples",
        _set("tuningTask.trainingData.examples.examples", []),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"examples\.examples must contain at least one example",
    ),
    (
        "no training data",
        _drop("tuningTask.trainingData"),
        "v1beta3",
        400,
        "INVALID_ARGUMENT",
        r"training data is required",
    ),
    (
        "example without output",
        _example(3, "output", None),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"examples\[3\]\.output is required",
    ),
    (
        "example without text input",
        _example(0, "textInput", None),
        "v1beta3",
        400,
        "INVALID_ARGUMENT",
        r"examples\[0\]\.text_input is required",
    ),
    ("empty output", _example(2, "output", ""), "v1beta", 400, "INVALID_ARGUMENT", r"examples\[2\]\.output"),
    (
        "output not a string",
        _example(1, "output", 7),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"Invalid value at 'tuned_model\.tuning_task\.training_data\.examples\.examples\[1\]\.output' "
        r"\(TYPE_STRING\), 7",
    ),
    (
        "unknown top-level field",
        _set("colour", "blue"),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r'Invalid JSON payload received\. Unknown name "colour" at \'tuned_model\': Cannot find field\.',
    ),
    (
        "unknown nested field",
        _set("tuningTask.hyperparameters.epochs", 3),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r'Unknown name "epochs" at \'tuned_model\.tuning_task\.hyperparameters\'',
    ),
    (
        "epoch count not an integer",
        _set("tuningTask.hyperparameters.epochCount", "many"),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"Invalid value at 'tuned_model\.tuning_task\.hyperparameters\.epoch_count' \(TYPE_INT32\), \"many\"",
    ),
    (
        "fractional batch size",
        _set("tuningTask.hyperparameters.batchSize", 2.5),
        "v1beta3",
        400,
        "INVALID_ARGUMENT",
        r"batch_size' \(TYPE_INT32\), 2\.5",
    ),
    (
        "zero epochs",
        _set("tuningTask.hyperparameters.epochCount", 0),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"epoch_count must be a positive integer",
    ),
    (
        "negative batch",
        _set("tuningTask.hyperparameters.batchSize", -4),
        "v1beta3",
        400,
        "INVALID_ARGUMENT",
        r"batch_size must be a positive integer",
    ),
    (
        "zero learning rate",
        _set("tuningTask.hyperparameters.learningRate", 0),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"learning_rate must be a positive number",
    ),
    (
        "negative multiplier",
        _set("tuningTask.hyperparameters.learningRateMultiplier", -1.0),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"learning_rate_multiplier must be a positive number",
    ),
    (
        "learning rate and multiplier",
        lambda b: b["tuningTask"].update(
            hyperparameters={"learningRate": 0.001, "learningRateMultiplier": 2.0}
        ),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"Oneof field 'learning_rate_option' is already set",
    ),
    (
        "multiplier is v1beta only",
        _set("tuningTask.hyperparameters.learningRateMultiplier", 2.0),
        "v1beta3",
        400,
        "INVALID_ARGUMENT",
        r'Unknown name "learningRateMultiplier"',
    ),
    (
        "reader project numbers are v1beta only",
        _set("readerProjectNumbers", ["123"]),
        "v1beta3",
        400,
        "INVALID_ARGUMENT",
        r'Unknown name "readerProjectNumbers"',
    ),
    (
        "display name of 41 characters",
        _set("displayName", "x" * 41),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"display_name must be at most 40 characters, got 41",
    ),
    (
        "temperature above 1",
        _set("temperature", 1.5),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"temperature must be in \[0\.0, 1\.0\]",
    ),
    ("negative top k", _set("topK", -1), "v1beta3", 400, "INVALID_ARGUMENT", r"top_k must not be negative"),
    ("no base model", _drop("baseModel"), "v1beta", 400, "INVALID_ARGUMENT", r"base_model is required"),
    (
        "unknown base model",
        _set("baseModel", "models/no-such-model"),
        "v1beta",
        404,
        "NOT_FOUND",
        r"models/no-such-model is not found",
    ),
    (
        "Gemini base model in v1beta3",
        _set("baseModel", "models/gemini-1.0-pro-001"),
        "v1beta3",
        404,
        "NOT_FOUND",
        r"is not found for API version v1beta3",
    ),
    (
        "base model that cannot be tuned",
        _set("baseModel", "models/gemini-1.5-pro-001"),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"does not support tuning",
    ),
    (
        "state is an enum",
        _set("state", "DONE"),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r"\(type\.googleapis\.com/google\.ai\.generativelanguage\.v1beta\.TunedModel\.State\), \"DONE\"",
    ),
    (
        "same field twice (camelCase and snake_case)",
        _set("display_name", "other"),
        "v1beta",
        400,
        "INVALID_ARGUMENT",
        r'Duplicate value for field "display_name"',
    ),
]


@pytest.mark.parametrize(
    ("mutate", "version", "http", "status", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_create_rejects(api: Api, mutate: Any, version: str, http: int, status: str, pattern: str) -> None:
    base = "models/text-bison-001" if version == "v1beta3" else "models/gemini-1.0-pro-001"
    body = tuned_model_body(base_model=base, display_name="validation")
    mutate(body)
    error = api.error("POST", f"/{version}/tunedModels", http, json=body)
    assert error["status"] == status
    assert re.search(pattern, error["message"]), error["message"]
    assert api.get(f"/{version}/tunedModels") == {}  # nothing was created


@pytest.mark.parametrize(
    "tuned_model_id",
    ["Upper", "9starts-with-digit", "ends-with-hyphen-", "under_score", "a" * 41, "-x"],
)
def test_tuned_model_id_pattern(api: Api, tuned_model_id: str) -> None:
    error = api.error(
        "POST", "/v1beta/tunedModels", 400, params={"tunedModelId": tuned_model_id}, json=tuned_model_body()
    )
    assert error["status"] == "INVALID_ARGUMENT"
    assert "[a-z]([a-z0-9-]{0,38}[a-z0-9])?" in error["message"]


@pytest.mark.parametrize("tuned_model_id", ["a", "x" * 40, "my-model-2"])
def test_tuned_model_id_accepted(api: Api, tuned_model_id: str) -> None:
    operation = api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": tuned_model_id})
    assert operation["metadata"]["tunedModel"] == f"tunedModels/{tuned_model_id}"


def test_taken_id_is_already_exists(api: Api) -> None:
    api.post(
        "/v1beta/tunedModels", tuned_model_body(), params={"tuned_model_id": "taken"}
    )  # snake_case query too
    error = api.error(
        "POST",
        "/v1beta3/tunedModels",
        409,
        params={"tunedModelId": "taken"},
        json=tuned_model_body(base_model="models/text-bison-001"),
    )
    assert error["status"] == "ALREADY_EXISTS"
    assert "tunedModels/taken" in error["message"]
    api.delete("/v1beta/tunedModels/taken")
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "taken"})  # free again


def test_unknown_query_parameter(api: Api) -> None:
    error = api.error("POST", "/v1beta/tunedModels", 400, params={"modelId": "x"}, json=tuned_model_body())
    assert error["message"] == (
        'Invalid JSON payload received. Unknown name "modelId": Cannot bind query parameter. '
        "Field 'modelId' could not be found in request message."
    )


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        (b"{not json", r"^Invalid JSON payload received\."),
        (b"[1, 2]", r"Root element must be a message"),
        (b'{"temperature": NaN}', r"Invalid JSON payload"),
    ],
)
def test_malformed_body(api: Api, raw: bytes, pattern: str) -> None:
    error = api.error(
        "POST", "/v1beta/tunedModels", 400, data=raw, headers={"Content-Type": "application/json"}
    )
    assert re.search(pattern, error["message"])


def test_camel_and_snake_case_give_the_same_model(api: Api) -> None:
    camel = tuned_model_body(display_name="Same Model", epochCount=2, batchSize=3, learningRate=0.01)
    snake = {
        "display_name": "Same Model",
        "base_model": "models/gemini-1.0-pro-001",
        "tuning_task": {
            "hyperparameters": {"epoch_count": 2, "batch_size": 3, "learning_rate": 0.01},
            "training_data": {
                "examples": {
                    "examples": [
                        {"text_input": e["textInput"], "output": e["output"]}
                        for e in camel["tuningTask"]["trainingData"]["examples"]["examples"]
                    ]
                }
            },
        },
    }
    first = api.post("/v1beta/tunedModels", camel, params={"tunedModelId": "camel"})
    second = api.post("/v1beta/tunedModels", snake, params={"tunedModelId": "snake"})
    assert first["metadata"]["totalSteps"] == second["metadata"]["totalSteps"] == 10  # ceil(15*2/3)
    one, two = api.get("/v1beta/tunedModels/camel"), api.get("/v1beta/tunedModels/snake")
    for model in (one, two):
        model.pop("name")
    assert one == two


def test_output_only_fields_are_ignored_on_create(api: Api) -> None:
    body = tuned_model_body()
    body.update(name="tunedModels/ignored", state="ACTIVE", createTime="2020-01-01T00:00:00Z")
    operation = api.post("/v1beta/tunedModels", body)
    model = api.get(f"/v1beta/{operation['metadata']['tunedModel']}")
    assert model["name"] != "tunedModels/ignored"
    assert model["state"] == "CREATING"


@pytest.mark.parametrize(
    ("version", "count", "expected"),
    [
        ("v1beta", 15, {"epochCount": 5, "batchSize": 4, "learningRate": 0.001}),
        ("v1beta", 500, {"epochCount": 5, "batchSize": 16, "learningRate": 0.0002}),
        ("v1beta3", 15, {"epochCount": 10, "batchSize": 16, "learningRate": 0.0002}),
        ("v1beta3", 600, {"epochCount": 10, "batchSize": 64, "learningRate": 0.002}),
    ],
)
def test_default_hyperparameters(api: Api, version: str, count: int, expected: dict[str, Any]) -> None:
    base = "models/text-bison-001" if version == "v1beta3" else "models/gemini-1.5-flash-001-tuning"
    operation = api.post(f"/{version}/tunedModels", tuned_model_body(count, base_model=base))
    model = api.get(f"/{version}/{operation['metadata']['tunedModel']}")
    assert model["tuningTask"]["hyperparameters"] == expected
    steps = -(-count * expected["epochCount"] // expected["batchSize"])
    assert operation["metadata"]["totalSteps"] == steps


def test_learning_rate_multiplier(api: Api) -> None:
    body = tuned_model_body(learningRateMultiplier=2.0)
    name = api.post("/v1beta/tunedModels", body)["metadata"]["tunedModel"]
    assert api.get(f"/v1beta/{name}")["tuningTask"]["hyperparameters"] == {
        "epochCount": 5,
        "batchSize": 4,
        "learningRateMultiplier": 2.0,
    }
    # v1beta3 has no multiplier: it shows the effective rate (2 x the 0.001 default).
    assert api.get(f"/v1beta3/{name}")["tuningTask"]["hyperparameters"]["learningRate"] == 0.002


def test_sampling_defaults_inherited_or_given(api: Api) -> None:
    flash = api.post("/v1beta/tunedModels", tuned_model_body(base_model="models/gemini-1.5-flash-001-tuning"))
    model = api.get(f"/v1beta/{flash['metadata']['tunedModel']}")
    assert (model["temperature"], model["topP"], model["topK"]) == (1.0, 0.95, 64)
    body = tuned_model_body(base_model="models/text-bison-001")
    body.update(temperature=0.0, topP=0.5, topK=0)
    given = api.post("/v1beta3/tunedModels", body)
    model = api.get(f"/v1beta3/{given['metadata']['tunedModel']}")
    assert (model["temperature"], model["topP"], model["topK"]) == (0.0, 0.5, 0)  # optional: 0 is printed


@pytest.mark.parametrize(
    ("display_name", "pattern"),
    [
        ("Sentence Translator", r"sentence-translator-[a-z0-9]{12}"),
        ("test_number_generator", r"testnumbergenerator-[a-z0-9]{12}"),
        ("my display name 81", r"my-display-name-81-[a-z0-9]{12}"),
        ("A very long display name that fills forty", r"a-very-long-display-name-th-[a-z0-9]{12}"),
        ("81 balloons", r"tunedmodel-81-balloons-[a-z0-9]{12}"),
        ("数字生成器", r"tunedmodel-[a-z0-9]{12}"),
        ("", r"tunedmodel-[a-z0-9]{12}"),
    ],
)
def test_derived_id(api: Api, display_name: str, pattern: str) -> None:
    body = tuned_model_body(display_name=display_name[:40])
    name = api.post("/v1beta/tunedModels", body)["metadata"]["tunedModel"]
    model_id = name.removeprefix("tunedModels/")
    assert re.fullmatch(pattern, model_id), model_id
    assert len(model_id) <= 40
    assert re.fullmatch(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?", model_id)


def test_derived_ids_are_unique(api: Api) -> None:
    names = {
        api.post("/v1beta/tunedModels", tuned_model_body(display_name="twin"))["metadata"]["tunedModel"]
        for _ in range(5)
    }
    assert len(names) == 5


def test_tune_from_a_tuned_model(api: Api, clock: Any) -> None:
    first = api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "first"})
    body = copy.deepcopy(tuned_model_body())
    del body["baseModel"]
    body["tunedModelSource"] = {"tunedModel": "tunedModels/first"}
    error = api.error("POST", "/v1beta/tunedModels", 400, json=body)
    assert error["status"] == "FAILED_PRECONDITION"  # the source is still CREATING
    clock.advance(first["metadata"]["totalSteps"])
    name = api.post("/v1beta/tunedModels", body)["metadata"]["tunedModel"]
    model = api.get(f"/v1beta/{name}")
    assert model["tunedModelSource"] == {
        "tunedModel": "tunedModels/first",
        "baseModel": "models/gemini-1.0-pro-001",
    }
    assert "baseModel" not in model
    body["tunedModelSource"] = {"tunedModel": "tunedModels/missing"}
    assert api.error("POST", "/v1beta/tunedModels", 404, json=body)["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1beta/tunedModels", b'{"displayName": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("/v1beta/tunedModels", b"[" * 100_000),  # unterminated as well
        (
            "/v1beta/models/gemini-1.0-pro-001:generateContent",
            b'{"contents": [{"parts": [{"text": "hi"}]}], "tools": '
            + b'{"a": ' * 5_000
            + b"1"
            + b"}" * 5_001,
        ),
    ],
)
def test_deeply_nested_json_is_invalid_argument(api: Api, path: str, raw: bytes) -> None:
    error = api.error("POST", path, 400, data=raw, headers={"Content-Type": "application/json"})
    assert error["status"] == "INVALID_ARGUMENT"
    assert "JSON nesting too deep: more than 100 levels" in error["message"]
    assert api.post("/v1beta/tunedModels", tuned_model_body())["name"]  # the emulator still serves


def test_nesting_up_to_the_limit_is_parsed(api: Api) -> None:
    deep = "[" * 99 + "]" * 99  # 100 levels with the body around it: the limit itself
    body = f'{{"baseModel": "models/gemini-1.0-pro-001", "displayName": {deep}}}'
    error = api.error("POST", "/v1beta/tunedModels", 400, data=body.encode())
    assert "nesting" not in error["message"]  # refused by the schema, not by the depth check
