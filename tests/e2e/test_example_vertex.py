"""The Vertex AI example DAG end to end with ``dag.test()`` against the emulator: tune from a JSONL
file (uploaded to the emulator's Cloud Storage), deferred wait, evaluation on the holdout set,
promotion above the threshold or discard below it, and the endpoint teardown."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.e2e.conftest import POLL_SECONDS, load_dags
from tuning_api_emulator import Emulator

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

PROJECT = "e2e-project"
BUCKET = "e2e-staging"


@pytest.fixture(scope="module")
def vertex_emulator():
    with Emulator(step_seconds=0.02) as emu:
        yield emu


@pytest.fixture
def use_vertex(vertex_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    vertex_emulator.reset()
    created = requests.post(
        f"{vertex_emulator.url}/storage/v1/b", params={"project": PROJECT}, json={"name": BUCKET}, timeout=30
    )
    assert created.status_code == 200, created.text
    keyfile = {
        "type": "authorized_user",
        "client_id": "e2e.apps.googleusercontent.com",
        "client_secret": "e2e-client-secret",
        "refresh_token": "e2e-refresh-token",
        "token_uri": f"{vertex_emulator.url}/token",
    }
    conn = {
        "conn_type": "google_cloud_platform",
        "host": vertex_emulator.url,
        "extra": json.dumps({"project": PROJECT, "keyfile_dict": json.dumps(keyfile)}),
    }
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL", POLL_SECONDS)
    # The example keeps Airflow's retry delay (300 s); a failing task here should fail fast.
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "1")
    return vertex_emulator


def states(dag_run: Any) -> dict[str, str | None]:
    return {
        ti.task_id: None if ti.state is None else str(getattr(ti.state, "value", ti.state))
        for ti in dag_run.get_task_instances()
    }


def get(emu: Emulator, name: str) -> int:
    return requests.get(
        f"{emu.url}/v1/{name}", headers={"Authorization": "Bearer e2e"}, timeout=30
    ).status_code


def the_job(emu: Emulator) -> dict[str, Any]:
    listed = requests.get(
        f"{emu.url}/v1/projects/{PROJECT}/locations/us-central1/tuningJobs",
        headers={"Authorization": "Bearer e2e"},
        timeout=30,
    ).json()
    (job,) = listed["tuningJobs"]
    return job


def test_vertex_example_promotes_above_the_threshold_and_deletes_only_the_endpoint(use_vertex):
    run = load_dags()["example_vertex_tuning"].test(
        run_conf={"staging_uri": f"gs://{BUCKET}/example", "promotion_threshold": 0.0}
    )
    assert states(run) == {
        "tune": "success",
        "evaluate": "success",
        "decide": "success",
        "promote": "success",
        "discard_candidate": "skipped",
        "delete_endpoint": "success",
    }
    job = the_job(use_vertex)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert job["supervisedTuningSpec"]["trainingDatasetUri"].startswith(f"gs://{BUCKET}/example/")
    assert job["labels"]["airflow-dag"] == "example_vertex_tuning"
    assert get(use_vertex, job["tunedModel"]["endpoint"]) == 404  # the teardown deleted it
    assert get(use_vertex, job["tunedModel"]["model"].split("@")[0]) == 200  # the promoted model stays


def test_vertex_example_discards_below_the_threshold(use_vertex):
    run = load_dags()["example_vertex_tuning"].test(
        run_conf={"staging_uri": f"gs://{BUCKET}/example", "promotion_threshold": 1.0}
    )
    assert states(run)["promote"] == "skipped"
    assert states(run)["discard_candidate"] == "success"
    assert states(run)["delete_endpoint"] == "success"
    job = the_job(use_vertex)
    assert get(use_vertex, job["tunedModel"]["endpoint"]) == 404
    assert get(use_vertex, job["tunedModel"]["model"].split("@")[0]) == 404
