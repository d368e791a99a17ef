"""Replay both seed transcripts (curl and Python requests; v1beta Gemini and v1beta3 PaLM) over HTTP
with the seeds' exact request bodies, and get the transcripts' shapes and numbers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.emulator.emulator_support import GEMINI_SEED, PALM_SEED, Api, FakeClock, curl_bodies, python_bodies

GEMINI_RATINGS = [
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
]
PALM_RATINGS = [
    "HARM_CATEGORY_DEROGATORY",
    "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE",
    "HARM_CATEGORY_SEXUAL",
    "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS",
]
# (seed, flavour) -> (version, base model, display-name id prefix, totalSteps, batch, epochs)
FLOWS = {
    ("gemini", "curl"): ("v1beta", "models/gemini-1.0-pro-001", "number-generator-model", 38, 2, 5),
    ("gemini", "python"): ("v1beta", "models/gemini-1.0-pro-001", "number-generator", 19, 4, 5),
    ("palm", "curl"): ("v1beta3", "models/text-bison-001", "number-generator-model", 23, 2, 3),
    ("palm", "python"): ("v1beta3", "models/text-bison-001", "number-generator", 12, 4, 3),
}


def _create(api: Api, seed: str, flavour: str) -> dict[str, Any]:
    version = FLOWS[(seed, flavour)][0]
    path = GEMINI_SEED if seed == "gemini" else PALM_SEED
    if flavour == "curl":
        body = curl_bodies(path)[0]
        assert body.count(",\n          }") or ",\n" in body  # the seed's body has trailing commas
        response = api.request(
            "POST",
            f"/{version}/tunedModels",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
    else:
        response = api.request("POST", f"/{version}/tunedModels", json=python_bodies(path)[0])
    return response.json()


def _poll_until_done(api: Api, clock: FakeClock, operation: dict[str, Any]) -> dict[str, Any]:
    """The seeds' loop: GET {base}/v1/{operation name} until ``response`` or ``error``."""
    percents: list[float] = []
    op_json = operation
    for _ in range(100):
        if "response" in op_json or "error" in op_json:
            break
        clock.advance(3.0)
        op_json = api.get(f"/v1/{op_json['name']}")
        percent = op_json["metadata"].get("completedPercent")
        if percent is not None:
            percents.append(percent)
            assert op_json["metadata"]["snapshots"][-1]["step"] == op_json["metadata"]["completedSteps"]
    assert op_json.get("done") is True
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    return op_json


@pytest.mark.parametrize(("seed", "flavour"), list(FLOWS))
def test_seed_flow(api: Api, clock: FakeClock, seed: str, flavour: str) -> None:
    version, base_model, prefix, steps, batch, epochs = FLOWS[(seed, flavour)]
    assert api.get(f"/{version}/tunedModels") == {}

    operation = _create(api, seed, flavour)
    assert set(operation) == {"name", "metadata"}  # no `done` while false
    assert re.fullmatch(rf"tunedModels/{prefix}-[a-z0-9]{{12}}/operations/[a-z0-9]{{12}}", operation["name"])
    assert operation["metadata"] == {
        "@type": f"type.googleapis.com/google.ai.generativelanguage.{version}.CreateTunedModelMetadata",
        "totalSteps": steps,
        "tunedModel": operation["name"].split("/operations/")[0],
    }
    name = operation["metadata"]["tunedModel"]

    model = api.get(f"/{version}/{name}")
    assert model["state"] == "CREATING"
    assert model["baseModel"] == base_model
    assert model["tuningTask"]["hyperparameters"] == {
        "epochCount": epochs,
        "batchSize": batch,
        "learningRate": 0.001,
    }
    assert "trainingData" not in model["tuningTask"]
    assert model["createTime"] == model["updateTime"]
    if seed == "palm":  # the PaLM transcript: defaults inherited from text-bison
        assert (model["temperature"], model["topP"], model["topK"]) == (0.7, 0.95, 40)
        assert list(model) == [
            "name",
            "baseModel",
            "displayName",
            "state",
            "createTime",
            "updateTime",
            "tuningTask",
            "temperature",
            "topP",
            "topK",
        ]

    done = _poll_until_done(api, clock, operation)
    last = done["metadata"]["snapshots"][-1]
    assert last["step"] == steps
    assert last["epoch"] == steps * batch // 15 == epochs
    assert set(last) == {"step", "epoch", "meanLoss", "computeTime"}
    assert (
        done["response"]["@type"] == f"type.googleapis.com/google.ai.generativelanguage.{version}.TunedModel"
    )
    assert done["response"]["state"] == "ACTIVE"

    model = api.get(f"/{version}/{name}")
    assert model["state"] == "ACTIVE"
    assert len(model["tuningTask"]["snapshots"]) == steps
    assert "completeTime" in model["tuningTask"]

    if seed == "gemini":
        _gemini_inference(api, name, flavour)
    else:
        _palm_inference(api, name, flavour)


def _gemini_inference(api: Api, name: str, flavour: str) -> None:
    body: Any = curl_bodies(GEMINI_SEED)[1] if flavour == "curl" else python_bodies(GEMINI_SEED)[1]
    if isinstance(body, str):
        reply = api.request(
            "POST",
            f"/v1beta/{name}:generateContent",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        ).json()
    else:
        reply = api.post(f"/v1beta/{name}:generateContent", body)
    assert len(reply["candidates"]) == 1
    candidate = reply["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert isinstance(candidate["content"]["parts"][0]["text"], str)
    assert candidate["finishReason"] == "STOP"
    assert candidate["index"] == 0
    assert [r["category"] for r in candidate["safetyRatings"]] == GEMINI_RATINGS
    assert [r["category"] for r in reply["promptFeedback"]["safetyRatings"]] == GEMINI_RATINGS
    outputs = {
        example["output"]
        for example in python_bodies(GEMINI_SEED)[0]["tuning_task"]["training_data"]["examples"]["examples"]
    }
    assert candidate["content"]["parts"][0]["text"] in outputs


def _palm_inference(api: Api, name: str, flavour: str) -> None:
    if flavour == "curl":
        body = curl_bodies(PALM_SEED)[1]
        reply = api.request(
            "POST",
            f"/v1beta3/{name}:generateText",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        ).json()
        assert len(reply["candidates"]) == 2  # "candidate_count": 2
    else:
        reply = api.post(f"/v1beta3/{name}:generateText", python_bodies(PALM_SEED)[1])
        assert len(reply["candidates"]) == 1
    for candidate in reply["candidates"]:
        assert isinstance(candidate["output"], str)
        assert candidate["output"]
        assert [r["category"] for r in candidate["safetyRatings"]] == PALM_RATINGS
        assert all("blocked" not in r for r in candidate["safetyRatings"])


def test_seed_palm_list_shape(api: Api, clock: FakeClock) -> None:
    """The PaLM transcript's list: every model with baseModel, state, times, tuningTask, defaults."""
    for _ in range(2):
        _create(api, "palm", "python")
    clock.advance(100)
    listed = api.get("/v1beta3/tunedModels")
    assert set(listed) == {"tunedModels"}
    assert len(listed["tunedModels"]) == 2
    for model in listed["tunedModels"]:
        assert model["state"] == "ACTIVE"
        assert set(model["tuningTask"]) == {"startTime", "completeTime", "snapshots", "hyperparameters"}
        first = model["tuningTask"]["snapshots"][0]
        assert set(first) == {"step", "meanLoss", "computeTime"}  # epoch 0 is left out
