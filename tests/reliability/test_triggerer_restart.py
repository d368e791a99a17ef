"""A SIGKILLed triggerer loses no deferred tuning wait and resets no deadline (real Airflow processes).

DAG ``reliability_triggerer_restart`` (tests/reliability/dags/) defers two tasks per backend: on
the Gemini API ``tune_slow`` on a tuning of about 36 s (10 min timeout) and ``tune_deadline`` on
one of about 90 s (30 s timeout), and the same two on Vertex AI, ``vertex_slow`` and
``vertex_deadline`` (``CreateVertexTuningJobOperator``). Once the triggerer polls all four, its
whole process group gets SIGKILL and a new triggerer starts. Then:

* the trigger rows are the same rows (ids) with byte-identical kwargs, adopted by the new
  triggerer (their ``triggerer_id`` changes), and the task instances' ``trigger_timeout`` is
  unchanged;
* ``tune_slow`` succeeds with the ACTIVE model, and there is one model per task;
* ``vertex_slow`` succeeds with its job SUCCEEDED, its XCom naming the job, model and endpoint;
  there is exactly one tuning job per Vertex task at the emulator (counted by the task instance's
  label), the one its ``tuning_job`` XCom names, and ``vertex_slow``'s was never cancelled;
* each ``*_deadline`` task fails on its timeout, and the deadline in the trigger's timeout event is the
  absolute deadline serialized before the kill (a deadline recomputed at restart would be later
  than the kill time plus the timeout). A trigger mutated to recompute its deadline whenever it is
  built made this test fail (checked once by hand: both tasks then timed out).
"""

from __future__ import annotations

import ast
import re
import signal
import time
from pathlib import Path
from typing import Any

from tests.reliability import vertex_state
from tests.reliability.airflow_db import DbSampler, TriggerRow, find_key, task_instances, trigger_rows

DAG_ID = "reliability_triggerer_restart"
GEMINI_TASKS = ("tune_slow", "tune_deadline")
VERTEX_TASKS = ("vertex_slow", "vertex_deadline")
TASKS = GEMINI_TASKS + VERTEX_TASKS
DEADLINE_TASKS = ("tune_deadline", "vertex_deadline")
DEADLINE_TIMEOUT = 30.0
TRIGGER_CLASS = "airflow_provider_tuning.triggers.tuning.TuningOperationTrigger"


def _trigger_of(rows: list[TriggerRow], trigger_id: int) -> TriggerRow:
    matches = [row for row in rows if row.id == trigger_id]
    assert len(matches) == 1, f"trigger {trigger_id} not found in {[r.id for r in rows]}"
    return matches[0]


def _live_members(pgid: int) -> list[int]:
    """PIDs of the process group that are still alive (zombies awaiting a reaper do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            alive.append(int(stat.parent.name))
    return alive


def _fired_events(home: Path, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """The payloads of every "Trigger fired event" line in the task's trigger logs."""
    events = []
    run_dir = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    for path in sorted(run_dir.glob("*trigger*")):
        for line in path.read_text(errors="replace").splitlines():
            if "Trigger fired event" not in line:
                continue
            match = re.search(r"TriggerEvent<(\{.*?\})>", line)
            assert match, f"unparseable fired-event line in {path}: {line[:300]}"
            events.append(ast.literal_eval(match.group(1).replace("\\'", "'")))
    return events


