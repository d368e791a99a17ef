"""Bad input fails CreateTunedModelOperator before any API call, without retry, naming the problem."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError
from airflow_provider_tuning.operators import _validation as check
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

EXAMPLES = [{"text_input": "1", "output": "2"}, {"text_input": "3", "output": "4"}]


class RecordingHook:
    """Records every attribute used: any use at all means an API call could have been made."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        raise AssertionError(f"the hook was used ({name}) although the input is invalid")


class _TI:
    dag_id, task_id, run_id, map_index, try_number = "d", "t", "manual__1", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        raise AssertionError("nothing may be pushed for invalid input")


def run_with(monkeypatch, **kwargs: Any) -> tuple[pytest.ExceptionInfo[AirflowFailException], list[str]]:
    kwargs.setdefault("base_model", "models/gemini-1.5-flash-001-tuning")
    kwargs.setdefault("training_data", EXAMPLES)
    hooks: list[RecordingHook] = []

    def get_hook(self: Any, api_version: str | None = None) -> RecordingHook:
        hooks.append(RecordingHook())
        return hooks[-1]

    monkeypatch.setattr(CreateTunedModelOperator, "get_hook", get_hook)
    with DAG("d", schedule=None):
        op = CreateTunedModelOperator(task_id="t", deferrable=False, **kwargs)
    context = {"ti": _TI(), "run_id": "manual__1", "outlet_events": OutletEventAccessors()}
    with pytest.raises(AirflowFailException) as info:
        op.execute(context)
    assert hooks == [], "no hook may even be built for invalid input"
    return info, [u for h in hooks for u in h.used]


CASES = [
    ({"learning_rate": 0.001, "learning_rate_multiplier": 1.0}, InvalidInputError, "not both"),
    ({"base_model": "text-bison-001", "learning_rate_multiplier": 2.0}, InvalidInputError, "only in v1beta"),
    ({"epoch_count": 0}, InvalidInputError, "epoch_count must be a positive integer, got 0"),
    ({"epoch_count": -3}, InvalidInputError, "epoch_count must be a positive integer"),
    ({"epoch_count": 2.5}, InvalidInputError, "epoch_count must be a positive integer, got 2.5"),
    ({"epoch_count": True}, InvalidInputError, "epoch_count must be a positive integer, got True"),
    ({"batch_size": "four"}, InvalidInputError, "batch_size must be a positive integer, got 'four'"),
    ({"learning_rate": 0}, InvalidInputError, "learning_rate must be > 0, got 0"),
    ({"learning_rate": "fast"}, InvalidInputError, "learning_rate must be a finite number, got 'fast'"),
    ({"learning_rate": float("nan")}, InvalidInputError, "learning_rate must be a finite number"),
    ({"learning_rate_multiplier": -1}, InvalidInputError, "learning_rate_multiplier must be > 0"),
    ({"temperature": 1.5}, InvalidInputError, "temperature must be >= 0 and <= 1, got 1.5"),
    ({"top_p": -0.1}, InvalidInputError, "top_p must be >= 0"),
    ({"top_k": 0}, InvalidInputError, "top_k must be a positive integer, got 0"),
    ({"display_name": "x" * 41}, InvalidInputError, "display_name must be at most 40 characters, got 41"),
    ({"display_name": 7}, InvalidInputError, "display_name must be a string, got 7"),
    ({"display_name": "  "}, InvalidInputError, "display_name must be a non-empty string"),
    ({"description": ["x"]}, InvalidInputError, "description must be a string"),
    ({"display_name": "a\ud800"}, InvalidInputError, "display_name contains a lone surrogate"),
    ({"description": "\udc00 tail"}, InvalidInputError, "description contains a lone surrogate"),
    ({"tuned_model_id": "Bad_ID"}, InvalidInputError, "tuned_model_id 'Bad_ID' is invalid"),
    ({"tuned_model_id": "a" * 41}, InvalidInputError, "is invalid: at most 40 characters"),
    ({"tuned_model_id": "ends-with-"}, InvalidInputError, "is invalid"),
    ({"base_model": ""}, InvalidInputError, "base_model must be a non-empty string"),
    ({"base_model": "tunedModels/mine"}, InvalidInputError, "not a tuned model"),
    ({"base_model": "models/Has Spaces"}, InvalidInputError, "is not a model name"),
    ({"api_version": "v1"}, InvalidInputError, "api_version must be one of v1beta, v1beta3"),
    ({"input_field": ""}, InvalidInputError, "input_field must be a non-empty string"),
    ({"example_limits": {"max_lines": 3}}, InvalidInputError, "example_limits has an unknown field"),
    ({"example_limits": 5}, InvalidInputError, "example_limits must be an ExampleLimits or a dict"),
    ({"training_data": []}, TrainingDataError, ""),
    ({"training_data": [{"text_input": "1"}]}, TrainingDataError, "output"),
    ({"training_data": [{"text_input": "1", "output": ""}]}, TrainingDataError, "output"),
    ({"training_data": [{"question": "1", "answer": "2"}]}, TrainingDataError, "text_input"),
    (
        {
            "training_data": [{"text_input": "x" * 50, "output": "y"}],
            "example_limits": {"max_input_chars": 10},
        },
        TrainingDataError,
        "10",
    ),
    ({"training_data": "/nonexistent/dir/train.jsonl"}, TrainingDataError, "train.jsonl"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), CASES)
