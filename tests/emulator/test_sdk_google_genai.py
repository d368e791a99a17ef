"""Google's current SDK, google-genai (checked with 3.4.0 and 3.6.1), against the emulator.

Gemini Developer API mode:
``genai.Client(api_key=..., http_options={"base_url": url, "api_version": "v1beta"})``; the key
travels in the ``x-goog-api-key`` header, never in the URL.

**``client.tunings.tune`` is broken against the real Gemini Developer API.** Reading its code
(``google/genai/tunings.py`` 3.4.0; 3.6.1 behaves the same), confirmed by what the emulator logs:

* ``_CreateTuningJobParametersPrivate_to_mldev`` calls ``_TuningDataset_to_mldev(...)`` and drops
  its return value, so ``tuningTask.trainingData`` (the examples) is never sent. The API requires
  it (``TuningTask.training_data`` is ``REQUIRED`` in ``v1beta/tuned_model.proto``), so no ``tune``
  call can succeed: the emulator answers 400 INVALID_ARGUMENT, as the service must.
* ``_CreateTuningJobConfig_to_mldev`` writes ``learning_rate_multiplier`` into a dict it then
  discards, so that setting is silently dropped (``learning_rate``, ``epoch_count``,
  ``batch_size`` and ``tuned_model_display_name`` are sent).
* It cannot choose the tuned model's id (it sends no ``tunedModelId``).

The SDK's own ``HttpOptions.extra_body`` (merged into the request body) can carry the examples;
with that workaround the rest works: ``tunings.get`` (it reads ``GET tunedModels/<id>`` and maps
CREATING/ACTIVE to JOB_STATE_RUNNING/SUCCEEDED), ``models.list(config={"query_base": False})``
(``GET tunedModels``), ``models.get``, ``models.update`` (PATCH without ``updateMask``, which v1beta
infers from the body), ``models.generate_content`` and ``models.delete``. ``tunings.list`` refuses
with ``ValueError`` before sending anything: the SDK implements it only for Vertex AI
(``GET tuningJobs``), which the Gemini Developer API does not have; its tuned models are listed by
``models.list`` instead.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
from collections.abc import Callable
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.emulator_support import START, Api, FakeClock
from tuning_api_emulator import Emulator

#: The installed SDK, which must label every request it sends with its own version.
GENAI_VERSION = importlib.metadata.version("google-genai")

pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")

KEY = "genai-sdk-key"
BASE = "models/gemini-1.0-pro-001"
EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(15)]


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator (fake clock, 1 s per step) that accepts only ``KEY``."""
    return make_emulator(api_keys=[KEY])


@pytest.fixture
def client(emulator: Emulator) -> genai.Client:
    return genai.Client(api_key=KEY, http_options={"base_url": emulator.url, "api_version": "v1beta"})


def _dataset() -> types.TuningDataset:
    return types.TuningDataset(
        examples=[types.TuningExample(text_input=e["textInput"], output=e["output"]) for e in EXAMPLES]
    )


def _with_examples(**config: Any) -> types.CreateTuningJobConfig:
    """A tuning config that also carries the examples the SDK fails to send, via ``extra_body``."""
    extra = {"tuningTask": {"trainingData": {"examples": {"examples": EXAMPLES}}}}
    return types.CreateTuningJobConfig(**config, http_options=types.HttpOptions(extra_body=extra))


def _check_credentials_never_in_urls(emulator: Emulator) -> None:
    sdk = [
        e for e in emulator.request_log if e["headers"].get("User-Agent", "").startswith("google-genai-sdk/")
    ]
    assert sdk
    for entry in sdk:
        assert entry["headers"]["x-goog-api-client"].startswith(f"google-genai-sdk/{GENAI_VERSION} ")
    for entry in emulator.request_log:
        assert "key=" not in entry["query"]
        assert entry["headers"]["x-goog-api-key"] == "<redacted>"


def test_tune_never_sends_the_training_examples(client: genai.Client, emulator: Emulator) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.tunings.tune(
            base_model=BASE,
            training_dataset=_dataset(),
            config=types.CreateTuningJobConfig(
                tuned_model_display_name="genai sdk numbers", epoch_count=2, batch_size=4, learning_rate=0.001
            ),
        )
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "training data is required" in (caught.value.message or "")
    (entry,) = emulator.request_log  # one request, not retried
    assert (entry["method"], entry["path"], entry["query"]) == ("POST", "/v1beta/tunedModels", "")
    assert json.loads(entry["body"]) == {
        "baseModel": BASE,
        "displayName": "genai sdk numbers",
        "tuningTask": {"hyperparameters": {"epochCount": 2, "batchSize": 4, "learningRate": 0.001}},
    }
    assert emulator.state()["tunedModels"] == []
    _check_credentials_never_in_urls(emulator)


