"""50 concurrent runs of the tuning example's deferrable create on the CeleryExecutor cluster.

Every run succeeds, the emulator holds exactly 50 tuned models (one per run: no duplicate, none
lost), each run's XCom names its own ACTIVE model, the tasks ran on both Celery workers and the
waits were spread over both triggerers.
"""

from __future__ import annotations

from tests.cluster.conftest import ClusterDeployment
from tests.reliability.airflow_db import DbSampler

DAG_ID = "cluster_tuning"
TASK_ID = "tune_model"
RUNS = 50


def test_fifty_concurrent_deferred_tunings_give_fifty_models(cluster: ClusterDeployment) -> None:
    c = cluster
    with DbSampler(c.db, c.fernet_key, interval=1.0) as sampler:
        run_ids = c.trigger_many(DAG_ID, RUNS)
        states = c.wait_runs(DAG_ID, run_ids)
    assert not sampler.errors
    assert len(set(run_ids)) == RUNS
    assert states == dict.fromkeys(run_ids, "success")

    prefix = "tunedModels/" + DAG_ID.replace("_", "-")
    models = [m for m in c.tuned_models() if m["name"].startswith(prefix)]
    assert len(models) == RUNS, sorted(m["name"] for m in models)
    assert len({m["name"] for m in models}) == RUNS
    assert {m["state"] for m in models} == {"ACTIVE"}

    results = {run: c.xcom(DAG_ID, run, TASK_ID) for run in run_ids}
    for run, result in results.items():
        own = c.models_of(DAG_ID, TASK_ID, run)
        assert len(own) == 1, (run, own)
        assert result["tuned_model"] == own[0]["name"]
        assert result["state"] == "ACTIVE"
    assert len({r["tuned_model"] for r in results.values()}) == RUNS

    # One create per model reached the API: no try created (or reattached to) a second one.
    creates = [
        e for e in c.request_log() if e["method"] == "POST" and e["path"].endswith("/tunedModels")
        and DAG_ID.replace("_", "-") in e["query"]
    ]  # fmt: skip
    assert sorted(e["status"] for e in creates) == [200] * RUNS

    # Celery spread the tasks over both workers, and both triggerers held waits.
    hostnames = {c.task_instance(DAG_ID, run, TASK_ID)["hostname"] for run in run_ids}
    assert hostnames == {"worker-1", "worker-2"}
    holders = {row.triggerer_id for seen in sampler.triggers.values() for row in seen} - {None}
    jobs = c.triggerer_jobs()
    assert {jobs[job] for job in holders} == {"triggerer-1", "triggerer-2"}
