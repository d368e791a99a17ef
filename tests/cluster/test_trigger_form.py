"""The UI trigger-form example triggered through the REST API with parameters runs on Celery workers.

``example_tuning_form`` gets a conf as its form would send it (base model, display name, epochs,
batch size, learning rate, prompt): the run succeeds, every task ran on one of the two Celery
workers from the ``default`` queue, and the tuned model at the emulator carries the parameters.
"""

from __future__ import annotations

import requests

from scripts.cluster import EMULATOR_API_KEY, WORKERS
from tests.cluster.conftest import ClusterDeployment

DAG_ID = "example_tuning_form"
CONF = {
    "base_model": "models/gemini-1.0-pro-001",
    "display_name": "cluster form model",
    "epoch_count": 2,
    "batch_size": 3,
    "learning_rate": 0.002,
    "prompt": "XLII",
}


def test_the_trigger_form_dag_runs_with_its_params_on_celery_workers(cluster: ClusterDeployment) -> None:
    c = cluster
    (run_id,) = c.trigger_many(DAG_ID, 1, CONF)
    assert c.wait_runs(DAG_ID, [run_id]) == {run_id: "success"}

    tis = c.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    ran = [ti for ti in tis if ti["state"] == "success"]
    assert {ti["task_id"] for ti in ran} >= {"tune_model", "generate_content", "log_answer"}
    for ti in ran:
        assert ti["hostname"] in WORKERS, ti
        assert ti["queue"] == "default"
        assert ti["executor"] in (None, "CeleryExecutor") or "Celery" in str(ti["executor"])

    result = c.xcom(DAG_ID, run_id, "tune_model")
    model = requests.get(
        f"{c.cluster.emulator_url}/v1beta/{result['tuned_model']}",
        params={"key": EMULATOR_API_KEY},
        timeout=30,
    ).json()
    assert model["displayName"] == CONF["display_name"]
    assert model["baseModel"] == CONF["base_model"]
    hyper = model["tuningTask"]["hyperparameters"]
    assert (hyper["epochCount"], hyper["batchSize"], hyper["learningRate"]) == (2, 3, 0.002)
