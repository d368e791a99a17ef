"""Tune Gemini to generate the next number, ask the tuned model, then delete it.

The Gemini API's REST tuning quickstart as an Airflow DAG:

1. ``tune_model`` creates a tuned model of ``models/gemini-1.0-pro-001`` (``v1beta``) from the
   quickstart's 15 examples (``data/number_generator.jsonl``: ``1`` -> ``2``, ``twenty two`` ->
   ``twenty three``, ...) with batch size 2, learning rate 0.001 and 5 epochs, and waits for the job
   in the triggerer (``deferrable=True``): no worker slot is held while it tunes.
2. ``generate`` asks the tuned model for the number after ``LXIII`` and after ``六``, and
   ``log_answers`` writes each answer to the task log (the quickstart's real model answered
   ``Answer: 'LXIII' -> 'LXIV'``; the emulator answers from its most similar training example).
3. ``delete_model`` is a teardown: it deletes the tuned model whatever happened before it, also
   when the tuning job failed (the model then exists, in state FAILED).

It runs unchanged against the real API and against the local emulator: only the connection
``generative_language_default`` says where the API is and how to authenticate.
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
from airflow_provider_tuning.operators.generate import GenerateContentOperator
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator, DeleteTunedModelOperator

log = logging.getLogger("airflow.task")

TRAINING_DATA = Path(__file__).resolve().parent / "data" / "number_generator.jsonl"

# The hook already retries 429/5xx and connection errors; a task retry is for what outlives those.
# A failed tuning job or a refused request would fail again the same way: fail at once.
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
    dag_id="example_gemini_tuning",
    description="Tune gemini-1.0-pro-001 on the quickstart's number examples, query it, delete it.",
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
    tags=["generative-language", "tuning", "gemini", "example"],
) as dag:
    # [START howto_operator_create_tuned_model]
    tune = CreateTunedModelOperator(
        task_id="tune_model",
        base_model="models/gemini-1.0-pro-001",
        training_data=str(TRAINING_DATA),  # also: a list of dicts, an XCom, or any s3:// gs:// ... URI
        display_name="number generator model",
        epoch_count=5,
        batch_size=2,
        learning_rate=0.001,
        deferrable=True,  # wait in the triggerer, not in a worker slot
    )
    # [END howto_operator_create_tuned_model]

    # [START howto_operator_generate_content]
    generate = GenerateContentOperator(
        task_id="generate",
        # The XCom key "tuned_model" holds "tunedModels/<id>" as soon as the model exists.
        model=tune.output["tuned_model"],
        prompts=["LXIII", "六"],
    )
    # [END howto_operator_generate_content]

    @task
    def log_answers(generated: dict[str, Any]) -> list[dict[str, Any]]:
        """Write each prompt and the tuned model's answer to the task log."""
        answers = [{"prompt": r["prompt"], "answer": r["text"]} for r in generated["results"]]
        for item in answers:
            log.info("Answer: %r -> %r", item["prompt"], item["answer"])
        return answers

    # [START howto_operator_delete_tuned_model]
    delete_model = DeleteTunedModelOperator(
        task_id="delete_model",
        tuned_model_name="{{ ti.xcom_pull(task_ids='tune_model', key='tuned_model') }}",
        ignore_missing=True,
    ).as_teardown(setups=tune)
    # A teardown runs only when its setup succeeded, but a tuning job that FAILED leaves a model
    # behind: run the teardown whenever the tasks before it are done.
    delete_model.trigger_rule = TriggerRule.ALL_DONE
    # [END howto_operator_delete_tuned_model]

    log_answers(generate.output) >> delete_model
