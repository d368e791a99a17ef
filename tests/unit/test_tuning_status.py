"""TuningStatus: parsing Operations and TunedModels (shapes from CONTRACT.md sections 4 and 10)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    GenerativeLanguageError,
    InvalidInputError,
    NotFoundError,
    ServerError,
    TuningCancelledError,
    TuningFailedError,
    TuningTimeoutError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.tuning_status import (
    TuningStatus,
    status_from_event,
    strip_training_data,
)
from airflow_provider_tuning.validation import tuning_name as normalize_tuning_name

MODEL = "tunedModels/number-generator-model-dzlmi0gswwqb"
OP = f"{MODEL}/operations/bvl8dymw0fhw"
META_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"

# Exactly the create response of the Gemini seed transcript.
SEED_CREATED = {
    "name": OP,
    "metadata": {"@type": META_TYPE, "totalSteps": 38, "tunedModel": MODEL},
}


def _snap(step: int, epoch: int, loss: float) -> dict:
    snap = {"step": step, "meanLoss": loss, "computeTime": f"2024-03-14T15:11:{step:02d}.5Z"}
    if epoch:  # proto3 JSON leaves 0 out, as the transcripts show
        snap["epoch"] = epoch
    return snap


RUNNING = {
    "name": OP,
    "metadata": {
        "@type": META_TYPE,
        "totalSteps": 38,
        "completedSteps": 18,
        "completedPercent": 47.368423,
        "tunedModel": MODEL,
        "snapshots": [_snap(1, 0, 16.613504), _snap(17, 2, 0.61), _snap(18, 2, 0.53)],
    },
}

FINAL_MODEL = {
    "name": MODEL,
    "baseModel": "models/gemini-1.0-pro-001",
    "state": "ACTIVE",
    "tuningTask": {
        "snapshots": [_snap(37, 4, 0.02), _snap(38, 5, 0.0164704)],
        "hyperparameters": {"epochCount": 5, "batchSize": 2, "learningRate": 0.001},
    },
}

DONE = {
    "name": OP,
    "done": True,
    "metadata": {**RUNNING["metadata"], "completedSteps": 38, "completedPercent": 100},
    "response": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel",
        **FINAL_MODEL,
    },
}


def test_seed_create_response_is_creating_at_zero_percent():
    status = TuningStatus.from_operation(SEED_CREATED)
    assert status.state == "CREATING"
    assert not status.done
    assert status.tuned_model == MODEL
    assert status.operation == OP
    assert (status.total_steps, status.completed_steps, status.completed_percent) == (38, 0, 0.0)
    assert status.progress_line() == "0% step 0/38"


def test_running_operation_progress_line_matches_issue_example():
    status = TuningStatus.from_operation(RUNNING)
    assert status.state == "CREATING"
    assert status.epoch == 2
    assert status.mean_loss == pytest.approx(0.53)
    assert [s.step for s in status.snapshots] == [1, 17, 18]
    assert status.snapshots[0].epoch == 0  # left out by the API
    assert status.progress_line() == "47% step 18/38 epoch 2 loss 0.53"


def test_done_operation_is_active_with_final_loss():
    status = TuningStatus.from_operation(DONE)
    assert status.succeeded
    assert status.done
    assert status.state == "ACTIVE"
    assert status.completed_percent == 100.0
    assert status.completed_steps == 38
    assert status.mean_loss == pytest.approx(0.53)  # metadata snapshots win over the response's
    assert status.progress_line().startswith("100% step 38/38")
    assert status.progress_line().endswith("ACTIVE")


def test_done_operation_without_metadata_snapshots_uses_the_model_snapshots():
    op = {
        "name": OP,
        "done": True,
        "metadata": {"totalSteps": 38, "tunedModel": MODEL},
        "response": FINAL_MODEL,
    }
    status = TuningStatus.from_operation(op)
    assert status.mean_loss == pytest.approx(0.0164704)
    assert status.epoch == 5
    assert status.completed_steps == 38


def test_tuned_model_name_derived_from_operation_name_without_metadata():
    status = TuningStatus.from_operation({"name": OP})
    assert status.tuned_model == MODEL
    assert status.state == "CREATING"
    assert status.progress_line() == "CREATING"


def test_failed_operation_carries_the_api_message_and_code():
    op = {**RUNNING, "done": True, "error": {"code": 13, "message": "Tuning job failed: loss diverged"}}
    status = TuningStatus.from_operation(op)
    assert status.state == "FAILED"
    assert status.done
    assert status.failed
    assert (status.error_code, status.error_message) == (13, "Tuning job failed: loss diverged")
    with pytest.raises(TuningFailedError, match="loss diverged") as info:
        status.raise_for_failure()
    assert not isinstance(info.value, TuningCancelledError)
    assert info.value.code == 13
    assert info.value.tuned_model == MODEL


def test_error_without_done_flag_still_counts_as_done():
    status = TuningStatus.from_operation({"name": OP, "error": {"code": 3, "message": "bad data"}})
    assert status.done
    assert status.state == "FAILED"


def test_cancelled_operation():
    op = {"name": OP, "done": True, "error": {"code": 1, "message": "Operation cancelled by the user."}}
    status = TuningStatus.from_operation(op)
    assert status.state == "CANCELLED"
    with pytest.raises(TuningCancelledError, match="cancelled by the user"):
        status.raise_for_failure()


def test_done_with_a_failed_model_in_the_response_is_failed():
    op = {"name": OP, "done": True, "response": {**FINAL_MODEL, "state": "FAILED"}}
    status = TuningStatus.from_operation(op)
    assert status.state == "FAILED"
    with pytest.raises(TuningFailedError):
        status.raise_for_failure()


def test_ints_as_strings_are_accepted_like_proto3_json_parsers_do():
    op = {"name": OP, "metadata": {"totalSteps": "38", "completedSteps": "19", "tunedModel": MODEL}}
    status = TuningStatus.from_operation(op)
    assert (status.total_steps, status.completed_steps, status.completed_percent) == (38, 19, 50.0)


def test_tuned_model_states():
    creating = TuningStatus.from_tuned_model({"name": MODEL, "state": "CREATING"})
    assert not creating.done
    assert creating.progress_line() == "CREATING"
    running = TuningStatus.from_tuned_model(
        {"name": MODEL, "state": "CREATING", "tuningTask": {"snapshots": [_snap(18, 2, 0.53)]}}
    )
    assert running.progress_line() == "step 18 epoch 2 loss 0.53"
    active = TuningStatus.from_tuned_model(FINAL_MODEL)
    assert active.succeeded
    assert active.mean_loss == pytest.approx(0.0164704)
    assert active.operation is None
    failed = TuningStatus.from_tuned_model({"name": MODEL, "state": "FAILED"})
    assert failed.failed
    assert failed.done
    with pytest.raises(TuningFailedError, match="FAILED"):
        failed.raise_for_failure()


@pytest.mark.parametrize(
    ("op", "fragment"),
    [
        ([], "not a JSON object"),
        ({"name": 5}, "Operation.name is not a string"),
        ({"name": OP, "done": "yes"}, "done is not a boolean"),
        ({"name": OP, "metadata": []}, "metadata is not an object"),
        ({"name": OP, "metadata": {"totalSteps": "many"}}, "totalSteps is not an integer"),
        ({"name": OP, "metadata": {"completedPercent": [1]}}, "completedPercent is not a number"),
        ({"name": OP, "metadata": {"snapshots": {"step": 1}}}, "snapshots is not a list"),
        ({"name": OP, "metadata": {"snapshots": [{"step": 1, "meanLoss": "x"}]}}, "snapshots[0].meanLoss"),
        ({"name": OP, "error": "boom"}, "error is not an object"),
        ({"name": OP, "done": True, "error": {"code": "thirteen"}}, "error.code is not an integer"),
    ],
)
def test_unexpected_operation_shapes_raise_a_clear_error(op, fragment):
    with pytest.raises(UnexpectedResponseError) as info:
        TuningStatus.from_operation(op, request="GET /v1/" + OP)
    assert fragment in str(info.value)
    assert f"GET /v1/{OP}" in str(info.value)


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("ACTIVE", "not a JSON object"),
        ({"name": MODEL}, "state is None"),
        ({"name": MODEL, "state": "DONE"}, "state is 'DONE'"),
        ({"name": MODEL, "state": "ACTIVE", "tuningTask": []}, "tuningTask is not an object"),
    ],
)
def test_unexpected_tuned_model_shapes_raise_a_clear_error(model, fragment):
    with pytest.raises(UnexpectedResponseError, match="unexpected response shape") as info:
        TuningStatus.from_tuned_model(model)
    assert fragment in str(info.value)


def test_to_dict_is_plain_json():
    data = TuningStatus.from_operation(RUNNING).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["tuned_model"] == MODEL
    assert data["snapshots"][-1] == {
        "step": 18,
        "epoch": 2,
        "mean_loss": 0.53,
        "compute_time": "2024-03-14T15:11:18.5Z",
    }
    assert data["error"] is None
    failed = TuningStatus.from_operation({"name": OP, "error": {"code": 13, "message": "m"}}).to_dict()
    assert failed["error"] == {"code": 13, "message": "m"}


def test_strip_training_data_removes_examples_everywhere():
    model = {
        "name": MODEL,
        "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}}},
    }
    op = {"name": OP, "response": model, "metadata": {"snapshots": [{"step": 1}]}}
    cleaned = strip_training_data(op)
    assert "trainingData" not in json.dumps(cleaned)
    assert cleaned["metadata"] == {"snapshots": [{"step": 1}]}
    assert "trainingData" in json.dumps(op)  # the input is not modified
    assert "trainingData" not in json.dumps(TuningStatus.from_operation(op).resource)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("abc", "tunedModels/abc"), (MODEL, MODEL), (f"/{OP}/", OP), (" tunedModels/x ", "tunedModels/x")],
)
def test_normalize_tuning_name(given, expected):
    assert normalize_tuning_name(given) == expected


@pytest.mark.parametrize(
    "bad", ["", None, 5, "models/gemini-1.0-pro", "tunedModels/x/permissions/y", "a/b/c"]
)
def test_normalize_tuning_name_rejects_other_names(bad):
    with pytest.raises(InvalidInputError):
        normalize_tuning_name(bad)


# -- trigger events --------------------------------------------------------------------------------


def test_success_events():
    assert status_from_event({"status": "success", "operation": DONE}).tuned_model == MODEL
    assert status_from_event({"status": "success", "model": FINAL_MODEL}).succeeded


def test_success_event_for_unfinished_or_failed_job_is_rejected():
    with pytest.raises(GenerativeLanguageError, match="unfinished"):
        status_from_event({"status": "success", "operation": RUNNING})
    with pytest.raises(TuningFailedError):
        status_from_event({"status": "success", "model": {"name": MODEL, "state": "FAILED"}})
    with pytest.raises(GenerativeLanguageError, match="without a summary"):
        status_from_event({"status": "success"})


def test_failed_events_raise_with_the_api_message():
    event = {"status": "failed", "tuned_model": MODEL, "message": "loss diverged", "code": 13}
    with pytest.raises(TuningFailedError, match="loss diverged") as info:
        status_from_event(event)
    assert info.value.code == 13
    with pytest.raises(TuningCancelledError):
        status_from_event({**event, "code": 1})
    with pytest.raises(NotFoundError, match="Tuned model x not found"):
        status_from_event(
            {"status": "failed", "message": "Tuned model x not found", "http_status": 404, "code": 5}
        )


def test_timeout_and_error_events():
    with pytest.raises(TuningTimeoutError, match="deadline"):
        status_from_event({"status": "timeout", "message": "x did not finish before its deadline"})
    with pytest.raises(ServerError, match="5 consecutive"):
        status_from_event({"status": "error", "message": "5 consecutive failures", "http_status": 503})
    with pytest.raises(UnexpectedResponseError):
        status_from_event({"status": "error", "message": "not JSON", "http_status": 200})
    with pytest.raises(ApiConnectionError, match="refused"):
        status_from_event({"status": "error", "message": "connection refused", "http_status": None})


@pytest.mark.parametrize("event", [None, {}, {"status": "done"}, "success"])
def test_unknown_events_are_rejected(event):
    with pytest.raises(GenerativeLanguageError, match="unexpected trigger event"):
        status_from_event(event)
