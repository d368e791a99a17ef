"""Google's legacy SDK, google-generativeai 0.8.6, against the emulator over REST.

``genai.configure(api_key=..., transport="rest", client_options={"api_endpoint": url})``: the REST
transport keeps an ``http://`` scheme given in ``api_endpoint`` and otherwise assumes ``https://``
(so the emulator's URL must be given with its scheme). The key travels in the ``x-goog-api-key``
header, never in the URL. The whole tuned-model lifecycle runs through the SDK: list, create with
an id, wait on the operation (``update()``, ``wait_bar()``, ``result()``), get, update, generate
with ``GenerativeModel``, delete. The emulator runs on a fake clock, so every progress figure is
exact: ``totalSteps = ceil(examples * epochs / batch)``.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import pathlib
import warnings
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs

import pytest
import requests
from google.api_core import exceptions as core_exceptions

from tests.emulator.emulator_support import Api, FakeClock
from tuning_api_emulator import Emulator

with warnings.catch_warnings():  # "support for google.generativeai has ended": known, it is the point
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as genai
    from google.generativeai.types.model_types import TuningExampleDict

# The SDK's own deprecation notices (its end of support; protobuf 5 renamed an argument it passes).
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:The argument `including_default_value_fields`:DeprecationWarning"),
]

KEY = "legacy-sdk-key"
DATA = pathlib.Path(__file__).resolve().parents[2] / "dags" / "data" / "number_generator.jsonl"
BASE = "models/gemini-1.0-pro-001"
EPOCHS, BATCH, LEARNING_RATE = 2, 4, 0.001


def _examples() -> list[TuningExampleDict]:
    """The seed's 15 number-generator examples (``text_input``/``output``), as the SDK takes them."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [TuningExampleDict(text_input=row["text_input"], output=row["output"]) for row in rows]


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Iterator[Emulator]:
    """An emulator (fake clock, 1 s per step) that accepts only ``KEY``, with the SDK pointed at it."""
    emulator = make_emulator(api_keys=[KEY])
    genai.configure(api_key=KEY, transport="rest", client_options={"api_endpoint": emulator.url})
    yield emulator
    genai.configure()  # back to the defaults (no endpoint, key from the environment)


def _api_requests(emulator: Emulator) -> list[tuple[str, str]]:
    return [(e["method"], e["path"]) for e in emulator.request_log]


def test_http_endpoint_used_as_given_and_key_only_in_a_header(emulator: Emulator) -> None:
    assert list(genai.list_tuned_models()) == []
    (entry,) = emulator.request_log
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/v1beta/tunedModels", 200)
    assert "pageSize=50" in entry["query"]
    assert "key=" not in entry["query"]
    assert entry["headers"]["x-goog-api-key"] == "<redacted>"
    assert (
        f"genai-py/{importlib.metadata.version('google-generativeai')}"
        in entry["headers"]["x-goog-api-client"]
    )


def test_endpoint_without_scheme_means_https(emulator: Emulator) -> None:
    """``host:port`` alone makes the SDK speak TLS to the plain-HTTP emulator: no request is served."""
    genai.configure(
        api_key=KEY, transport="rest", client_options={"api_endpoint": emulator.url.removeprefix("http://")}
    )
    with pytest.raises(requests.exceptions.SSLError):
        list(genai.list_tuned_models())
    assert emulator.request_log == []


def test_a_wrong_key_is_refused(emulator: Emulator) -> None:
    genai.configure(api_key="not-the-key", transport="rest", client_options={"api_endpoint": emulator.url})
    with pytest.raises(core_exceptions.BadRequest, match="API key not valid") as caught:
        list(genai.list_tuned_models())
    # (api_core keeps the REST ErrorInfo as a dict, so its .reason property fails; read the details.)
    assert [d.get("reason") for d in caught.value.details] == ["API_KEY_INVALID"]
    assert "not-the-key" not in str(caught.value)


