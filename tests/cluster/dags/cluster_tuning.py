"""Cluster test DAGs: the tuning example's deferrable create, and a batch inference on its model.

* ``cluster_tuning``: ``tune_model`` exactly as in ``dags/example_gemini_tuning.py`` (the
  quickstart's 15 examples, batch size 2, 5 epochs, deferrable), many runs at once.
* ``cluster_long_tuning``: the same with 20 epochs, so that its waits outlive a triggerer's death.
* ``cluster_batch_inference``: a short deferrable tuning, then ``generate`` asks the tuned model 40
  prompts two at a time (slowed down at the emulator by the test), so a worker can die mid-way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_tuning.operators.generate import GenerateContentOperator
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

TRAINING_DATA = Path(__file__).resolve().parent / "data" / "number_generator.jsonl"
#: The prompts of ``cluster_batch_inference`` (one answer expected for each).
PROMPTS = [f"{n}" for n in range(1, 41)]


def _tune(epochs: int) -> CreateTunedModelOperator:
    return CreateTunedModelOperator(
        task_id="tune_model",
        base_model="models/gemini-1.0-pro-001",
        training_data=str(TRAINING_DATA),
        display_name="number generator model",
        epoch_count=epochs,
        batch_size=2,
        learning_rate=0.001,
        deferrable=True,
        timeout=timedelta(minutes=15),
    )


_DEFAULTS = {"retries": 1, "retry_delay": timedelta(seconds=2)}

for _dag_id, _epochs in (("cluster_tuning", 5), ("cluster_long_tuning", 20)):
    with DAG(
        _dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=64,
        default_args=_DEFAULTS,
        tags=["cluster"],
    ):
        _tune(_epochs)

with DAG(
    "cluster_batch_inference",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=_DEFAULTS,
    tags=["cluster"],
):
    GenerateContentOperator(
        task_id="generate",
        model=_tune(1).output["tuned_model"],
        prompts=PROMPTS,
        concurrency=2,
    )