def test_triggerer_sigkill_keeps_deferred_tasks_and_their_absolute_deadlines(deployment):
    d = deployment
    run_id = d.stack.trigger(DAG_ID)
    for task_id in TASKS:
        d.wait_task_state(DAG_ID, run_id, task_id, "deferred", timeout=180)

    with DbSampler(d.db, d.fernet_key) as sampler:
        before_tis = task_instances(d.db, DAG_ID, run_id)

        def running() -> dict[str, TriggerRow] | None:
            rows = trigger_rows(d.db, d.fernet_key)
            current = {task: _trigger_of(rows, before_tis[task]["trigger_id"]) for task in TASKS}
            polled = {entry["path"] for entry in d.emulator.request_log if entry["method"] == "GET"}
            if any(row.triggerer_id is None for row in current.values()):
                return None
            if not all(
                any(p.endswith(str(find_key(row.kwargs, "name"))) for p in polled) for row in current.values()
            ):
                return None
            return current

        before = d.stack.wait_for(running, 60, "the triggerer to run every trigger")
        old_triggerer_ids = {row.triggerer_id for row in before.values()}
        for row in before.values():
            assert row.classpath == TRIGGER_CLASS

        old_pgid = d.stack.procs["triggerer"].pid
        killed_at = time.time()
        d.stack.stop("triggerer", signal.SIGKILL)
        # SIGKILL reaches every member at once, but a member may take a moment to exit.
        d.stack.wait_for(
            lambda: _live_members(old_pgid) == [], 15, "the old triggerer's process group to die", 0.1
        )
        assert set(d.stack.task_states(DAG_ID, run_id).values()) == {"deferred"}
        d.stack.start("triggerer")

        def adopted() -> dict[str, TriggerRow] | None:
            rows = trigger_rows(d.db, d.fernet_key)
            by_id = {row.id: row for row in rows}
            current = {task: by_id.get(before[task].id) for task in TASKS}
            if any(row is None or row.triggerer_id in (None, *old_triggerer_ids) for row in current.values()):
                return None
            return current  # type: ignore[return-value]

        after = d.stack.wait_for(adopted, 120, "the new triggerer to adopt every trigger")
        after_tis = task_instances(d.db, DAG_ID, run_id)
        final = d.wait_run(DAG_ID, run_id)

    assert not sampler.errors
    for task in TASKS:
        assert after[task].raw == before[task].raw, f"{task}: trigger kwargs changed across the restart"
        assert after[task].kwargs == before[task].kwargs
        assert after_tis[task]["trigger_id"] == before_tis[task]["trigger_id"]
        assert after_tis[task]["trigger_timeout"] == before_tis[task]["trigger_timeout"]
        # every observation of the row while it existed had the same kwargs
        assert {row.raw for row in sampler.triggers[before[task].id]} == {before[task].raw}

    states = d.stack.task_states(DAG_ID, run_id)
    assert final == "failed", states  # the *_deadline tasks must fail: they timed out
    assert states == {
        "tune_slow": "success",
        "tune_deadline": "failed",
        "vertex_slow": "success",
        "vertex_deadline": "failed",
    }

    result = d.stack.xcom(DAG_ID, run_id, "tune_slow")
    assert result["state"] == "ACTIVE"
    assert result["tuned_model"] == d.models_of(DAG_ID, "tune_slow", run_id)[0]["name"]
    for task in GEMINI_TASKS:
        assert len(d.models_of(DAG_ID, task, run_id)) == 1

    # Vertex AI: one job per task instance, the one its XCom names, never cancelled; no result lost.
    jobs = vertex_state.tuning_jobs(d.emulator)
    for task in VERTEX_TASKS:
        mine = vertex_state.jobs_of(jobs, DAG_ID, task, run_id)
        assert len(mine) == 1, (task, [(job.name, job.labels) for job in jobs])
        assert d.stack.xcom(DAG_ID, run_id, task, key="tuning_job") == mine[0].name
    slow_job = vertex_state.jobs_of(jobs, DAG_ID, "vertex_slow", run_id)[0]
    assert slow_job.cancel_time is None, "the job was cancelled"
    vertex_result = d.stack.xcom(DAG_ID, run_id, "vertex_slow")
    assert vertex_result["state"] == "JOB_STATE_SUCCEEDED", vertex_result
    assert vertex_result["tuning_job"] == slow_job.name
    assert vertex_result["endpoint"] == slow_job.endpoint_name
    assert str(vertex_result["tuned_model"]).split("@")[0] == slow_job.model_name
    assert d.stack.xcom(DAG_ID, run_id, "vertex_slow", key="endpoint") == slow_job.endpoint_name

    for task in DEADLINE_TASKS:
        # the absolute deadline was serialized at deferral, before the kill...
        deadline = float(find_key(before[task].kwargs, "deadline"))
        assert deadline < killed_at + DEADLINE_TIMEOUT, task
        # ...and the new triggerer's timeout event carries exactly that deadline.
        events = _fired_events(d.home, run_id, task)
        timeouts = [event for event in events if event.get("status") == "timeout"]
        assert len(timeouts) == 1, (task, events)
        assert timeouts[0]["deadline"] == deadline, task
    for task in ("tune_slow", "vertex_slow"):
        assert [event["status"] for event in _fired_events(d.home, run_id, task)] == ["success"], task
