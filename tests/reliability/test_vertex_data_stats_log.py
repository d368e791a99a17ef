"""The Vertex AI data stats line in real task logs: ``airflow dags test`` runs a DAG whose two tasks
tune against the emulator, one waiting in the worker and one deferred (the trigger runs in the
same process); the task output shows each job's dataset counts once, as the service (the
emulator, counting the dataset it read from its Cloud Storage) reported them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests

from tests.reliability.conftest import VERTEX_PROJECT, DagTestSetup, create_bucket
from tests.reliability.dagtest import run_dag_test
from tuning_api_emulator import Emulator

DAG_ID = "vertex_data_stats_log"
BUCKET = "stats-log-staging"
EXAMPLES = 24
DAG_FILE = f'''
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_tuning.operators.vertex_tuning import CreateVertexTuningJobOperator

EXAMPLES = [{{"text_input": f"what is {{i}} plus one", "output": str(i + 1)}} for i in range({EXAMPLES})]

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for task_id, deferrable in (("in_worker", False), ("deferred", True)):
        CreateVertexTuningJobOperator(
            task_id=task_id,
            base_model="gemini-2.5-flash",
            training_data=EXAMPLES,
            staging_uri="gs://{BUCKET}/" + task_id,
            epoch_count=2,
            poll_interval=0.2,
            deferrable=deferrable,
            retries=0,
        )
'''
LINE = re.compile(
    r"(projects/\S+/tuningJobs/\d+): data stats: ([\d,]+) examples, ([\d,]+) billable tokens, "
    r"([\d,]+) truncated \[(\S+)\]"
)


def _jobs(url: str) -> dict[str, dict[str, Any]]:
    listed = requests.get(
        f"{url}/v1/projects/{VERTEX_PROJECT}/locations/us-central1/tuningJobs",
        headers={"Authorization": "Bearer test"},
        timeout=30,
    ).json()
    return {job["labels"]["airflow-task"]: job for job in listed["tuningJobs"]}


def test_each_task_log_shows_the_data_stats_once(dag_test_setup: DagTestSetup, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    home = dag_test_setup.new_home("vertex-stats")
    with Emulator(step_seconds=0.1) as emulator:
        user = {
            "type": "authorized_user",
            "client_id": "stats.apps.googleusercontent.com",
            "client_secret": "stats-client-secret",
            "refresh_token": "stats-refresh-token",
            "token_uri": f"{emulator.url}/token",
        }
        create_bucket(emulator.url, user, BUCKET)
        gcp_conn = {
            "conn_type": "google_cloud_platform",
            "host": emulator.url,
            "extra": json.dumps({"project": VERTEX_PROJECT, "keyfile_dict": json.dumps(user)}),
        }
        run = run_dag_test(
            DAG_ID,
            template=dag_test_setup.template,
            home=home,
            dags_folder=dags,
            fernet_key=dag_test_setup.fernet_key,
            connection={"conn_type": "generativelanguage", "host": emulator.url, "password": "unused"},
            extra_env={"AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(gcp_conn)},
        )
        assert run.returncode == 0, run.output[-3000:]
        assert run.task_states() == {"in_worker": "success", "deferred": "success"}
        jobs = _jobs(emulator.url)
    found = LINE.findall(run.output)
    # Once per job, not on every poll: the worker's wait and the trigger each logged theirs.
    assert sorted(logger.rsplit(".", 1)[-1] for *_, logger in found) == [
        "CreateVertexTuningJobOperator",
        "TuningOperationTrigger",
    ], found
    lines = {name: counts for name, *counts, _ in found}
    for task_id in ("in_worker", "deferred"):
        job = jobs[task_id]
        stats = job["tuningDataStats"]["supervisedTuningDataStats"]
        examples, tokens, truncated = (int(n.replace(",", "")) for n in lines[job["name"]])
        assert examples == EXAMPLES == int(stats["tuningDatasetExampleCount"])
        assert tokens == int(stats["totalBillableTokenCount"]) > 0
        assert truncated == int(stats.get("totalTruncatedExampleCount", "0")) == 0
