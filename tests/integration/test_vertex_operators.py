"""CreateVertexTuningJobOperator against the emulator's Vertex AI and Cloud Storage routes, over real
HTTP, with service-account credentials that refresh at the emulator's /token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import requests
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.sdk.module_loading import import_string

from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError
from airflow_provider_tuning.operators.vertex_tuning import TUNING_JOB_XCOM_KEY, CreateVertexTuningJobOperator
from tests.unit.hooks.glapi_loopback import service_account_info
from tuning_api_emulator import Emulator
from tuning_api_emulator.faults import Decision, FaultPlan

PROJECT = "tuning-project"
BUCKET = "airflow-staging"
EXAMPLES = [{"text_input": str(i), "output": str(i + 1)} for i in range(1, 25)]


@pytest.fixture(scope="module")
def emulator():
    with Emulator(step_seconds=0.01) as emu:
        yield emu


@pytest.fixture(autouse=True)
def fresh(emulator, monkeypatch):
    emulator.reset()
    created = requests.post(
        f"{emulator.url}/storage/v1/b", params={"project": PROJECT}, json={"name": BUCKET}, timeout=30
    )
    assert created.status_code == 200, created.text
    conn = {
        "conn_type": "google_cloud_platform",
        "host": emulator.url,
        "extra": json.dumps(
            {"keyfile_dict": json.dumps(service_account_info(f"{emulator.url}/token")), "project": PROJECT}
        ),
    }
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))


class TI:
    def __init__(self, run_id: str) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number = (
            "vertex_it",
            "tune",
            run_id,
            -1,
            1,
        )
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def context_for(run_id: str = "manual__2026-12-01") -> dict[str, Any]:
    ti = TI(run_id)
    return {"ti": ti, "task_instance": ti, "run_id": run_id, "outlet_events": OutletEventAccessors()}


def operator(**kwargs: Any) -> CreateVertexTuningJobOperator:
    kwargs.setdefault("base_model", "gemini-2.5-flash")
    kwargs.setdefault("training_data", EXAMPLES)
    kwargs.setdefault("staging_uri", f"gs://{BUCKET}/tuning")
    kwargs.setdefault("epoch_count", 1)
    kwargs.setdefault("poll_interval", 0.02)
    kwargs.setdefault("deferrable", False)
    with DAG("vertex_it", schedule=None):
        return CreateVertexTuningJobOperator(task_id="tune", **kwargs)


def rpcs(emulator) -> list[str]:
    return [entry.get("rpc") or f"{entry['method']} {entry['path']}" for entry in emulator.request_log]


def creates(emulator) -> list[dict[str, Any]]:
    return [e for e in emulator.request_log if e["method"] == "POST" and e["path"].endswith("/tuningJobs")]


def test_tune_in_the_worker_uploads_content_addressed_data_and_returns_the_endpoint(emulator):
    context = context_for()
    result = operator(tuned_model_display_name="counter", labels={"team": "data"}).execute(context)
    assert result["state"] == "JOB_STATE_SUCCEEDED"
    assert result["endpoint"].startswith("projects/")
    assert "/endpoints/" in result["endpoint"]
    assert "/models/" in result["tuned_model"]
    assert context["ti"].xcoms[TUNING_JOB_XCOM_KEY] == result["tuning_job"]
    assert context["ti"].xcoms["endpoint"] == result["endpoint"]
    assert context["ti"].xcoms["tuned_model"] == result["tuned_model"]
    (create,) = creates(emulator)
    body = json.loads(create["body"])
    uri = body["supervisedTuningSpec"]["trainingDatasetUri"]
    assert uri.startswith(f"gs://{BUCKET}/tuning/")
    assert uri.endswith(".jsonl")
    assert body["labels"]["team"] == "data"
    assert set(body["labels"]) >= {"airflow-ti", "airflow-req", "airflow-dag", "airflow-task"}
    line = requests.get(
        f"{emulator.url}/storage/v1/b/{BUCKET}/o/{requests.utils.quote(uri.split('/', 3)[3], safe='')}",
        params={"alt": "media"},
        timeout=30,
    ).text.splitlines()[0]
    assert json.loads(line) == {
        "contents": [{"role": "user", "parts": [{"text": "1"}]}, {"role": "model", "parts": [{"text": "2"}]}]
    }


def test_a_retry_reattaches_and_a_new_run_creates_its_own_job(emulator):
    first = operator().execute(context_for("run-1"))
    again = operator().execute(context_for("run-1"))  # the task's second try
    assert again["tuning_job"] == first["tuning_job"]
    assert len(creates(emulator)) == 1
    other = operator().execute(context_for("run-2"))
    assert other["tuning_job"] != first["tuning_job"]
    assert len(creates(emulator)) == 2


def test_the_same_task_instance_with_other_data_is_not_reattached(emulator):
    operator().execute(context_for("run-1"))
    with pytest.raises(AirflowFailException) as info:
        operator(training_data=EXAMPLES[:-1]).execute(context_for("run-1"))
    assert isinstance(info.value.__cause__, InvalidInputError)
    assert "from another request" in str(info.value)
    assert len(creates(emulator)) == 1


def test_a_create_whose_answer_is_lost_is_found_by_its_labels(emulator):
    emulator.set_faults(match="CreateTuningJob", drop_after=1.0, seed=1)
    result = operator().execute(context_for("run-lost"))
    emulator.set_faults()
    assert result["state"] == "JOB_STATE_SUCCEEDED"
    jobs = requests.get(
        f"{emulator.url}/v1/projects/{PROJECT}/locations/us-central1/tuningJobs",
        headers={"Authorization": "Bearer x"},
        timeout=30,
    )
    assert len(jobs.json().get("tuningJobs", [])) == 1  # one paid job, never two


def test_a_failed_job_fails_the_task_without_retry_with_the_api_message(emulator):
    with pytest.raises(AirflowFailException, match="emulat") as info:
        operator(tuned_model_display_name="doomed emulator:fail").execute(context_for())
    assert "TuningFailedError" in str(info.value)


def test_deferred_wait_through_the_vertex_trigger(emulator):
    op = operator(deferrable=True)
    context = context_for("run-deferred")
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    path, kwargs = info.value.trigger.serialize()
    assert kwargs["backend"] == "vertex"
    assert info.value.timeout is not None
    trigger = import_string(path)(**kwargs)

    async def first() -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(first())
    assert len(json.dumps(event)) < 4096
    result = op.execute_complete(context, event)
    assert result["state"] == "JOB_STATE_SUCCEEDED"


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"staging_uri": None}, InvalidInputError, "set staging_uri"),
        ({"adapter_size": 3}, InvalidInputError, "adapter_size must be one of"),
        ({"labels": {"Team": "x"}}, InvalidInputError, "label key"),
        ({"labels": {"airflow-ti": "x"}}, InvalidInputError, "label key"),
        (
            {"pre_tuned_model": "projects/p1234/locations/us-central1/models/1"},
            InvalidInputError,
            "exactly one",
        ),
        ({"training_data": [["1"]]}, TrainingDataError, "a pair must have 2 items"),
        ({"beta": 0.1}, InvalidInputError, "method='preference'"),
        ({"epoch_count": 0}, InvalidInputError, "epoch_count must be a positive integer"),
        ({"staging_uri": "s3://b/x"}, InvalidInputError, "gs://"),
    ],
)
def test_bad_input_fails_before_any_call(emulator, kwargs, error, fragment):
    emulator.reset()
    with pytest.raises(AirflowFailException) as info:
        operator(**kwargs).execute(context_for())
    assert isinstance(info.value.__cause__, error)
    assert fragment in str(info.value)
    assert rpcs(emulator) == []


# -- inference, management and teardown ----------------------------------------------------------


def test_generate_on_the_tuned_endpoint_with_evaluation_and_a_rate_limit(emulator):
    from airflow_provider_tuning.operators.generate import GenerateContentOperator

    tuned = operator().execute(context_for("run-infer"))
    with DAG("vertex_it", schedule=None):
        generate = GenerateContentOperator(
            task_id="generate",
            model=tuned["endpoint"],
            prompts=[{"prompt": "1", "expected": "2"}, {"prompt": "3", "expected": "4"}],
            expected_field="expected",
            requests_per_minute=600,
            concurrency=2,
        )
    summary = generate.execute(context_for("run-infer"))
    assert (summary["count"], summary["succeeded"], summary["failed"]) == (2, 2, 0)
    assert [r["text"] for r in summary["results"]] == ["2", "4"]
    assert summary["evaluation"]["exact"] == 1.0
    calls = [e for e in emulator.request_log if e["path"].endswith(":generateContent")]
    assert len(calls) == 2
    assert all(e["path"] == f"/v1/{tuned['endpoint']}:generateContent" for e in calls)


def test_get_list_cancel_and_teardown(emulator):
    from airflow_provider_tuning.operators.vertex_manage import (
        CancelVertexTuningJobOperator,
        DeleteVertexTunedModelOperator,
        GetVertexTuningJobOperator,
        ListVertexTuningJobsOperator,
    )

    done = operator().execute(context_for("run-manage"))
    running = operator(wait_for_completion=False, epoch_count=50).execute(context_for("run-cancel"))
    with DAG("vertex_it", schedule=None):
        get = GetVertexTuningJobOperator(task_id="get", tuning_job_name=done["tuning_job"])
        listing = ListVertexTuningJobsOperator(task_id="list", filter='labels.airflow-dag="vertex_it"')
        cancel = CancelVertexTuningJobOperator(task_id="cancel", tuning_job_name=running["tuning_job"])
        cancel_done = CancelVertexTuningJobOperator(task_id="cancel2", tuning_job_name=done["tuning_job"])
        teardown = DeleteVertexTunedModelOperator(task_id="teardown", tuning_job_name=done["tuning_job"])
        again = DeleteVertexTunedModelOperator(task_id="again", tuning_job_name=done["tuning_job"])
    context = context_for("run-manage")
    assert get.execute(context)["state"] == "JOB_STATE_SUCCEEDED"
    assert {job["name"] for job in listing.execute(context)} == {done["tuning_job"], running["tuning_job"]}
    assert cancel.execute(context) == {"tuning_job": running["tuning_job"], "cancelled": True}
    assert cancel_done.execute(context)["cancelled"] is False
    deleted = teardown.execute(context)
    assert (deleted["endpoint"], deleted["tuned_model"]) == (done["endpoint"], done["tuned_model"])
    assert deleted["undeployed"]
    assert (
        requests.get(
            f"{emulator.url}/v1/{done['endpoint']}", headers={"Authorization": "Bearer x"}, timeout=30
        ).status_code
        == 404
    )
    assert again.execute(context) == {"endpoint": None, "tuned_model": None, "undeployed": []}  # idempotent


class _LoseFirstAnswer(FaultPlan):
    """Handle every request, but lose the answer of the first one of ``rpc`` (``drop_after``)."""

    def __init__(self, rpc: str) -> None:
        super().__init__()
        self.rpc = rpc
        self.lost = 0

    def decide(self, rpc: str | None, method: str, path: str) -> Decision:
        if rpc == self.rpc and not self.lost:
            self.lost += 1
            return Decision(outcome="drop_after")
        return Decision()


def test_teardown_deletes_the_endpoint_when_the_undeploy_answer_was_lost(emulator):
    """The undeploy is committed but its answer lost; the retry meets 404 (nothing deployed any
    more). The endpoint must still be deleted, not taken for missing (it would keep costing)."""
    from airflow_provider_tuning.operators.vertex_manage import DeleteVertexTunedModelOperator

    done = operator().execute(context_for("run-lost-undeploy"))
    with DAG("vertex_it", schedule=None):
        teardown = DeleteVertexTunedModelOperator(task_id="teardown", tuning_job_name=done["tuning_job"])
    plan = _LoseFirstAnswer("UndeployModel")
    emulator.set_faults(plan)
    try:
        deleted = teardown.execute(context_for("run-lost-undeploy"))
    finally:
        emulator.set_faults()
    assert plan.lost == 1
    undeploys = [e for e in emulator.request_log if e.get("rpc") == "UndeployModel"]
    assert [(e["status"], e.get("handled_status")) for e in undeploys] == [
        ("dropped_after", 200),
        (404, None),
    ]
    assert (deleted["endpoint"], deleted["tuned_model"]) == (done["endpoint"], done["tuned_model"])
    endpoint = requests.get(
        f"{emulator.url}/v1/{done['endpoint']}", headers={"Authorization": "Bearer x"}, timeout=30
    )
    assert endpoint.status_code == 404