def test_tuned_model_lifecycle(emulator: Emulator, clock: FakeClock) -> None:
    examples = _examples()
    total = math.ceil(len(examples) * EPOCHS / BATCH)
    assert (len(examples), total) == (15, 8)
    operation = genai.create_tuned_model(
        source_model=BASE,
        training_data=examples,
        id="legacy-sdk-model",
        display_name="legacy sdk number generator",
        epoch_count=EPOCHS,
        batch_size=BATCH,
        learning_rate=LEARNING_RATE,
    )
    name = "tunedModels/legacy-sdk-model"

    # What the SDK sent: the id as tunedModelId, every example, the hyperparameters.
    (create,) = emulator.request_log
    assert (create["method"], create["path"], create["status"]) == ("POST", "/v1beta/tunedModels", 200)
    assert "tunedModelId=legacy-sdk-model" in create["query"]
    sent = json.loads(create["body"])
    assert sent["baseModel"] == BASE
    assert sent["tuningTask"]["trainingData"]["examples"]["examples"] == [
        {"textInput": e["text_input"], "output": e["output"]} for e in examples
    ]
    assert sent["tuningTask"]["hyperparameters"] == {
        "epochCount": EPOCHS,
        "batchSize": BATCH,
        "learningRate": LEARNING_RATE,
    }

    # The operation: its metadata before any step, then after 3 steps of the fake clock.
    assert operation.name.startswith(f"{name}/operations/")
    assert (operation.metadata.total_steps, operation.metadata.completed_steps) == (total, 0)
    assert operation.metadata.tuned_model == name
    assert not operation.done()
    clock.advance(3)
    operation.update()
    assert operation.metadata.completed_steps == 3
    assert operation.metadata.completed_percent == pytest.approx(100 * 3 / total)
    assert [s.step for s in operation.metadata.snapshots] == [1, 2, 3]
    assert genai.get_tuned_model(name).state == genai.types.TunedModelState.CREATING
    polled = genai.get_operation(operation.name)
    assert (polled.name, polled.metadata.completed_steps) == (operation.name, 3)

    # wait_bar() polls until done; each poll here moves the fake clock one step.
    seen = []
    for metadata in operation.wait_bar(disable=True):
        seen.append(metadata.completed_steps)
        clock.advance(1)
    assert seen == list(range(3, total))
    tuned = operation.result(timeout=10)
    assert (tuned.name, tuned.state) == (name, genai.types.TunedModelState.ACTIVE)
    assert (tuned.base_model, tuned.source_model, tuned.display_name) == (
        BASE,
        BASE,
        "legacy sdk number generator",
    )
    assert [s["step"] for s in tuned.tuning_task.snapshots] == list(range(1, total + 1))
    hyper = tuned.tuning_task.hyperparameters
    assert (hyper.epoch_count, hyper.batch_size, hyper.learning_rate) == (EPOCHS, BATCH, LEARNING_RATE)

    # list, get, update.
    assert [m.name for m in genai.list_tuned_models()] == [name]
    got = genai.get_tuned_model(name)
    assert got == tuned
    updated = genai.update_tuned_model(name, {"description": "updated by the legacy SDK", "temperature": 0.5})
    assert (updated.description, updated.temperature) == ("updated by the legacy SDK", 0.5)
    patch = emulator.request_log[-1]
    assert (patch["method"], patch["status"]) == ("PATCH", 200)
    assert set(parse_qs(patch["query"])["updateMask"][0].split(",")) == {"description", "temperature"}
    assert genai.get_tuned_model(name).description == "updated by the legacy SDK"

    # generate: the SDK's text is the emulator's own answer to the prompt, a training output.
    answer = genai.GenerativeModel(name).generate_content("LXIII").text
    own = Api(emulator.url, headers={"x-goog-api-key": KEY}).post(
        f"/v1beta/{name}:generateContent", {"contents": [{"parts": [{"text": "LXIII"}]}]}
    )
    assert answer == own["candidates"][0]["content"]["parts"][0]["text"]
    assert answer in {e["output"] for e in examples}

    # delete.
    genai.delete_tuned_model(name)
    assert list(genai.list_tuned_models()) == []
    with pytest.raises(core_exceptions.NotFound, match="legacy-sdk-model does not exist"):
        genai.get_tuned_model(name)
    assert all("key=" not in e["query"] for e in emulator.request_log)


def test_a_failed_job_raises_from_result(emulator: Emulator, clock: FakeClock) -> None:
    operation = genai.create_tuned_model(
        source_model=BASE,
        training_data=_examples(),
        id="legacy-sdk-fails",
        display_name="emulator:fail-at=3",
        epoch_count=EPOCHS,
        batch_size=BATCH,
    )
    clock.advance(100)
    with pytest.raises(core_exceptions.InternalServerError, match="failed at step 3 of 8"):
        operation.result(timeout=10)
    assert operation.metadata.completed_steps == 3
    assert genai.get_tuned_model("tunedModels/legacy-sdk-fails").state == genai.types.TunedModelState.FAILED
