"""Reliability test DAG: the worker dies between the create request and the deferral.

On try 1 the operator SIGKILLs its own task process right after the create call returned (the
tuned model exists on the API, nothing was deferred or pushed). Try 2 must reattach to that model
(409 ALREADY_EXISTS on the deterministic id) instead of creating a second one.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator


class CrashAfterCreateOperator(CreateTunedModelOperator):
    """A create operator whose first try is killed (SIGKILL, no cleanup) right after the create."""

    def _create_or_reattach(self, hook: Any, request: Any, context: Any) -> Any:
        attachment = super()._create_or_reattach(hook, request, context)
        if context["ti"].try_number == 1:
            self.log.warning("reliability test: SIGKILL of the task process after the create request")
            os.kill(os.getpid(), signal.SIGKILL)
        return attachment


with DAG(
    "reliability_worker_crash",
    schedule=None,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
    tags=["reliability"],
):
    CrashAfterCreateOperator(
        task_id="tune",
        base_model="models/gemini-1.5-flash-001-tuning",
        training_data=[{"text_input": str(n), "output": str(n + 1)} for n in (1, 2, 3, 4)],
        epoch_count=2,
        batch_size=2,
        deferrable=True,
        poll_interval=1.0,
        timeout=timedelta(minutes=5),
    )
