"""Vertex AI tuning jobs over real HTTP: lifecycle, progress fields, defaults, both JSON spellings,
failures on demand, dataset problems, cancel, list filters and paging, and create validation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.emulator_support import FakeClock
from tests.emulator.vertex.vertex_support import (
    LOCATION,
    VertexApi,
    jsonl,
    put_object,
    sft_body,
    sft_lines,
)
from tuning_api_emulator import Emulator
from tuning_api_emulator.vertex_jobs import project_number

NUMBER = project_number("tuning-project")


def test_a_job_moves_through_its_states_reporting_progress(
    vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    created = vertex.create(sft_body(train_uri, tunedModelDisplayName="demo"), version="v1beta1")
    name = created["name"]
    assert name.startswith(f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/")
    assert name.rsplit("/", 1)[1].isdigit()
    assert created["state"] == "JOB_STATE_PENDING"
    # the server's defaults fill in what the request left out; int64 travel as strings
    assert created["supervisedTuningSpec"]["hyperParameters"] == {
        "epochCount": "5",
        "learningRateMultiplier": 1.0,
        "adapterSize": "ADAPTER_SIZE_FOUR",
    }
    assert not {"tuningDataStats", "tunedModel", "startTime"} & set(created)

    clock.advance(1)
    job = vertex.job(name, "v1beta1")
    assert (job["state"], job["tuningJobState"]) == (
        "JOB_STATE_RUNNING",
        "TUNING_JOB_STATE_PROCESSING_DATASET",
    )
    assert job["startTime"] == job["updateTime"]

    clock.advance(4)  # three steps into tuning (13 steps: 20 examples x 5 epochs / 8)
    job = vertex.job(name, "v1beta1")
    assert job["tuningJobState"] == "TUNING_JOB_STATE_TUNING"
    assert job["tuningJobMetadata"] == {"completedEpochCount": "1", "completedStepCount": "3"}
    stats = job["tuningDataStats"]["supervisedTuningDataStats"]
    assert stats["tuningDatasetExampleCount"] == "20"
    assert stats["tuningStepCount"] == "13"
    assert stats["userInputTokenDistribution"]["sum"] == "100"  # "question N" + "Answer briefly." = 5 tokens
    assert stats["userDatasetExamples"][0] == {"role": "user", "parts": [{"text": "question 0"}]}
    v1 = vertex.job(name, "v1")
    assert not {"tuningJobState", "tuningJobMetadata"} & set(v1)  # v1beta1-only fields

    clock.advance(10)
    assert vertex.job(name)["state"] == "JOB_STATE_RUNNING"
    assert vertex.job(name, "v1beta1")["tuningJobState"] == "TUNING_JOB_STATE_POST_PROCESSING"
    clock.advance(1)
    done = vertex.job(name)
    assert done["state"] == "JOB_STATE_SUCCEEDED"
    assert "error" not in done
    assert done["endTime"] == done["updateTime"]
    tuned = done["tunedModel"]
    assert tuned["model"].startswith(f"projects/{NUMBER}/locations/{LOCATION}/models/")
    assert tuned["model"].endswith("@1")
    assert tuned["endpoint"].startswith(f"projects/{NUMBER}/locations/{LOCATION}/endpoints/")
    assert [(c["checkpointId"], c["epoch"], c["step"]) for c in tuned["checkpoints"]] == [
        ("1", "1", "3"),
        ("2", "2", "6"),
        ("3", "3", "8"),
        ("4", "4", "11"),
        ("5", "5", "13"),
    ]
    assert tuned["checkpoints"][-1]["endpoint"] == tuned["endpoint"]
    assert "tuningJobState" not in vertex.job(name, "v1beta1")


def test_snake_case_fields_and_number_strings_are_accepted(vertex: VertexApi, train_uri: str) -> None:
    job = vertex.create(
        {
            "base_model": "gemini-2.5-flash",
            "supervised_tuning_spec": {
                "training_dataset_uri": train_uri,
                "hyper_parameters": {"epoch_count": "2", "adapter_size": "ADAPTER_SIZE_EIGHT"},
                "export_last_checkpoint_only": True,
            },
            "tuned_model_display_name": "snake",
            "labels": {"team": "nlp"},
        }
    )
    spec = job["supervisedTuningSpec"]
    assert spec["hyperParameters"]["epochCount"] == "2"
    assert spec["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_EIGHT"
    assert spec["exportLastCheckpointOnly"] is True
    assert job["tunedModelDisplayName"] == "snake"
    assert job["labels"] == {"team": "nlp"}


def test_export_last_checkpoint_only_leaves_no_checkpoints(
    vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    body = sft_body(train_uri)
    body["supervisedTuningSpec"]["exportLastCheckpointOnly"] = True
    name = vertex.create(body)["name"]
    clock.advance(100)
    assert "checkpoints" not in vertex.job(name)["tunedModel"]


def test_emulator_fail_in_the_display_name_fails_the_job_half_way(
    vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    name = vertex.create(sft_body(train_uri, tunedModelDisplayName="demo emulator:fail"))["name"]
    clock.advance(100)
    job = vertex.job(name, "v1beta1")
    assert job["state"] == "JOB_STATE_FAILED"
    assert job["error"] == {"code": 13, "message": "Tuning job failed at step 6 of 13 (emulated failure)."}
    assert "tunedModel" not in job
    assert job["endTime"] == job["updateTime"]


@pytest.mark.parametrize(("mark", "steps"), [("emulator:fail-at=0", 0), ("emulator:fail-at=4", 4)])
def test_emulator_fail_at_a_step(
    vertex: VertexApi, clock: FakeClock, train_uri: str, mark: str, steps: int
) -> None:
    name = vertex.create(sft_body(train_uri, description=f"run {mark}"), version="v1beta1")["name"]
    clock.advance(2 + steps - 0.5)
    assert vertex.job(name)["state"] == "JOB_STATE_RUNNING"
    clock.advance(0.5)
    job = vertex.job(name, "v1beta1")
    assert job["state"] == "JOB_STATE_FAILED"
    assert job["error"]["message"] == f"Tuning job failed at step {steps} of 13 (emulated failure)."
    assert job.get("tuningJobMetadata", {}).get("completedStepCount", "0") == str(steps)


def test_the_control_path_fails_a_running_job(
    emulator: Emulator, vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    import requests

    name = vertex.create(sft_body(train_uri))["name"]
    clock.advance(3)
    answer = requests.post(
        f"{emulator.url}/_emulator/vertex/fail/{name.rsplit('/', 1)[1]}",
        json={"message": "quota"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.json()["state"] == "JOB_STATE_FAILED"
    assert vertex.job(name)["error"] == {"code": 13, "message": "quota"}
    again = requests.post(f"{emulator.url}/_emulator/vertex/fail/{name.rsplit('/', 1)[1]}", timeout=30)
    assert again.status_code == 400
    later = vertex.create(sft_body(train_uri))["name"]
    emulator.fail_tuning_job(later.rsplit("/", 1)[1], at_step=5)
    clock.advance(2 + 5)
    assert vertex.job(later)["error"]["message"] == "Tuning job failed at step 5 of 13 (emulated failure)."
    unknown = requests.post(f"{emulator.url}/_emulator/vertex/fail/123", timeout=30)
    assert unknown.status_code == 404


def test_cancel_ends_the_job_cancelled_with_code_1(
    vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    name = vertex.create(sft_body(train_uri))["name"]
    clock.advance(3)
    response = vertex.request("POST", f"/v1beta1/{name}:cancel")  # no body, as google-genai sends it
    assert response.json() == {}
    job = vertex.job(name)
    assert job["state"] == "JOB_STATE_CANCELLED"
    assert job["error"]["code"] == 1
    clock.advance(100)
    assert vertex.job(name)["state"] == "JOB_STATE_CANCELLED"
    error = vertex.error("POST", f"/v1/{name}:cancel", 400, json={})
    assert error["status"] == "FAILED_PRECONDITION"
    assert "JOB_STATE_CANCELLED" in error["message"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"contents": [{"role": "user", "parts": [{"text": "q"}]}, '
            '{"role": "model", "parts": [{"text": "a"}]}]}\n{"contents": [oops\n',
            "Invalid JSON in the training dataset gs://tuning-data/bad.jsonl at line 2: Expecting value",
        ),
        (
            '{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}\n',
            "Invalid example in the training dataset gs://tuning-data/bad.jsonl at line 1: "
            '"contents" must end with a model turn',
        ),
        (
            '{"messages": [{"role": "user", "content": "q"}]}\n',
            'at line 1: the "messages" format is retired',
        ),
    ],
)
def test_a_bad_dataset_line_fails_the_job_naming_uri_and_line(
    emulator: Emulator, vertex: VertexApi, clock: FakeClock, text: str, message: str
) -> None:
    uri = put_object(emulator.url, "bad.jsonl", text)
    created = vertex.create(sft_body(uri))
    assert created["state"] == "JOB_STATE_PENDING"  # create succeeds; processing the data fails
    clock.advance(1)
    assert vertex.job(created["name"])["state"] == "JOB_STATE_RUNNING"
    clock.advance(1)
    job = vertex.job(created["name"])
    assert job["state"] == "JOB_STATE_FAILED"
    assert job["error"]["code"] == 3
    assert message in job["error"]["message"]
    assert "tuningDataStats" not in job


def test_a_missing_dataset_object_fails_the_job(vertex: VertexApi, clock: FakeClock, train_uri: str) -> None:
    body = sft_body("gs://tuning-data/nothing-here.jsonl")
    name = vertex.create(body)["name"]
    clock.advance(2)
    assert vertex.job(name)["error"] == {
        "code": 3,
        "message": "Failed to read the training dataset gs://tuning-data/nothing-here.jsonl: "
        "the object does not exist.",
    }
    body = sft_body(train_uri)
    body["supervisedTuningSpec"]["validationDatasetUri"] = "gs://no-such-bucket/v.jsonl"
    name = vertex.create(body)["name"]
    clock.advance(2)
    assert "the bucket no-such-bucket does not exist" in vertex.job(name)["error"]["message"]


def _names(page: dict[str, Any]) -> list[str]:
    return [job["name"] for job in page.get("tuningJobs", [])]


def test_list_filters_on_labels_and_pages(vertex: VertexApi, clock: FakeClock, train_uri: str) -> None:
    names = []
    for index in range(5):
        labels = {"run": f"r{index}", "team": "nlp" if index % 2 == 0 else "vision"}
        clock.advance(1)
        names.append(vertex.create(sft_body(train_uri, labels=labels))["name"])
    parent = f"{vertex.parent('v1beta1')}/tuningJobs"
    assert _names(vertex.get(parent)) == names
    assert _names(vertex.get(parent, params={"filter": 'labels.team="nlp"'})) == names[0::2]
    assert _names(vertex.get(parent, params={"filter": "labels.team=vision AND labels.run=r3"})) == [names[3]]
    assert _names(vertex.get(parent, params={"filter": "labels.run:*"})) == names
    assert _names(vertex.get(parent, params={"filter": "labels.missing:*"})) == []
    assert _names(vertex.get(parent, params={"filter": "state=JOB_STATE_PENDING"})) == [names[4]]
    seen: list[str] = []
    token = None
    while True:
        params = {"pageSize": "2", "filter": "labels.run:*", **({"pageToken": token} if token else {})}
        page = vertex.get(parent, params=params)
        seen += _names(page)
        token = page.get("nextPageToken")
        if not token:
            break
    assert seen == names
    error = vertex.error("GET", parent, 400, params={"filter": "labels.team = nlp OR labels.team = x"})
    assert "only AND joins terms" in error["message"]
    error = vertex.error("GET", parent, 400, params={"filter": "color=red"})
    assert 'Unsupported field "color"' in error["message"]
    # another location or project lists nothing
    assert vertex.get(f"{vertex.parent('v1', location='europe-west4')}/tuningJobs") == {}


def test_the_project_id_and_number_name_the_same_job(vertex: VertexApi, train_uri: str) -> None:
    name = vertex.create(sft_body(train_uri))["name"]
    job_id = name.rsplit("/", 1)[1]
    by_id = vertex.get(f"{vertex.parent()}/tuningJobs/{job_id}")
    assert by_id["name"] == name
    error = vertex.error("GET", f"{vertex.parent(location='europe-west4')}/tuningJobs/{job_id}", 404)
    assert error["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"baseModel": "gemini-2.5-flash"}, 400, "A tuning spec is required"),
        ({"supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x.jsonl"}}, 400, "base_model is required."),
        (
            {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {}},
            400,
            "training_dataset_uri is required.",
        ),
        (
            {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "/tmp/x.jsonl"}},
            400,
            'Invalid dataset URI "/tmp/x.jsonl"',
        ),
        (
            {
                "baseModel": "gemini-1.5-pro-002",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x.jsonl"},
            },
            400,
            "Base model gemini-1.5-pro-002 is not supported for tuning.",
        ),
        (
            {
                "baseModel": "gemini-2.5-pro",
                "supervisedTuningSpec": {
                    "trainingDatasetUri": "gs://b/x.jsonl",
                    "hyperParameters": {"adapterSize": "ADAPTER_SIZE_SIXTEEN"},
                },
            },
            400,
            "The adapter size is not supported for this base model.",
        ),
        (
            {
                "baseModel": "gemini-2.5-flash",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x", "x": 1},
            },
            400,
            "Invalid JSON payload received. Unknown name \"x\" at 'tuning_job.supervised_tuning_spec': "
            "Cannot find field.",
        ),
        (
            {
                "baseModel": "gemini-2.5-flash",
                "supervisedTuningSpec": {
                    "trainingDatasetUri": "gs://b/x",
                    "hyperParameters": {"epochCount": "x"},
                },
            },
            400,
            "Invalid value at 'tuning_job.supervised_tuning_spec.hyper_parameters.epoch_count' (TYPE_INT64)",
        ),
        (
            {
                "baseModel": "gemini-2.5-flash",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x"},
                "preferenceOptimizationSpec": {"trainingDatasetUri": "gs://b/x"},
            },
            400,
            "Oneof field 'tuning_spec' is already set.",
        ),
        (
            {"baseModel": "gemini-2.5-flash", "distillationSpec": {"promptDatasetUri": "gs://b/x"}},
            400,
            'Unknown name "distillationSpec"',  # v1beta1 only
        ),
        (
            {
                "baseModel": "gemini-2.5-flash",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x"},
                "labels": {"Team": "x"},
            },
            400,
            'Invalid label key "Team"',
        ),
        (
            {
                "baseModel": "gemini-2.5-flash",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x"},
                "encryptionSpec": {"kmsKeyName": "my-key"},
            },
            400,
            'Invalid kms_key_name "my-key"',
        ),
    ],
)
def test_create_refuses_bad_input_in_the_services_words(
    vertex: VertexApi, body: dict[str, Any], status: int, message: str
) -> None:
    error = vertex.error("POST", f"{vertex.parent()}/tuningJobs", status, json=body)
    assert message in error["message"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert vertex.get(f"{vertex.parent()}/tuningJobs") == {}  # nothing was created


def test_v1beta1_tuning_variants(
    emulator: Emulator, vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    from tests.emulator.vertex.vertex_support import preference_lines

    preference_uri = put_object(emulator.url, "pref.jsonl", jsonl(preference_lines(8)))
    prompts = put_object(
        emulator.url, "prompts.jsonl", jsonl([{"contents": line["contents"][:1]} for line in sft_lines(8)])
    )
    base = {"baseModel": "gemini-2.5-flash"}
    kms = "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"
    bodies = {
        "preferenceOptimizationSpec": {
            **base,
            "preferenceOptimizationSpec": {
                "trainingDatasetUri": preference_uri,
                "hyperParameters": {"beta": 0.2},
            },
        },
        "distillationSpec": {
            **base,
            "distillationSpec": {"baseTeacherModel": "gemini-2.5-pro", "promptDatasetUri": prompts},
        },
        "reinforcementTuningSpec": {
            **base,
            "reinforcementTuningSpec": {
                "trainingDatasetUri": prompts,
                "singleRewardConfig": {"rewardName": "exact", "stringMatchRewardScorer": {}},
                "hyperParameters": {"stepCount": "4", "batchSize": 8},
            },
        },
        "fullFineTuningSpec": {**base, "fullFineTuningSpec": {"trainingDatasetUri": train_uri}},
        "supervisedTuningSpec": {
            **base,
            "supervisedTuningSpec": {
                "trainingDatasetUri": train_uri,
                "tuningMode": "TUNING_MODE_PEFT_ADAPTER",
                "evaluationConfig": {
                    "metrics": [{"bleuSpec": {}}],
                    "outputConfig": {"gcsDestination": {"outputUriPrefix": "gs://tuning-data/eval/"}},
                },
            },
            "encryptionSpec": {"kmsKeyName": kms},
            "serviceAccount": "tuner@tuning-project.iam.gserviceaccount.com",
        },
    }
    names = {kind: vertex.create(body, version="v1beta1")["name"] for kind, body in bodies.items()}
    clock.advance(100)
    jobs = {kind: vertex.job(name, "v1beta1") for kind, name in names.items()}
    for kind, job in jobs.items():
        assert job["state"] == "JOB_STATE_SUCCEEDED", (kind, job.get("error"))
        assert kind in job
    assert jobs["preferenceOptimizationSpec"]["preferenceOptimizationSpec"]["hyperParameters"] == {
        "beta": 0.2,
        "epochCount": "5",
        "learningRateMultiplier": 1.0,
        "adapterSize": "ADAPTER_SIZE_FOUR",
    }
    assert "preferenceOptimizationDataStats" in jobs["preferenceOptimizationSpec"]["tuningDataStats"]
    assert "distillationDataStats" in jobs["distillationSpec"]["tuningDataStats"]
    rl = jobs["reinforcementTuningSpec"]
    assert rl["tuningDataStats"]["reinforcementTuningDataStats"]["tuningStepCount"] == "4"
    assert rl["reinforcementTuningSpec"]["hyperParameters"]["batchSize"] == 8  # int32 in this spec
    assert "supervisedTuningDataStats" in jobs["fullFineTuningSpec"]["tuningDataStats"]
    assert jobs["supervisedTuningSpec"]["encryptionSpec"] == {"kmsKeyName": kms}
    assert jobs["supervisedTuningSpec"]["serviceAccount"] == "tuner@tuning-project.iam.gserviceaccount.com"
    # evaluationConfig exists only in us-central1
    body = bodies["supervisedTuningSpec"]
    error = vertex.error(
        "POST", f"{vertex.parent('v1beta1', location='europe-west4')}/tuningJobs", 400, json=body
    )
    assert "only supported in us-central1" in error["message"]


def test_continuous_tuning_from_a_pre_tuned_model(
    vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    first = vertex.create(sft_body(train_uri, tunedModelDisplayName="base-run"))["name"]
    clock.advance(100)
    model = vertex.job(first)["tunedModel"]["model"]
    body = {
        "preTunedModel": {"tunedModelName": model.split("@")[0], "checkpointId": "2"},
        "supervisedTuningSpec": {"trainingDatasetUri": train_uri},
    }
    second = vertex.create(body, version="v1beta1")
    assert second["preTunedModel"] == {
        "tunedModelName": model.split("@")[0],
        "checkpointId": "2",
        "baseModel": "gemini-2.5-flash",
    }
    assert "baseModel" not in second
    clock.advance(100)
    assert vertex.job(second["name"])["tunedModel"]["model"] == model.replace("@1", "@2")
    body["preTunedModel"]["checkpointId"] = "9"
    error = vertex.error("POST", f"{vertex.parent()}/tuningJobs", 400, json=body)
    assert 'Checkpoint "9" does not exist' in error["message"]
