"""The Vertex AI backend: names, the poll request, and a TuningJob read into the shared status.

The TuningJob documents follow shared/api/vertex/CONTRACT.md (int64 counts as JSON strings, names
with a project number, JOB_STATE_* and TUNING_JOB_STATE_* enums)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_tuning.backends import get_backend
from airflow_provider_tuning.exceptions import InvalidInputError, UnexpectedResponseError
from airflow_provider_tuning.tuning_status import TuningStatus
from airflow_provider_tuning.validation import is_tuning_job_name, tuning_job_name

JOB = "projects/123456789012/locations/us-central1/tuningJobs/4455667788"
VERTEX = get_backend("vertex")


def job(state: str, **fields) -> dict:
    body = {
        "name": JOB,
        "baseModel": "gemini-2.5-flash",
        "state": state,
        "createTime": "2026-11-30T10:00:00.123456Z",
        "tuningDataStats": {
            "supervisedTuningDataStats": {"tuningDatasetExampleCount": "500", "tuningStepCount": "120"}
        },
    }
    body.update(fields)
    return body


@pytest.mark.parametrize(
    "name", [JOB, f"/{JOB}/", "projects/my-project-1/locations/europe-west4/tuningJobs/987"]
)
def test_tuning_job_names(name):
    assert tuning_job_name(name) == name.strip("/")
    assert is_tuning_job_name(name.strip("/"))


@pytest.mark.parametrize(
    "bad",
    [
        "tunedModels/x",
        "projects/p/locations/us-central1/tuningJobs",
        f"{JOB}/operations/1",
        "projects/123456789012/locations/us-central1/tuningJobs/..",
        "projects/123456789012/locations/us-central1/tuningJobs/1?alt=media",
        "projects/UPPER/locations/us-central1/tuningJobs/1",
        "projects/123/locations/US/tuningJobs/1",
    ],
)
def test_other_names_are_refused(bad):
    with pytest.raises(InvalidInputError, match="projects/<project>/locations/<location>/tuningJobs/<id>"):
        VERTEX.normalize(bad)


def test_a_poll_asks_only_for_what_a_wait_needs():
    call = VERTEX.poll_call(JOB, api_version="v1")
    assert (call.method, call.path) == ("GET", f"/v1/{JOB}")
    fields = call.params["fields"]
    assert "state" in fields
    assert "tuningJobMetadata" in fields
    assert "userDatasetExamples" not in fields  # the dataset examples of the statistics stay out
    assert VERTEX.poll_call(JOB, api_version="v1beta1").path == f"/v1beta1/{JOB}"
    assert VERTEX.poll_call(JOB, api_version="v1beta").path == f"/v1/{JOB}"  # not a Vertex version
    assert VERTEX.poll_call(JOB, partial=False).params["fields"] is None


def test_a_poll_asks_for_the_data_counts_only_until_they_are_seen():
    first = VERTEX.poll_call(JOB, api_version="v1").params["fields"]
    later = VERTEX.poll_call(JOB, api_version="v1", data_stats=False).params["fields"]
    for counts in ("tuningDatasetExampleCount", "totalBillableTokenCount", "totalTruncatedExampleCount"):
        assert counts in first
        assert counts not in later
    assert "tuningStepCount" in later  # the progress percentage still needs it
    for heavy in ("userDatasetExamples", "Distribution", "truncatedExampleIndices"):
        assert heavy not in first


def test_data_stats_of_a_supervised_job():
    stats = {
        "tuningDatasetExampleCount": "500",
        "totalBillableTokenCount": "61250",
        "totalTruncatedExampleCount": "2",
        "tuningStepCount": "120",
    }
    status = VERTEX.parse(JOB, job("JOB_STATE_RUNNING", tuningDataStats={"supervisedTuningDataStats": stats}))
    assert status.data_stats is not None
    assert (status.data_stats.examples, status.data_stats.billable_tokens, status.data_stats.truncated) == (
        500,
        61250,
        2,
    )
    assert status.data_stats.line() == "data stats: 500 examples, 61,250 billable tokens, 2 truncated"
    assert TuningStatus.from_summary(status.summary()).data_stats == status.data_stats


def test_data_stats_of_a_preference_job_count_the_dropped_examples():
    stats = {
        "tuningDatasetExampleCount": "80",
        "totalBillableTokenCount": "9000",
        "droppedExampleIndices": ["4", "9"],
    }
    body = job("JOB_STATE_RUNNING", tuningDataStats={"preferenceOptimizationDataStats": stats})
    assert VERTEX.parse(JOB, body).data_stats.line() == (
        "data stats: 80 examples, 9,000 billable tokens, 2 truncated"
    )


def test_no_data_stats_before_the_service_counted():
    assert VERTEX.parse(JOB, job("JOB_STATE_PENDING", tuningDataStats={})).data_stats is None
    with pytest.raises(UnexpectedResponseError, match="totalBillableTokenCount is not an integer"):
        VERTEX.parse(
            JOB,
            job(
                "JOB_STATE_RUNNING",
                tuningDataStats={"supervisedTuningDataStats": {"totalBillableTokenCount": "many"}},
            ),
        )


@pytest.mark.parametrize(
    "state",
    [
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_CANCELLING",
        "JOB_STATE_PAUSED",
        "JOB_STATE_UPDATING",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
        "JOB_STATE_UNSPECIFIED",
    ],
)
def test_only_the_four_ended_states_end_a_wait(state):
    status = VERTEX.parse(JOB, job(state))
    assert not status.done
    assert status.state == "CREATING"


def test_a_running_job_reports_its_sub_state_and_progress():
    running = job(
        "JOB_STATE_RUNNING",
        tuningJobState="TUNING_JOB_STATE_TUNING",
        tuningJobMetadata={"completedEpochCount": "1", "completedStepCount": "30"},
    )
    status = VERTEX.parse(JOB, running)
    assert (status.completed_steps, status.total_steps, status.epoch) == (30, 120, 1)
    assert status.progress_line() == "RUNNING/TUNING 25% step 30/120 epoch 1"


def test_success():
    done = job(
        "JOB_STATE_SUCCEEDED",
        tunedModel={
            "model": "projects/123456789012/locations/us-central1/models/77@1",
            "endpoint": "projects/123456789012/locations/us-central1/endpoints/88",
        },
    )
    status = VERTEX.parse(JOB, done, full=True)
    assert (status.succeeded, status.done, status.completed_steps) == (True, True, 120)
    assert status.resource["tunedModel"]["endpoint"].endswith("/endpoints/88")
    assert VERTEX.parse(JOB, done).resource == {}  # a wait keeps no resource


@pytest.mark.parametrize(
    ("state", "error", "expected"),
    [
        (
            "JOB_STATE_FAILED",
            {"code": 3, "message": "Line 7 of gs://b/train.jsonl is not valid JSON."},
            ("FAILED", 3, "Line 7 of gs://b/train.jsonl is not valid JSON."),
        ),
        ("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"}, ("CANCELLED", 1, "CANCELED")),
        ("JOB_STATE_EXPIRED", None, ("FAILED", None, "the tuning job expired before it finished")),
        ("JOB_STATE_FAILED", None, ("FAILED", None, f"tuning job {JOB} ended JOB_STATE_FAILED")),
    ],
)
def test_failures_carry_the_api_message(state, error, expected):
    status = VERTEX.parse(JOB, job(state, **({"error": error} if error else {})))
    assert status.done
    assert status.failed
    assert (status.state, status.error_code, status.error_message) == expected
    assert VERTEX.failure_call(status) is None  # the job carries its own error


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"name": JOB},
        {"name": JOB, "state": "SUCCEEDED"},
        {"name": JOB, "state": "JOB_STATE_RUNNING", "tuningJobMetadata": {"completedStepCount": "many"}},
        {"name": JOB, "state": "JOB_STATE_RUNNING", "tuningDataStats": []},
    ],
)
def test_an_unexpected_job_is_an_unexpected_response(bad):
    with pytest.raises(UnexpectedResponseError):
        VERTEX.parse(JOB, bad)


def test_the_summary_of_a_vertex_job_round_trips_through_an_event():
    status = VERTEX.parse(JOB, job("JOB_STATE_RUNNING", tuningJobState="TUNING_JOB_STATE_WAITING_FOR_QUOTA"))
    again = TuningStatus.from_summary(json.loads(json.dumps(status.summary())))
    assert (again.phase, again.total_steps, again.tuned_model) == ("RUNNING/WAITING_FOR_QUOTA", 120, JOB)