def test_bad_input_fails_without_retry_and_without_any_api_call(monkeypatch, kwargs, error, match):
    info, used = run_with(monkeypatch, **kwargs)
    cause = info.value.__cause__
    assert isinstance(cause, error), repr(cause)
    assert match in str(cause)
    assert str(info.value) == f"{type(cause).__name__}: {cause}"
    assert used == []


def test_training_data_error_names_the_item_and_field(monkeypatch):
    info, _ = run_with(monkeypatch, training_data=[{"text_input": "1", "output": "2"}, {"text_input": "3"}])
    cause = info.value.__cause__
    assert isinstance(cause, TrainingDataError)
    assert cause.source == "inline"
    assert cause.line == 2
    assert "output" in str(cause)


def test_column_mapping_is_applied(monkeypatch):
    """input_field/output_field reach the loader: the mapped columns validate, the default ones do not."""
    data = [{"question": "q", "answer": "a"}]
    info, _ = run_with(
        monkeypatch, training_data=data, input_field="question", output_field="answer", display_name="y" * 41
    )  # fails later, on display_name, not on the data
    assert "display_name" in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"poll_interval": 0}, "poll_interval must be > 0, got 0"),
        ({"timeout": -5}, "timeout must be > 0, got -5"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures must be a positive integer, got 0"),
        ({"poll_interval": float("inf")}, "poll_interval must be a finite number, got inf"),
        ({"timeout": float("nan")}, "timeout must be a finite number, got nan"),
        ({"timeout": "forever"}, "timeout must be a finite number, got 'forever'"),
        ({"max_consecutive_failures": 2.5}, "max_consecutive_failures must be a positive integer, got 2.5"),
    ],
)
def test_wait_settings_are_checked_when_the_dag_is_parsed(kwargs, match):
    with pytest.raises(InvalidInputError, match=match), DAG("d", schedule=None):
        CreateTunedModelOperator(task_id="t", base_model="m-1", training_data=EXAMPLES, **kwargs)


@pytest.mark.parametrize(("value", "expected"), [(3, 3), ("3", 3), (" 12 ", 12), ("+4", 4)])
def test_positive_int_accepts_rendered_templates(value, expected):
    assert validation.positive_int("epoch_count", value) == expected


@pytest.mark.parametrize(("value", "expected"), [(0.5, 0.5), ("0.25", 0.25), (1, 1.0), ("1e-3", 0.001)])
def test_float_accepts_rendered_templates(value, expected):
    assert validation.number("learning_rate", value, minimum=0.0, exclusive_minimum=True) == expected


@pytest.mark.parametrize(
    ("base_model", "version"),
    [
        ("models/text-bison-001", "v1beta3"),
        ("text-bison-001", "v1beta3"),
        ("models/gemini-1.0-pro-001", "v1beta"),
        ("gemini-1.5-flash-001-tuning", "v1beta"),
    ],
)
def test_api_version_default_follows_the_base_model(base_model, version):
    assert check.resolve_api_version(validation.base_model_name(base_model), None) == version
    assert check.resolve_api_version(validation.base_model_name(base_model), "v1beta") == "v1beta"


def test_wait_settings_default_to_the_provider_config(monkeypatch):
    for option in ("POLL_INTERVAL", "DEFAULT_TIMEOUT", "MAX_CONSECUTIVE_FAILURES"):
        monkeypatch.delenv(f"AIRFLOW__GENERATIVE_LANGUAGE__{option}", raising=False)
    with DAG("d", schedule=None):
        default = CreateTunedModelOperator(task_id="a", base_model="m-1", training_data=EXAMPLES)
    monkeypatch.setenv("AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL", "12.5")
    monkeypatch.setenv("AIRFLOW__GENERATIVE_LANGUAGE__DEFAULT_TIMEOUT", "600")
    monkeypatch.setenv("AIRFLOW__GENERATIVE_LANGUAGE__MAX_CONSECUTIVE_FAILURES", "9")
    with DAG("d2", schedule=None):
        configured = CreateTunedModelOperator(task_id="a", base_model="m-1", training_data=EXAMPLES)
        explicit = CreateTunedModelOperator(
            task_id="b",
            base_model="m-1",
            training_data=EXAMPLES,
            poll_interval=2,
            timeout=timedelta(hours=6),
            max_consecutive_failures=3,
        )
    settings = [
        (op.poll_interval, op.timeout, op.max_consecutive_failures) for op in (default, configured, explicit)
    ]
    assert settings == [(30.0, 86400.0, 5), (12.5, 600.0, 9), (2.0, 21600.0, 3)]
