"""A worker killed between the create request and the deferral: the retry reattaches, no duplicate.

DAG ``reliability_worker_crash`` (tests/reliability/dags/) runs with real Airflow processes:
on try 1 its operator SIGKILLs its own task process right after ``tunedModels.create`` returned
(the model exists, nothing was deferred). The supervisor marks the try failed, the scheduler
retries it (retries=1, retry_delay=1 s), and try 2 meets 409 ALREADY_EXISTS on the deterministic
id, reattaches, defers and succeeds. The emulator holds exactly one tuned model.
"""

from __future__ import annotations

import json

DAG_ID = "reliability_worker_crash"
TASK_ID = "tune"


def test_a_worker_killed_after_create_reattaches_on_retry_without_a_second_model(deployment):
    d = deployment
    run_id = d.stack.trigger(DAG_ID)
    state = d.wait_run(DAG_ID, run_id)
    ti = d.task_instance(DAG_ID, run_id, TASK_ID)
    assert state == "success", ti
    assert ti["state"] == "success"
    assert ti["try_number"] == 2  # try 1 was killed, try 2 finished

    models = d.models_of(DAG_ID, TASK_ID, run_id)
    assert len(models) == 1, models
    assert models[0]["state"] == "ACTIVE"
    assert len(d.models_created_by(DAG_ID)) == 1
    result = d.stack.xcom(DAG_ID, run_id, TASK_ID)
    assert result["tuned_model"] == models[0]["name"]
    assert result["state"] == "ACTIVE"

    # Two create requests for that id reached the API: the first created the model, the second
    # (try 2) was refused with 409 and reattached.
    model_id = models[0]["name"].split("/", 1)[1]
    creates = [
        entry
        for entry in d.emulator.request_log
        if entry["method"] == "POST"
        and entry["path"].endswith("/tunedModels")
        and f"tunedModelId={model_id}" in entry["query"]
        and entry["status"] != "dropped"
    ]
    assert [entry["status"] for entry in creates] == [200, 409]
    assert json.loads(creates[0]["body"]) == json.loads(creates[1]["body"])

    # try 1 really died by SIGKILL after the create (its log says so and has no deferral).
    logs = d.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={TASK_ID}"
    try1 = (logs / "attempt=1.log").read_text(errors="replace")
    try2 = (logs / "attempt=2.log").read_text(errors="replace")
    assert "SIGKILL of the task process after the create request" in try1
    assert "Deferring" not in try1
    assert "already exists" in try2
    assert "reattaching" in try2
