"""Tuning progresses in time (a pure function of creation time, clock and seconds per step),
fails on request, and is cancelled through v1; trainingData is never echoed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.emulator.emulator_support import Api, FakeClock, tuned_model_body
from tuning_api_emulator import Emulator
from tuning_api_emulator.store import TunedModelRecord
from tuning_api_emulator.tuning import epoch_of, mean_loss, progress, total_steps


@pytest.mark.parametrize(("batch", "epochs", "steps"), [(2, 5, 38), (4, 5, 19), (2, 3, 23), (4, 3, 12)])
def test_total_steps_of_the_seed_configurations(batch: int, epochs: int, steps: int) -> None:
    assert total_steps(15, epochs, batch) == steps


def _create(api: Api, model_id: str, version: str = "v1beta", **fields: Any) -> dict[str, Any]:
    body = tuned_model_body(
        base_model="models/text-bison-001" if version == "v1beta3" else "models/gemini-1.0-pro-001",
        batchSize=2,
        epochCount=5,
    )
    body.update(fields)
    return api.post(f"/{version}/tunedModels", body, params={"tunedModelId": model_id})


def test_progress_snapshots_and_states(api: Api, clock: FakeClock) -> None:
    operation = _create(api, "progress")
    created = api.get("/v1beta/tunedModels/progress")
    clock.advance(7.5)  # 1 s per step: 7 steps done
    op = api.get(f"/v1/{operation['name']}")
    meta = op["metadata"]
    assert "done" not in op
    assert meta["completedSteps"] == 7
    assert meta["completedPercent"] == pytest.approx(100 * 7 / 38, rel=1e-6)
    snapshots = meta["snapshots"]
    assert [s["step"] for s in snapshots] == list(range(1, 8))
    for snap in snapshots:
        expected_epoch = epoch_of(snap["step"], 2, 15)
        assert snap.get("epoch", 0) == expected_epoch
        assert ("epoch" in snap) == (expected_epoch > 0)  # omitted when 0
        assert snap["computeTime"].endswith("Z")
    model = api.get("/v1beta/tunedModels/progress")
    assert model["state"] == "CREATING"
    assert model["tuningTask"]["snapshots"] == snapshots
    assert model["updateTime"] == created["updateTime"]
    assert "completeTime" not in model["tuningTask"]

    clock.advance(100)
    model = api.get("/v1beta/tunedModels/progress")
    assert model["state"] == "ACTIVE"
    assert model["updateTime"] == model["tuningTask"]["completeTime"] > model["createTime"]
    losses = [s["meanLoss"] for s in model["tuningTask"]["snapshots"]]
    assert len(losses) == 38
    assert losses[0] > losses[-1]
    assert sum(losses[:19]) > sum(losses[19:])  # a decreasing trend
    again = api.get("/v1beta/tunedModels/progress")
    assert [s["meanLoss"] for s in again["tuningTask"]["snapshots"]] == losses  # deterministic


def test_operation_at_start_and_end(api: Api, clock: FakeClock) -> None:
    operation = _create(api, "ends", version="v1beta3")
    assert api.get(f"/v1/{operation['name']}") == operation  # nothing done yet: no zeros printed
    assert api.get(f"/v1beta3/{operation['name']}") == operation
    clock.advance(38)
    done = api.get(f"/v1/{operation['name']}")
    assert done["done"] is True
    assert done["metadata"]["completedPercent"] == 100.0
    response = done["response"]
    assert response["@type"] == "type.googleapis.com/google.ai.generativelanguage.v1beta3.TunedModel"
    model = api.get("/v1beta3/tunedModels/ends")
    assert {k: v for k, v in response.items() if k != "@type"} == model
    # v1beta shows the same operation with its own types.
    beta = api.get(f"/v1beta/{operation['name']}")
    assert beta["metadata"]["@type"].endswith("v1beta.CreateTunedModelMetadata")
    assert beta["response"]["@type"].endswith("v1beta.TunedModel")


def test_training_data_never_echoed(api: Api, clock: FakeClock, emulator: Emulator) -> None:
    operation = _create(api, "secret-examples")
    clock.advance(1000)
    responses = [
        api.request("GET", "/v1beta/tunedModels/secret-examples").text,
        api.request("GET", "/v1beta/tunedModels").text,
        api.request("GET", f"/v1/{operation['name']}").text,
        api.request("GET", "/v1/operations").text,
        api.request("PATCH", "/v1beta/tunedModels/secret-examples", json={"description": "x"}).text,
    ]
    for text in responses:
        assert "trainingData" not in text
        assert "textInput" not in text


def test_fail_marker_in_display_name(api: Api, clock: FakeClock) -> None:
    operation = _create(api, "marked", displayName="doomed emulator:fail")
    clock.advance(18.5)
    assert api.get("/v1beta/tunedModels/marked")["state"] == "CREATING"
    clock.advance(1)
    op = api.get(f"/v1/{operation['name']}")
    assert op["done"] is True
    assert op["error"]["code"] == 13
    assert "step 19 of 38" in op["error"]["message"]
    assert "response" not in op
    assert op["metadata"]["completedSteps"] == 19  # half of 38
    model = api.get("/v1beta/tunedModels/marked")
    assert model["state"] == "FAILED"
    assert "completeTime" not in model["tuningTask"]
    clock.advance(100)
    assert api.get(f"/v1/{operation['name']}") == op  # FAILED is final


def test_fail_at_step_marker_in_description(api: Api, clock: FakeClock) -> None:
    operation = _create(api, "fail-at", description="please emulator:fail-at=3 thanks")
    clock.advance(10)
    op = api.get(f"/v1beta/{operation['name']}")
    assert (op["metadata"]["completedSteps"], op["error"]["code"]) == (3, 13)


@pytest.mark.parametrize("step_seconds", [0.01, 0.02, 0.05])
@pytest.mark.parametrize("at", [0, 1, 2, 5, 7])
def test_fail_at_step_n_reports_exactly_n_steps(
    make_emulator: Any, clock: FakeClock, step_seconds: float, at: int
) -> None:
    """Small steps on an epoch-seconds clock: float rounding must not put the failure a step short."""
    api = Api(make_emulator(step_seconds=step_seconds).url)
    operation = _create(api, "fail-exact", displayName=f"emulator:fail-at={at}")
    clock.advance(step_seconds * 20)
    op = api.get(f"/v1beta/{operation['name']}")
    assert (op.get("done"), op["error"]["code"]) == (True, 13)
    assert op["metadata"].get("completedSteps", 0) == at
    assert len(op["metadata"].get("snapshots", [])) == at
    assert f"at step {at} of 38" in op["error"]["message"]


def test_fail_through_the_control_path(api: Api, clock: FakeClock, emulator: Emulator) -> None:
    operation = _create(api, "control-fail")
    clock.advance(4)
    reply = requests.post(
        f"{emulator.url}/_emulator/fail/control-fail", json={"message": "disk on fire"}, timeout=10
    )
    assert reply.status_code == 200
    assert reply.json()["state"] == "FAILED"
    op = api.get(f"/v1/{operation['name']}")
    assert op["error"] == {"code": 13, "message": "disk on fire"}
    assert op["metadata"]["completedSteps"] == 4
    again = requests.post(f"{emulator.url}/_emulator/fail/control-fail", timeout=10)
    assert again.status_code == 400
    assert again.json()["error"]["status"] == "FAILED_PRECONDITION"
    missing = requests.post(f"{emulator.url}/_emulator/fail/nope", timeout=10)
    assert missing.status_code == 404
    bad = requests.post(f"{emulator.url}/_emulator/fail/control-fail", json={"when": "now"}, timeout=10)
    assert bad.status_code == 400


def test_fail_at_step_through_python(api: Api, clock: FakeClock, emulator: Emulator) -> None:
    operation = _create(api, "python-fail")
    clock.advance(2)
    assert emulator.fail_model("tunedModels/python-fail", at_step=6)["state"] == "CREATING"
    clock.advance(10)
    op = api.get(f"/v1/{operation['name']}")
    assert (op["metadata"]["completedSteps"], op["error"]["code"]) == (6, 13)


def test_cancel_in_v1(api: Api, clock: FakeClock) -> None:
    operation = _create(api, "to-cancel")
    clock.advance(5)
    assert api.post(f"/v1/{operation['name']}:cancel") == {}
    clock.advance(100)
    op = api.get(f"/v1/{operation['name']}")
    assert op["done"] is True
    assert op["error"]["code"] == 1  # CANCELLED
    assert op["metadata"]["completedSteps"] == 5
    assert api.get("/v1beta/tunedModels/to-cancel")["state"] == "FAILED"
    error = api.error("POST", f"/v1/{operation['name']}:cancel", 400, json={})
    assert error["status"] == "FAILED_PRECONDITION"


def test_cancel_exists_only_in_v1(api: Api) -> None:
    operation = _create(api, "no-cancel")
    for version in ("v1beta", "v1beta3"):
        error = api.error("POST", f"/{version}/{operation['name']}:cancel", 404, json={})
        assert error["message"] == "Method not found."
    assert (
        api.error("POST", "/v1/tunedModels/no-cancel/operations/wrong:cancel", 404, json={})["status"]
        == "NOT_FOUND"
    )


def test_unknown_operation(api: Api) -> None:
    _create(api, "has-op")
    error = api.error("GET", "/v1/tunedModels/has-op/operations/not-this-one", 404)
    assert "does not exist" in error["message"]


def test_progress_is_a_pure_function_of_time() -> None:
    record = TunedModelRecord(
        id="pure",
        api_version="v1beta",
        operation_id="op",
        base_model="models/gemini-1.0-pro-001",
        examples=[{"textInput": "a", "output": "b"}] * 15,
        hyperparameters={"epochCount": 5, "batchSize": 4, "learningRate": 0.001},
        create_time=100.0,
        start_time=100.0,
        step_seconds=2.0,
        total_steps=19,
        update_time=100.0,
    )
    assert progress(record, 99.0).completed_steps == 0
    assert progress(record, 105.0).completed_steps == 2
    assert progress(record, 105.0) == progress(record, 105.0)
    assert progress(record, 138.0).state == "ACTIVE"
    assert progress(record, 137.9).state == "CREATING"
    assert json.dumps(mean_loss("pure", 3, 19)) == json.dumps(mean_loss("pure", 3, 19))
    assert mean_loss("pure", 3, 19) != mean_loss("other", 3, 19)
