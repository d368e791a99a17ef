"""The Tuning view's API on a Vertex AI connection: tuning jobs made by the provider's operator
against the emulator (service-account credentials refreshed at its /token)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from airflow.sdk import DAG
from fastapi.testclient import TestClient

from airflow_provider_tuning.operators.vertex_tuning import CreateVertexTuningJobOperator
from tests.ui.conftest import token
from tests.unit.hooks.glapi_loopback import service_account_info
from tuning_api_emulator import Emulator

PROJECT = "ui-project"
BUCKET = "ui-staging"
CONN_ID = "ui_vertex"


class TI:
    def __init__(self, task_id: str) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number = (
            "ui_vertex_dag",
            task_id,
            "manual__1",
            -1,
            1,
        )
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def run(task_id: str, **kwargs: Any) -> dict[str, Any]:
    with DAG("ui_vertex_dag", schedule=None):
        op = CreateVertexTuningJobOperator(
            task_id=task_id,
            gcp_conn_id=CONN_ID,
            base_model="gemini-2.5-flash",
            training_data=[{"text_input": str(i), "output": str(i + 1)} for i in range(12)],
            staging_uri=f"gs://{BUCKET}/tuning",
            epoch_count=1,
            poll_interval=0.02,
            deferrable=False,
            **kwargs,
        )
    ti = TI(task_id)
    from airflow.sdk.execution_time.context import OutletEventAccessors

    result: dict[str, Any] = op.execute(
        {"ti": ti, "task_instance": ti, "outlet_events": OutletEventAccessors()}
    )
    return result


@pytest.fixture(scope="module")
def vertex_jobs(airflow_app: Any) -> Iterator[tuple[Emulator, dict[str, str]]]:
    with Emulator(step_seconds=0.01) as emu, pytest.MonkeyPatch.context() as mp:
        created = requests.post(
            f"{emu.url}/storage/v1/b", params={"project": PROJECT}, json={"name": BUCKET}, timeout=30
        )
        assert created.status_code == 200, created.text
        conn = {
            "conn_type": "google_cloud_platform",
            "host": emu.url,
            "extra": json.dumps(
                {"keyfile_dict": json.dumps(service_account_info(f"{emu.url}/token")), "project": PROJECT}
            ),
        }
        mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        done = run("ok", tuned_model_display_name="vertex ok")
        running = run("slow", tuned_model_display_name="vertex failing", wait_for_completion=False)
        emu.fail_tuning_job(running["tuning_job"].rsplit("/", 1)[1], message="quota exceeded")
        yield (
            emu,
            {"succeeded": done["tuning_job"], "failed": running["tuning_job"], "endpoint": done["endpoint"]},
        )


def test_vertex_jobs_are_listed_with_their_state(airflow_app: Any, vertex_jobs: Any) -> None:
    from airflow_provider_tuning.ui import source

    source.CACHE.clear()
    _emu, names = vertex_jobs
    client = TestClient(airflow_app)
    headers = {"Authorization": f"Bearer {token('admin')}"}
    body = client.get("/tuning/api/jobs", params={"conn_id": CONN_ID}, headers=headers).json()
    assert body["backend"] == "vertex"
    statuses = {row["name"]: row["status"] for row in body["jobs"]}
    assert statuses == {names["succeeded"]: "succeeded", names["failed"]: "failed"}
    ok = client.get(
        "/tuning/api/job", params={"conn_id": CONN_ID, "name": names["succeeded"]}, headers=headers
    )
    job = ok.json()
    assert job["outputs"]["endpoint"] == names["endpoint"]
    assert job["curve"] == []  # Vertex AI reports no per-step loss through its API
    assert job["hyperparameters"]["epochCount"] in (1, "1")
    failed = client.get(
        "/tuning/api/job", params={"conn_id": CONN_ID, "name": names["failed"]}, headers=headers
    )
    assert "quota exceeded" in failed.json()["error"]["message"]
    assert "private_key" not in ok.text
    assert "BEGIN PRIVATE KEY" not in body.__repr__()
