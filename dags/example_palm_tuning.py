"""Tune PaLM (``text-bison-001``, API ``v1beta3``) to generate the next number, ask it, delete it.

The PaLM API's REST tuning quickstart as an Airflow DAG:

1. ``tune_model`` creates a tuned model of ``models/text-bison-001`` in ``v1beta3`` from the
   quickstart's 15 examples (``data/number_generator.jsonl``) with batch size 2, learning rate 0.001
   and 3 epochs, and waits for it in the triggerer (``deferrable=True``).
2. ``generate`` calls ``generateText`` on the tuned model with the prompt ``4``,
   ``temperature=1.0`` and ``candidate_count=2``, as the quickstart does, and ``log_answers``
   writes both candidates to the task log (``Answer: '4' -> ['5', ...]``).
3. ``delete_model`` is a teardown that deletes the tuned model whatever happened before it.

PaLM models were retired by Google; the DAG shows the ``v1beta3`` surface of the provider and runs
against the local emulator, or against any deployment that still serves ``v1beta3``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, ExceptionRetryPolicy, RetryAction, RetryRule, TriggerRule, task

from airflow_provider_tuning.exceptions import (
    InvalidArgumentError,
    PermissionDeniedError,
    TuningFailedError,
    UnauthenticatedError,
)
from airflow_provider_tuning.operators.generate import GenerateTextOperator
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator, DeleteTunedModelOperator

log = logging.getLogger("airflow.task")

TRAINING_DATA = Path(__file__).resolve().parent / "data" / "number_generator.jsonl"

# The hook already retries 429/5xx and connection errors; a failed job or a refusal is final.
NO_RETRY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[TuningFailedError, InvalidArgumentError, PermissionDeniedError, UnauthenticatedError],
            action=RetryAction.FAIL,
            reason="a retry would meet the same failed job or the same refusal",
        )
    ]
)

with DAG(
    dag_id="example_palm_tuning",
    description="Tune text-bison-001 (v1beta3) on the quickstart's number examples, query it, delete it.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_policy": NO_RETRY,
    },
    tags=["generative-language", "tuning", "palm", "example"],
) as dag:
    tune = CreateTunedModelOperator(
        task_id="tune_model",
        base_model="models/text-bison-001",  # a *-bison model selects api_version v1beta3
        training_data=str(TRAINING_DATA),
        display_name="number generator model",
        epoch_count=3,
        batch_size=2,
        learning_rate=0.001,
        deferrable=True,
    )

    # [START howto_operator_generate_text]
    generate = GenerateTextOperator(
        task_id="generate",
        model=tune.output["tuned_model"],
        prompts="4",
        temperature=1.0,
        candidate_count=2,
    )
    # [END howto_operator_generate_text]

    @task
    def log_answers(generated: dict[str, Any]) -> list[dict[str, Any]]:
        """Write each prompt and the tuned model's candidates to the task log."""
        answers = [{"prompt": r["prompt"], "candidates": r["candidates"]} for r in generated["results"]]
        for item in answers:
            log.info("Answer: %r -> %r", item["prompt"], item["candidates"])
        return answers

    delete_model = DeleteTunedModelOperator(
        task_id="delete_model",
        tuned_model_name="{{ ti.xcom_pull(task_ids='tune_model', key='tuned_model') }}",
        api_version="v1beta3",
        ignore_missing=True,
    ).as_teardown(setups=tune)
    # Also delete a model whose tuning job FAILED (a teardown runs only after a successful setup).
    delete_model.trigger_rule = TriggerRule.ALL_DONE

    log_answers(generate.output) >> delete_model
