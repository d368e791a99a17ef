"""The example DAGs' trigger forms refuse what the operators refuse.

Each form field tied to an operator argument is checked two ways: its JSON schema carries the limit
of ``airflow_provider_tuning.validation`` (a form may narrow a range, never widen it), and for a set
of probe values around every bound, each value the operator's check refuses is refused by the
field's schema too.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.hooks.vertex import split_gcs_uri

DAGS = Path(__file__).resolve().parents[2] / "dags"

NUMBER_FIELDS: dict[tuple[str, str], validation.NumberLimit] = {
    ("example_tuning_form", "epoch_count"): validation.EPOCH_COUNT,
    ("example_tuning_form", "batch_size"): validation.BATCH_SIZE,
    ("example_tuning_form", "learning_rate"): validation.LEARNING_RATE,
}
TEXT_FIELDS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("example_tuning_form", "base_model"): validation.base_model_name,
    ("example_tuning_form", "display_name"): validation.display_name,
    ("example_vertex_tuning", "base_model"): validation.vertex_base_model,
    # What CreateVertexTuningJobOperator does with staging_uri before uploading.
    ("example_vertex_tuning", "staging_uri"): lambda v: split_gcs_uri(
        v.rstrip("/") if isinstance(v, str) else v, what="staging_uri"
    ),
}
NUMBER_PROBES: list[Any] = [
    -1,
    0,
    0.0,
    -0.0,
    5e-324,
    1e-9,
    0.5,
    1,
    1.5,
    2,
    64,
    65,
    100,
    101,
    validation.INT32_MAX,
    validation.INT32_MAX + 1,
    True,
    None,
]
TEXT_PROBES: list[Any] = [
    "",
    " ",
    "\t",
    "x",
    "x" * 40,
    "x" * 41,
    "x" * 257,
    "models/gemini-1.5-flash-001-tuning",
    "gemini-1.5-flash-001-tuning",
    "tunedModels/mine",
    "models/Gemini",
    "models/a/b",
    "a/b",
    "publishers/google/models/gemini-2.5-flash",
    "publishers/google/models/a/b",
    "gemini-2.5-flash",
    "gs://",
    "gs://ab",
    "gs://abc",
    "gs://abc/",
    "gs://abc/prefix/run",
    "gs://-abc/x",
    "gs://ABC/x",
    "gs://" + "b" * 223,
    "s3://abc/x",
    5,
    None,
]


def _load(dag_id: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"form_{dag_id}", DAGS / f"{dag_id}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture(scope="module")
def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    dags = {dag_id: _load(dag_id) for dag_id, _ in [*NUMBER_FIELDS, *TEXT_FIELDS]}
    return {
        (dag_id, field): dict(dags[dag_id].params.get_param(field).schema)
        for dag_id, field in [*NUMBER_FIELDS, *TEXT_FIELDS]
    }


def _refused_by_operator(check: Callable[[Any], Any], value: Any) -> bool:
    try:
        check(value)
    except InvalidInputError:
        return True
    return False


def _refused_by_form(schema: dict[str, Any], value: Any) -> bool:
    return not jsonschema.Draft7Validator(schema).is_valid(value)


@pytest.mark.parametrize(("dag_id", "field"), list(NUMBER_FIELDS))
def test_a_number_field_carries_the_operators_limit(schemas, dag_id, field):
    limit = NUMBER_FIELDS[dag_id, field]
    schema = schemas[dag_id, field]
    assert schema["type"] == ("integer" if limit.integer else "number")
    bound = "exclusiveMinimum" if limit.exclusive_minimum else "minimum"
    assert schema[bound] == limit.minimum
    assert ({"minimum", "exclusiveMinimum"} - {bound}).isdisjoint(schema)
    if limit.maximum is not None:
        assert schema["maximum"] <= limit.maximum


@pytest.mark.parametrize(("dag_id", "field"), list(NUMBER_FIELDS))
def test_a_number_the_operator_refuses_is_refused_by_the_form(schemas, dag_id, field):
    limit = NUMBER_FIELDS[dag_id, field]
    schema = schemas[dag_id, field]
    let_through = [
        v for v in NUMBER_PROBES if _refused_by_operator(limit.check, v) and not _refused_by_form(schema, v)
    ]
    assert let_through == []
    # The probes reach both sides of the bounds: the check is not vacuous.
    assert any(not _refused_by_operator(limit.check, v) for v in NUMBER_PROBES)
    assert any(_refused_by_operator(limit.check, v) for v in NUMBER_PROBES)


@pytest.mark.parametrize(("dag_id", "field"), list(TEXT_FIELDS))
def test_a_text_the_operator_refuses_is_refused_by_the_form(schemas, dag_id, field):
    check = TEXT_FIELDS[dag_id, field]
    schema = schemas[dag_id, field]
    probes = [*TEXT_PROBES, *schema.get("enum", [])]
    let_through = [v for v in probes if _refused_by_operator(check, v) and not _refused_by_form(schema, v)]
    assert let_through == []
    for choice in schema.get("enum", []):  # every offered choice is one the operator takes
        assert not _refused_by_operator(check, choice), choice


def test_the_learning_rate_of_zero_is_refused_by_both():
    schema = validation.LEARNING_RATE.schema()
    assert schema == {"type": "number", "exclusiveMinimum": 0.0}
    assert _refused_by_form(schema, 0)
    with pytest.raises(InvalidInputError, match="learning_rate must be > 0"):
        validation.LEARNING_RATE.check(0)


def test_a_form_may_narrow_a_limit_but_not_widen_it():
    assert validation.EPOCH_COUNT.schema(maximum=100) == {"type": "integer", "minimum": 1, "maximum": 100}
    with pytest.raises(ValueError, match="exceeds the limit"):
        validation.EPOCH_COUNT.schema(maximum=validation.INT32_MAX + 1)
