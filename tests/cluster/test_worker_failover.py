"""A Celery worker SIGKILLed during batch inference: the task retries on the other worker.

``cluster_batch_inference`` tunes a model, then ``generate`` asks it 40 prompts, two at a time,
each answer delayed 1 s at the emulator. Once ``generate`` runs and some answers came back, the
worker running it (its task-instance hostname names it) is SIGKILLed with its whole process group.
The scheduler finds the try's heartbeat gone, fails it into a retry, and try 2 runs on the other
worker: the run succeeds with one tuned model and all 40 answers, in prompt order.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from scripts.cluster import WORKERS, live_members
from tests.cluster.conftest import ClusterDeployment

sys.path.insert(0, str(Path(__file__).resolve().parent / "dags"))
from cluster_tuning import PROMPTS

DAG_ID = "cluster_batch_inference"


def test_a_killed_worker_s_inference_retries_on_the_other_worker(cluster: ClusterDeployment) -> None:
    c = cluster
    c.emulator("PUT", "faults", {"rules": [{"match": "GenerateContent", "latency": 1.0}]})
    try:
        (run_id,) = c.trigger_many(DAG_ID, 1)

        def generating() -> str | None:
            ti = c.task_instance(DAG_ID, run_id, "generate")
            answered = [e for e in c.request_log() if e["path"].endswith(":generateContent")]
            return ti["hostname"] if ti["state"] == "running" and len(answered) >= 4 else None

        victim = str(c.stack.wait_for(generating, 300, "generate to be answering", 0.5))
        assert victim in WORKERS
        pgid = c.stack.procs[victim].pid
        c.cluster.stop(victim, signal.SIGKILL)
        assert live_members(pgid) == []
        answered_before_kill = len([e for e in c.request_log() if e["path"].endswith(":generateContent")])
        assert answered_before_kill < len(PROMPTS)  # the kill came mid-way

        states = c.wait_runs(DAG_ID, [run_id])
        c.cluster.start_airflow(victim)
    finally:
        c.emulator("DELETE", "faults")

    assert states == {run_id: "success"}
    survivor = next(name for name in WORKERS if name != victim)
    tries = sorted(c.tries(DAG_ID, run_id, "generate"), key=lambda t: t["try_number"])
    assert [(t["try_number"], t["hostname"], t["state"]) for t in tries] == [
        (1, victim, "failed"),
        (2, survivor, "success"),
    ]
    tune = c.task_instance(DAG_ID, run_id, "tune_model")
    models = c.models_of(DAG_ID, "tune_model", run_id)
    assert len(models) == 1
    assert tune["try_number"] == 1
    result = c.xcom(DAG_ID, run_id, "generate")
    assert [r["prompt"] for r in result["results"]] == PROMPTS
    assert all(r["text"] for r in result["results"])
    assert (result["count"], result["succeeded"], result["failed"]) == (len(PROMPTS), len(PROMPTS), 0)
    assert result["model"] == models[0]["name"]