def test_tune_drops_the_learning_rate_multiplier(client: genai.Client, emulator: Emulator) -> None:
    job = client.tunings.tune(
        base_model=BASE,
        training_dataset=_dataset(),
        config=_with_examples(epoch_count=1, learning_rate_multiplier=2.0),
    )
    sent = json.loads(emulator.request_log[0]["body"])
    assert sent["tuningTask"]["hyperparameters"] == {"epochCount": 1}
    api = Api(emulator.url, headers={"x-goog-api-key": KEY})
    hyper = api.get(f"/v1beta/{job.name}")["tuningTask"]["hyperparameters"]
    assert hyper == {"epochCount": 1, "batchSize": 4, "learningRate": 0.001}  # the defaults, no multiplier


def test_tuned_model_lifecycle_with_the_workaround(
    client: genai.Client, emulator: Emulator, clock: FakeClock
) -> None:
    job = client.tunings.tune(
        base_model=BASE,
        training_dataset=_dataset(),
        config=_with_examples(tuned_model_display_name="genai sdk numbers", epoch_count=2, batch_size=4),
    )
    # The name comes from the operation's metadata.tunedModel; the id is derived from the display name.
    assert job.name is not None
    assert job.name.startswith("tunedModels/genai-sdk-numbers-")
    assert job.state == types.JobState.JOB_STATE_QUEUED  # set by the SDK, not read from the API
    name = job.name
    create = emulator.request_log[0]
    sent = json.loads(create["body"])
    assert sent["tuningTask"]["trainingData"]["examples"]["examples"] == EXAMPLES
    assert sent["tuningTask"]["hyperparameters"] == {"epochCount": 2, "batchSize": 4}
    total_steps = emulator.state()["tunedModels"][0]["totalSteps"]
    assert total_steps == 8  # ceil(15 examples * 2 epochs / batch 4)

    # tunings.get reads the tuned model.
    clock.advance(3)
    running = client.tunings.get(name=name)
    assert (running.name, running.state, running.base_model) == (name, types.JobState.JOB_STATE_RUNNING, BASE)
    assert running.create_time == dt.datetime.fromtimestamp(START, dt.timezone.utc)
    assert running.end_time is None
    assert emulator.request_log[-1]["path"] == f"/v1beta/{name}"
    clock.advance(total_steps)
    done = client.tunings.get(name=name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.end_time == dt.datetime.fromtimestamp(START + total_steps, dt.timezone.utc)
    assert done.tuned_model is not None
    assert done.tuned_model.model == name

    # tunings.list is Vertex-only: refused before any request.
    logged = len(emulator.request_log)
    with pytest.raises(ValueError, match="only supported in Gemini Enterprise Agent Platform mode"):
        client.tunings.list()
    assert len(emulator.request_log) == logged
    # models.list(query_base=False) lists the tuned models.
    assert [m.name for m in client.models.list(config={"query_base": False})] == [name]
    assert emulator.request_log[-1]["path"] == "/v1beta/tunedModels"

    # get and update.
    model = client.models.get(model=name)
    assert (model.name, model.display_name) == (name, "genai sdk numbers")
    assert model.tuned_model_info is not None
    assert model.tuned_model_info.base_model == BASE
    updated = client.models.update(model=name, config={"display_name": "renamed", "description": "by genai"})
    assert (updated.display_name, updated.description) == ("renamed", "by genai")
    patch = emulator.request_log[-1]
    assert (patch["method"], patch["path"], patch["query"]) == ("PATCH", f"/v1beta/{name}", "")
    assert json.loads(patch["body"]) == {"displayName": "renamed", "description": "by genai"}
    assert client.models.get(model=name).description == "by genai"

    # generate: the SDK's text is the emulator's own answer, a training output.
    answer = client.models.generate_content(model=name, contents="LXIII").text
    own = Api(emulator.url, headers={"x-goog-api-key": KEY}).post(
        f"/v1beta/{name}:generateContent", {"contents": [{"parts": [{"text": "LXIII"}]}]}
    )
    assert answer == own["candidates"][0]["content"]["parts"][0]["text"]
    assert answer in {e["output"] for e in EXAMPLES}

    # delete.
    client.models.delete(model=name)
    with pytest.raises(errors.ClientError) as caught:
        client.models.get(model=name)
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert list(client.models.list(config={"query_base": False})) == []
    _check_credentials_never_in_urls(emulator)


def test_a_wrong_key_is_refused(emulator: Emulator) -> None:
    client = genai.Client(
        api_key="not-the-key", http_options={"base_url": emulator.url, "api_version": "v1beta"}
    )
    with pytest.raises(errors.ClientError, match="API key not valid") as caught:
        client.models.get(model="models/gemini-1.0-pro-001")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "not-the-key" not in str(caught.value)
