"""A SIGKILLed triggerer's tuning waits are adopted by the other triggerer, deadlines unchanged.

Ten runs of ``cluster_long_tuning`` (a tuning of about 75 s each) defer. Once both triggerers run
the waits, the one holding most of them gets SIGKILL (its whole process group). Then:

* within ``[triggerer] triggerer_health_check_threshold`` (10 s here) plus one load cycle, every
  trigger row belongs to the surviving triggerer;
* the rows are the same rows with byte-identical kwargs (the absolute deadline among them), and
  each task instance's ``trigger_timeout`` is unchanged;
* every run succeeds with exactly one tuned model.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from scripts.cluster import TRIGGERERS, live_members
from tests.cluster.conftest import ClusterDeployment
from tests.reliability.airflow_db import find_key, rows, trigger_rows

DAG_ID = "cluster_long_tuning"
TASK_ID = "tune_model"
RUNS = 10
HEALTH_CHECK_THRESHOLD = 10.0
#: What adoption may take beyond the threshold: the survivor's next look for unassigned triggers.
ADOPTION_SLACK = 10.0


def _deferred(c: ClusterDeployment, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    found = rows(
        c.db,
        "SELECT run_id, state, trigger_id, trigger_timeout FROM task_instance "
        "WHERE dag_id = ? AND task_id = ?",
        (DAG_ID, TASK_ID),
    )
    return {row["run_id"]: row for row in found if row["run_id"] in run_ids}


def test_a_killed_triggerers_waits_are_adopted_with_their_deadlines(cluster: ClusterDeployment) -> None:
    c = cluster
    run_ids = c.trigger_many(DAG_ID, RUNS)

    def all_held() -> dict[int, Any] | None:
        tis = _deferred(c, run_ids)
        if len(tis) < RUNS or any(
            ti["state"] != "deferred" or ti["trigger_id"] is None for ti in tis.values()
        ):
            return None
        wanted = {ti["trigger_id"] for ti in tis.values()}
        held = {row.id: row for row in trigger_rows(c.db, c.fernet_key) if row.id in wanted}
        if len(held) < RUNS or any(row.triggerer_id is None for row in held.values()):
            return None
        return held

    before = c.stack.wait_for(all_held, 240, "the triggerers to hold every wait", 1.0)
    before_tis = _deferred(c, run_ids)
    jobs = c.triggerer_jobs()
    per_job: dict[int, int] = {}
    for row in before.values():
        per_job[row.triggerer_id] = per_job.get(row.triggerer_id, 0) + 1
    victim_job = max(per_job, key=lambda job: per_job[job])
    victim = jobs[victim_job]
    survivor = next(name for name in TRIGGERERS if name != victim)
    assert victim in TRIGGERERS

    pgid = c.stack.procs[victim].pid
    killed_at = time.monotonic()
    c.cluster.stop(victim, signal.SIGKILL)
    assert live_members(pgid) == []

    def adopted() -> dict[int, Any] | None:
        current = {row.id: row for row in trigger_rows(c.db, c.fernet_key) if row.id in before}
        if len(current) < len(before):
            return None
        holders = {
            jobs.get(row.triggerer_id) or c.triggerer_jobs().get(row.triggerer_id) for row in current.values()
        }
        return current if holders == {survivor} else None

    after = c.stack.wait_for(adopted, 120, f"{survivor} to adopt the waits of {victim}", 0.5)
    adoption_seconds = time.monotonic() - killed_at
    held = per_job[victim_job]
    print(f"\n{len(before)} waits ({held} on {victim}) adopted by {survivor} in {adoption_seconds:.1f} s")
    after_tis = _deferred(c, run_ids)
    c.cluster.start_airflow(victim)  # the cluster has two triggerers again for the next tests

    assert adoption_seconds <= HEALTH_CHECK_THRESHOLD + ADOPTION_SLACK
    for trigger_id, row in before.items():
        assert after[trigger_id].raw == row.raw, f"trigger {trigger_id}: kwargs changed on adoption"
        assert find_key(after[trigger_id].kwargs, "deadline") == find_key(row.kwargs, "deadline")
        assert find_key(row.kwargs, "deadline") is not None
    for run in run_ids:
        assert after_tis[run]["trigger_id"] == before_tis[run]["trigger_id"]
        assert after_tis[run]["trigger_timeout"] == before_tis[run]["trigger_timeout"]

    states = c.wait_runs(DAG_ID, run_ids)
    assert states == dict.fromkeys(run_ids, "success")
    for run in run_ids:
        models = c.models_of(DAG_ID, TASK_ID, run)
        assert len(models) == 1, (run, models)
        assert c.xcom(DAG_ID, run, TASK_ID)["tuned_model"] == models[0]["name"]
        assert c.task_instance(DAG_ID, run, TASK_ID)["try_number"] == 1
