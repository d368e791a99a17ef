"""Weekly retraining: tune a candidate, evaluate it on a holdout set, promote it only if it is good enough.

What a data team runs every week (``@weekly``; trigger it by hand any time):

1. ``tune_candidate`` starts a tuning job of ``models/gemini-1.5-flash-001-tuning`` on
   ``data/weekly_train.jsonl`` (columns ``question`` and ``answer``) and returns as soon as the job
   is accepted; ``wait_for_candidate`` (a deferrable ``TunedModelSensor``) waits for it in the
   triggerer. Every candidate's description starts with ``Weekly number model of
   example_weekly_tuning_pipeline``: that is how the clean-up step recognises this pipeline's models.
2. ``evaluate`` asks the candidate every question of the holdout set (``data/weekly_holdout.jsonl``,
   or the ``holdout_uri`` param) and scores its answers against the expected ones.
3. ``decide`` promotes the candidate only when its score (the ``normalized`` match rate) beats
   the ``promotion_threshold`` param (strictly greater). Otherwise ``discard_candidate`` deletes it;
   it also deletes the candidate when tuning or evaluation failed.
4. ``promote`` records the model in the Airflow Variable ``tuned_model_promoted`` (JSON: model,
   score, threshold, run id) and emits an event on the ``weekly_number_model_promoted`` asset, so
   consumers can be scheduled on it. Then ``list_tuned_models`` + ``select_superseded`` +
   ``delete_superseded`` delete this pipeline's models created before the promoted one; the
   promoted model itself is never deleted, nor any model without the pipeline's description.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    Asset,
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    TriggerRule,
    Variable,
    conf,
    task,
)

from airflow_provider_tuning.exceptions import (
    InvalidArgumentError,
    PermissionDeniedError,
    TuningFailedError,
    UnauthenticatedError,
)
from airflow_provider_tuning.operators.generate import GenerateContentOperator
from airflow_provider_tuning.operators.tuning import (
    CreateTunedModelOperator,
    DeleteTunedModelOperator,
    ListTunedModelsOperator,
)
from airflow_provider_tuning.sensors.tuning import TunedModelSensor

log = logging.getLogger("airflow.task")

DATA = Path(__file__).resolve().parent / "data"
#: Every candidate's description starts with this; only such models are ever cleaned up.
DESCRIPTION_PREFIX = "Weekly number model of example_weekly_tuning_pipeline"
#: The Airflow Variable that names the promoted model (JSON).
PROMOTED_VARIABLE = "tuned_model_promoted"
PROMOTED_ASSET = Asset("weekly_number_model_promoted")
#: Seconds between two polls of the tuning job (the provider's ``[generative_language] poll_interval``).
POLL_INTERVAL = conf.getfloat("generative_language", "poll_interval", fallback=30.0)

NO_RETRY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[TuningFailedError, InvalidArgumentError, PermissionDeniedError, UnauthenticatedError],
            action=RetryAction.FAIL,
            reason="a retry would meet the same failed job or the same refusal",
        )
    ]
)


def _created(model: dict[str, Any]) -> datetime:
    """The ``createTime`` of a TunedModel (RFC 3339, ``Z`` or offset, 0 to 9 fraction digits)."""
    text = str(model.get("createTime", "")).replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python < 3.11 parses at most 6 fraction digits
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]:0<6}{rest[len(digits) :]}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


with DAG(
    dag_id="example_weekly_tuning_pipeline",
    description="Weekly: tune a candidate, evaluate it on a holdout set, promote it if it beats a threshold.",
    doc_md=__doc__,
    schedule="@weekly",
    start_date=datetime(2025, 1, 6),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        # No retry_delay here: [core] default_task_retry_delay applies (300 s unless the deployment
        # sets another), so a deployment, or a test run, picks its own pause between task tries.
        "retry_policy": NO_RETRY,
    },
    params={
        "promotion_threshold": Param(
            0.75,
            type="number",
            minimum=0,
            maximum=1,
            title="Promotion threshold",
            description="Promote the candidate only when its holdout score (normalized match rate, "
            "0 to 1) is strictly greater than this.",
        ),
        "holdout_uri": Param(
            str(DATA / "weekly_holdout.jsonl"),
            type="string",
            minLength=1,
            title="Holdout set",
            description="Path or URI (file://, s3://, gs://, ...) of a JSONL/JSON/CSV file with the "
            "columns question and answer.",
        ),
    },
    tags=["generative-language", "tuning", "gemini", "evaluation", "example"],
) as dag:
    tune = CreateTunedModelOperator(
        task_id="tune_candidate",
        base_model="models/gemini-1.5-flash-001-tuning",
        training_data=str(DATA / "weekly_train.jsonl"),
        input_field="question",
        output_field="answer",
        display_name="weekly number model",
        # run_id, not ds: a manual run has no logical date.
        description=DESCRIPTION_PREFIX + ", run {{ run_id }}",
        epoch_count=5,
        batch_size=4,
        learning_rate=0.001,
        wait_for_completion=False,  # return once the job is accepted; the sensor waits
    )

    # [START howto_sensor_tuned_model]
    wait = TunedModelSensor(
        task_id="wait_for_candidate",
        tuned_model_name=tune.output["tuned_model"],
        deferrable=True,  # wait in the triggerer
        poke_interval=POLL_INTERVAL,
        timeout=12 * 3600,
    )
    # [END howto_sensor_tuned_model]

    evaluate = GenerateContentOperator(
        task_id="evaluate",
        model=tune.output["tuned_model"],
        prompts="{{ params.holdout_uri }}",
        prompts_kind="source",
        prompt_field="question",
        expected_field="answer",
        temperature=0.0,
    )

    @task.branch
    def decide(evaluated: dict[str, Any], params: dict[str, Any] | None = None) -> str:
        """Follow ``promote`` when the score beats the threshold, else ``discard_candidate``."""
        score = float(evaluated["evaluation"]["normalized"])
        threshold = float((params or {})["promotion_threshold"])
        if score > threshold:
            log.info(
                "Score %.4f beats the threshold %.4f: promoting %s", score, threshold, evaluated["model"]
            )
            return "promote"
        log.info("Score %.4f does not beat the threshold %.4f: discarding the candidate", score, threshold)
        return "discard_candidate"

    @task(outlets=[PROMOTED_ASSET])
    def promote(
        evaluated: dict[str, Any],
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        outlet_events: Any = None,
    ) -> dict[str, Any]:
        """Name the candidate as the promoted model (Variable + asset event)."""
        record = {
            "tuned_model": evaluated["model"],
            "score": evaluated["evaluation"]["normalized"],
            "threshold": float((params or {})["promotion_threshold"]),
            "run_id": run_id,
            "promoted_at": datetime.now(timezone.utc).isoformat(),
        }
        Variable.set(PROMOTED_VARIABLE, record, serialize_json=True)
        if outlet_events is not None:
            outlet_events[PROMOTED_ASSET].extra = record
        log.info("Promoted %s (score %s)", record["tuned_model"], record["score"])
        return record

    # [START howto_operator_list_tuned_models]
    list_models = ListTunedModelsOperator(
        task_id="list_tuned_models",
        filter="owner:me",  # v1beta full-text filter: only models these credentials own
        page_size=100,
    )
    # [END howto_operator_list_tuned_models]

    @task
    def select_superseded(promoted: dict[str, Any], models: list[dict[str, Any]]) -> list[str]:
        """This pipeline's models created before the promoted one (never the promoted one)."""
        current = next((m for m in models if m.get("name") == promoted["tuned_model"]), None)
        if current is None:
            log.warning("%s is not in the listing: deleting nothing", promoted["tuned_model"])
            return []
        superseded = sorted(
            m["name"]
            for m in models
            if m.get("name") != current["name"]
            and str(m.get("description", "")).startswith(DESCRIPTION_PREFIX)
            and _created(m) < _created(current)
        )
        log.info("Superseded by %s: %s", current["name"], superseded or "none")
        return superseded

    discard = DeleteTunedModelOperator(
        task_id="discard_candidate",
        tuned_model_name="{{ ti.xcom_pull(task_ids='tune_candidate', key='tuned_model') }}",
        ignore_missing=True,
        # Also after a failed tuning or evaluation: a rejected or broken candidate is not kept.
        trigger_rule=TriggerRule.ALL_DONE,
    )

    promoted = promote(evaluate.output)
    tune >> wait >> evaluate
    decide(evaluate.output) >> [promoted, discard]
    promoted >> list_models
    # One mapped delete per superseded model (none: the mapped task is skipped).
    DeleteTunedModelOperator.partial(task_id="delete_superseded", ignore_missing=True).expand(
        tuned_model_name=select_superseded(promoted, list_models.output)
    )
