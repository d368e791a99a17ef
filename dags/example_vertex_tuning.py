"""Tune Gemini on Vertex AI, evaluate it on held-out data, promote it above a threshold, tear down.

The live way to tune Gemini (Google's Gemini API takes no new tuning jobs):

1. ``tune`` validates the training data (``data/weekly_train.jsonl``: question -> answer), writes it
   as Vertex AI's JSONL (a user turn and a model turn per example), uploads it under the
   ``staging_uri`` param (a content-addressed object: a retry uploads nothing new), creates the
   tuning job labelled with this task instance, and waits in the triggerer (``deferrable=True``).
   A retry reattaches to the job by its labels: never a second paid job.
2. ``evaluate`` asks the tuned model's endpoint every question of the holdout set and scores the
   answers against the expected ones.
3. ``decide`` follows ``promote`` when the score beats the ``promotion_threshold`` param (the
   promoted model is named in an asset event a deployment DAG can schedule on), else
   ``discard_candidate`` deletes the model and its endpoint.
4. ``delete_endpoint`` is a teardown: whatever happened, the endpoint the tuning deployed goes (an
   idle endpoint keeps costing money; a model in the Model Registry does not).

It runs unchanged against Vertex AI and against the local emulator: the connection
``google_cloud_default`` (a ``google_cloud_platform`` connection) says where and how.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, ExceptionRetryPolicy, Param, RetryAction, RetryRule, TriggerRule, task

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import (
    InvalidArgumentError,
    PermissionDeniedError,
    TuningFailedError,
    UnauthenticatedError,
)
from airflow_provider_tuning.operators.generate import GenerateContentOperator
from airflow_provider_tuning.operators.vertex_manage import DeleteVertexTunedModelOperator
from airflow_provider_tuning.operators.vertex_tuning import CreateVertexTuningJobOperator

log = logging.getLogger("airflow.task")

DATA = Path(__file__).resolve().parent / "data"
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
PROMOTED_ASSET = Asset(name="promoted_vertex_model", uri="vertex-ai://promoted/example_vertex_tuning")

with DAG(
    dag_id="example_vertex_tuning",
    description="Vertex AI: tune gemini-2.5-flash, evaluate on a holdout set, promote above a threshold.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-platform", "retries": 2, "retry_policy": NO_RETRY},
    params={
        "base_model": Param("gemini-2.5-flash", **validation.vertex_base_model_schema(), title="Base model"),
        "staging_uri": Param(
            "gs://airflow-tuning-staging/example_vertex_tuning",
            **validation.gcs_uri_schema(),
            title="Staging URI",
            description="gs://<bucket>/<prefix> where the training data is uploaded (the tuning "
            "service agent needs read access to the bucket).",
        ),
        "promotion_threshold": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            title="Promotion threshold",
            description="Promote the model only when its holdout score (normalized match rate) is "
            "strictly greater than this.",
        ),
    },
    tags=["vertex-ai", "tuning", "gemini", "evaluation", "example"],
) as dag:
    # [START howto_operator_create_vertex_tuning_job]
    tune = CreateVertexTuningJobOperator(
        task_id="tune",
        base_model="{{ params.base_model }}",
        training_data=str(DATA / "weekly_train.jsonl"),  # also: a list, an XCom, a gs:// JSONL URI...
        input_field="question",
        output_field="answer",
        staging_uri="{{ params.staging_uri }}",
        tuned_model_display_name="weekly number model",
        epoch_count=3,
        labels={"team": "ml-platform"},
        deferrable=True,  # wait in the triggerer, not in a worker slot
    )
    # [END howto_operator_create_vertex_tuning_job]

    # [START howto_operator_generate_content_vertex]
    evaluate = GenerateContentOperator(
        task_id="evaluate",
        model=tune.output["endpoint"],  # projects/*/locations/*/endpoints/*: the tuned model
        prompts=str(DATA / "weekly_holdout.jsonl"),
        prompts_kind="source",
        prompt_field="question",
        expected_field="answer",
        temperature=0.0,
    )
    # [END howto_operator_generate_content_vertex]

    @task.branch
    def decide(evaluated: dict[str, Any], params: dict[str, Any] | None = None) -> str:
        """Follow ``promote`` when the score beats the threshold, else ``discard_candidate``."""
        score = float(evaluated["evaluation"]["normalized"])
        threshold = float((params or {})["promotion_threshold"])
        log.info("Holdout score %.4f, threshold %.4f", score, threshold)
        return "promote" if score > threshold else "discard_candidate"

    @task(outlets=[PROMOTED_ASSET])
    def promote(
        tuned: dict[str, Any], evaluated: dict[str, Any], outlet_events: Any = None
    ) -> dict[str, Any]:
        """Name the tuned model as promoted, in an asset event."""
        record = {
            "tuned_model": tuned["tuned_model"],
            "tuning_job": tuned["tuning_job"],
            "score": evaluated["evaluation"]["normalized"],
        }
        if outlet_events is not None:
            outlet_events[PROMOTED_ASSET].extra = record
        log.info("Promoted %s (score %s)", record["tuned_model"], record["score"])
        return record

    discard = DeleteVertexTunedModelOperator(
        task_id="discard_candidate",
        tuning_job_name="{{ ti.xcom_pull(task_ids='tune', key='tuning_job') }}",
    )

    # [START howto_operator_delete_vertex_tuned_model]
    delete_endpoint = DeleteVertexTunedModelOperator(
        task_id="delete_endpoint",
        tuning_job_name="{{ ti.xcom_pull(task_ids='tune', key='tuning_job') }}",
        delete_model=False,  # the promoted model stays in the Model Registry
    ).as_teardown(setups=tune)
    delete_endpoint.trigger_rule = TriggerRule.ALL_DONE  # also after a failed tuning job
    # [END howto_operator_delete_vertex_tuned_model]

    choice = decide(evaluate.output)
    choice >> [promote(tune.output, evaluate.output), discard] >> delete_endpoint
