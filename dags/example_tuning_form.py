"""Tune a model from the Airflow UI's trigger form, then try it on one prompt.

Press "Trigger" on this DAG: the form asks for the base model (a list of the tunable ones), the
display name, the training data (a path or URI of a JSONL/JSON/CSV file; the default is the
quickstart's number examples shipped next to this file), the input and output columns, the
epochs, the batch size, the learning rate and a prompt to try. Every field is checked (types,
choices and bounds) before a run starts: the bounds are the operator's own, from
``airflow_provider_tuning.validation`` (the form narrows some ranges to sensible values, e.g. at
most 100 epochs, never widens them), so a value the operator would refuse never starts a run.

1. ``tune_model`` tunes the chosen base model with these values (templated from ``params``) and
   waits in the triggerer. PaLM base models (``*-bison``) are tuned in ``v1beta3``, Gemini ones in
   ``v1beta``: the operator picks the API version from the base model.
2. ``pick_method`` branches to ``generate_content`` (Gemini) or ``generate_text`` (PaLM), which
   sends the prompt to the tuned model; ``log_answer`` writes the answer to the task log.

The tuned model is kept: it is the point of the form. Its name is in the XCom of ``tune_model``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, ExceptionRetryPolicy, Param, RetryAction, RetryRule, TriggerRule, task

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import (
    InvalidArgumentError,
    PermissionDeniedError,
    TuningFailedError,
    UnauthenticatedError,
)
from airflow_provider_tuning.operators.generate import GenerateContentOperator, GenerateTextOperator
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

log = logging.getLogger("airflow.task")

TRAINING_DATA = Path(__file__).resolve().parent / "data" / "number_generator.jsonl"
#: The base models the API can tune (``createTunedModel`` in their ``supportedGenerationMethods``).
TUNABLE_BASE_MODELS = [
    "models/gemini-1.5-flash-001-tuning",
    "models/gemini-1.5-flash-001",
    "models/gemini-1.0-pro-001",
    "models/text-bison-001",
]

NO_RETRY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[TuningFailedError, InvalidArgumentError, PermissionDeniedError, UnauthenticatedError],
            action=RetryAction.FAIL,
            reason="a retry would meet the same failed job or the same refusal",
        )
    ]
)

# [START howto_trigger_form_params]
params = {
    "base_model": Param(
        TUNABLE_BASE_MODELS[0],
        **validation.base_model_schema(),
        enum=TUNABLE_BASE_MODELS,
        title="Base model",
        description="The model to tune. *-bison models are PaLM (API v1beta3), the others Gemini (v1beta).",
    ),
    "display_name": Param(
        "number generator model",
        **validation.display_name_schema(),
        title="Display name",
        description="The tuned model's name in listings (at most 40 characters).",
    ),
    "training_data_uri": Param(
        str(TRAINING_DATA),
        type="string",
        minLength=1,
        title="Training data",
        description="Path or URI (file://, s3://, gs://, ...) of a .jsonl, .json or .csv file, "
        "optionally .gz, with one example per record.",
    ),
    "input_field": Param(
        "text_input",
        type="string",
        minLength=1,
        title="Input column",
        description="The column (or JSON key) of the training data that holds the input.",
    ),
    "output_field": Param(
        "output",
        type="string",
        minLength=1,
        title="Output column",
        description="The column (or JSON key) of the training data that holds the expected output.",
    ),
    "epoch_count": Param(
        5,
        **validation.EPOCH_COUNT.schema(maximum=100),
        title="Epochs",
        description="How many times the tuning goes through the training data.",
    ),
    "batch_size": Param(
        4,
        **validation.BATCH_SIZE.schema(maximum=64),
        title="Batch size",
        description="Examples per training step.",
    ),
    "learning_rate": Param(
        0.001,
        **validation.LEARNING_RATE.schema(maximum=1),
        title="Learning rate",
        description="Step size of the tuning (greater than 0).",
    ),
    "prompt": Param(
        "LXIII",
        type="string",
        minLength=1,
        maxLength=2000,
        title="Prompt to try",
        description="Sent to the tuned model once it is ready.",
    ),
}
# [END howto_trigger_form_params]

with DAG(
    dag_id="example_tuning_form",
    description="Tune a model with the values of the trigger form, then try it on one prompt.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_policy": NO_RETRY,
    },
    params=params,
    tags=["generative-language", "tuning", "trigger-form", "example"],
) as dag:
    tune = CreateTunedModelOperator(
        task_id="tune_model",
        base_model="{{ params.base_model }}",
        training_data="{{ params.training_data_uri }}",
        input_field="{{ params.input_field }}",
        output_field="{{ params.output_field }}",
        display_name="{{ params.display_name }}",
        description="Tuned from the trigger form of example_tuning_form, run {{ run_id }}",
        epoch_count="{{ params.epoch_count }}",
        batch_size="{{ params.batch_size }}",
        learning_rate="{{ params.learning_rate }}",
        deferrable=True,
    )

    @task.branch
    def pick_method(params: dict[str, Any] | None = None) -> str:
        """PaLM models answer ``generateText``, Gemini models ``generateContent``."""
        return "generate_text" if "bison" in str((params or {})["base_model"]) else "generate_content"

    generate_content = GenerateContentOperator(
        task_id="generate_content",
        model=tune.output["tuned_model"],
        prompts="{{ params.prompt }}",
        prompts_kind="text",
    )
    generate_text = GenerateTextOperator(
        task_id="generate_text",
        model=tune.output["tuned_model"],
        prompts="{{ params.prompt }}",
        prompts_kind="text",
    )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def log_answer(ti: Any = None) -> dict[str, Any]:
        """Write the prompt and the answer of whichever generate task ran to the task log."""
        outputs = ti.xcom_pull(task_ids=["generate_content", "generate_text"])
        generated = next(out for out in outputs if out)
        result = generated["results"][0]
        log.info("Answer of %s: %r -> %r", generated["model"], result["prompt"], result["text"])
        return {"model": generated["model"], "prompt": result["prompt"], "answer": result["text"]}

    tune >> pick_method() >> [generate_content, generate_text]
    [generate_content, generate_text] >> log_answer()
