"""The Gemini example through a real Airflow: api-server, scheduler, dag-processor and triggerer.

The DAG is triggered through the REST API; the tuning wait must go to ``deferred`` (no worker
slot held), the triggerer must complete it, and the run must succeed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.airflow_stack import AirflowStack
from tuning_api_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "example_gemini_tuning"
TUNE_TASK = "tune_model"
API_KEY = "e2e-real-airflow-key"

pytestmark = pytest.mark.e2e


def test_gemini_example_defers_and_the_triggerer_completes_it(tmp_path: Path) -> None:
    # 38 steps of 0.4 s: the tuning wait lasts ~15 s, long enough to observe the deferral.
    with Emulator(step_seconds=0.4, api_keys=[API_KEY]) as emu:
        conn = {"conn_type": "generativelanguage", "host": emu.url, "password": API_KEY}
        stack = AirflowStack(
            tmp_path / "airflow-home",
            ROOT / "dags",
            extra_env={"AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT": json.dumps(conn)},
        )
        stack.migrate()
        stack.start_all()
        try:
            run_id = stack.trigger(DAG_ID)
            tune_states: list[str | None] = []

            def finished() -> str | None:
                tune_states.append(stack.task_states(DAG_ID, run_id).get(TUNE_TASK))
                state = stack.run_state(DAG_ID, run_id)
                return state if state in ("success", "failed") else None

            final = stack.wait_for(finished, 300, f"run {run_id} to finish", interval=0.5)
            states = stack.task_states(DAG_ID, run_id)
            assert final == "success", f"run ended {final}; task states {states}; logs in {stack.logs}"
            seen = sorted(set(map(str, tune_states)))
            assert "deferred" in tune_states, f"the tuning wait never deferred: {seen}"
            assert "TuningOperationTrigger" in stack.log_text("triggerer") or _trigger_ran(stack), (
                "the triggerer did not run the tuning trigger"
            )

            tuned = stack.xcom(DAG_ID, run_id, TUNE_TASK)
            assert tuned["state"] == "ACTIVE"
            # The run created exactly one model, and its teardown deleted it.
            log = emu.request_log
            creates = [r for r in log if r["method"] == "POST" and r["path"].endswith("/tunedModels")]
            assert len(creates) == 1
            remaining = [m["name"] for m in emu.state()["tunedModels"]]
            assert tuned["tuned_model"] not in remaining, "the teardown did not delete the tuned model"
        finally:
            stack.stop_all()


def _trigger_ran(stack: AirflowStack) -> bool:
    """Whether a trigger log of this deployment mentions the tuning trigger's progress."""
    return any(
        "step" in path.read_text(errors="replace")
        for path in (stack.home / "logs").rglob("*")
        if path.is_file() and "trigger" in str(path)
    )
