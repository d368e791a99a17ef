"""Reliability test DAG: deferred tunings that must survive a SIGKILL of the triggerer.

Gemini API: ``tune_slow`` waits (deferred) for a tuning of 72 steps (about 36 s on an emulator at
0.5 s per step) with a generous timeout: it must finish once a new triggerer adopts its trigger.
``tune_deadline`` defers on a tuning of 180 steps (about 90 s, so it is still running whenever the
new triggerer starts) with a 30 s timeout: its deadline must stay the absolute one set at deferral,
not be reset by the restart, and the task fails with a timeout.

Vertex AI: ``vertex_slow`` and ``vertex_deadline`` are the same two waits for Vertex AI tuning jobs
of 72 and 180 steps (6 examples, 8 per step), their data uploaded to the emulator's staging bucket.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator
from airflow_provider_tuning.operators.vertex_tuning import CreateVertexTuningJobOperator

# 6 examples x 12 epochs / batch 1 = 72 steps.
EXAMPLES = [{"text_input": str(n), "output": str(n + 1)} for n in (1, 3, 7, 12, 40, 99)]
COMMON = {
    "base_model": "models/gemini-1.5-flash-001-tuning",
    "training_data": EXAMPLES,
    "epoch_count": 12,
    "batch_size": 1,
    "deferrable": True,
    "poll_interval": 1.0,
}
# Vertex AI takes 8 examples per step: 6 examples x 96 epochs / 8 = 72 steps.
VERTEX_COMMON = {
    "base_model": "gemini-2.5-flash",
    "training_data": EXAMPLES,
    "staging_uri": "gs://airflow-tuning-staging/reliability_triggerer_restart",
    "epoch_count": 96,
    "deferrable": True,
    "poll_interval": 1.0,
}

with DAG(
    "reliability_triggerer_restart",
    schedule=None,
    catchup=False,
    default_args={"retries": 0},
    tags=["reliability"],
):
    CreateTunedModelOperator(task_id="tune_slow", timeout=timedelta(minutes=10), **COMMON)
    CreateTunedModelOperator(
        task_id="tune_deadline", timeout=timedelta(seconds=30), **{**COMMON, "epoch_count": 30}
    )
    CreateVertexTuningJobOperator(task_id="vertex_slow", timeout=timedelta(minutes=10), **VERTEX_COMMON)
    CreateVertexTuningJobOperator(
        task_id="vertex_deadline", timeout=timedelta(seconds=30), **{**VERTEX_COMMON, "epoch_count": 240}
    )
