"""The deterministic tuned model id: stable, within the API's rule, distinct per task instance."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from airflow_provider_tuning.operators._ids import (
    Provenance,
    default_tuned_model_id,
    recreated_tuned_model_id,
)
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator
from airflow_provider_tuning.validation import TUNED_MODEL_ID_PATTERN


def is_valid_tuned_model_id(value: str) -> bool:
    return TUNED_MODEL_ID_PATTERN.fullmatch(value) is not None


API_RULE = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")

NAMES = [
    ("tune_gemini", "create_tuned_model", "manual__2024-05-01T10:00:00+00:00", -1),
    ("a" * 250, "b" * 250, "scheduled__2024-05-01T00:00:00+00:00", 3),
    ("123_dag", "task", "r", -1),
    ("___", "...", "r", -1),
    ("UPPER.Case-dag", "Group.Sub_Task", "run with spaces & symbols ☃", 0),
]


@pytest.mark.parametrize(("dag_id", "task_id", "run_id", "map_index"), NAMES)
def test_default_id_fits_the_api_rule(dag_id, task_id, run_id, map_index):
    model_id = default_tuned_model_id(dag_id, task_id, run_id, map_index)
    assert len(model_id) <= 40
    assert API_RULE.fullmatch(model_id), model_id
    assert is_valid_tuned_model_id(model_id)


def test_default_id_is_stable_and_readable():
    first = default_tuned_model_id("tune_gemini", "create_tuned_model", "manual__1", -1)
    assert first == default_tuned_model_id("tune_gemini", "create_tuned_model", "manual__1", -1)
    assert first.startswith("tune-gemini-create-tuned-mode-")  # 29 readable characters
    assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{10}", first)


def test_default_id_differs_per_dag_task_run_and_map_index():
    base = ("dag", "task", "run-1", -1)
    variants = [
        ("dag2", "task", "run-1", -1),
        ("dag", "task2", "run-1", -1),
        ("dag", "task", "run-2", -1),
        ("dag", "task", "run-1", 0),
        ("dag", "task", "run-1", 1),
        # same slug ("dag-task"), different split: the hash covers the raw names
        ("dag-task", "", "run-1", -1),
    ]
    ids = {default_tuned_model_id(*base)} | {default_tuned_model_id(*v) for v in variants}
    assert len(ids) == len(variants) + 1


def test_long_names_that_share_a_prefix_still_differ():
    a = default_tuned_model_id("x" * 100, "task_a", "run", -1)
    b = default_tuned_model_id("x" * 100, "task_b", "run", -1)
    assert a != b
    assert a[:29] == b[:29]  # the readable part is truncated; the hash tells them apart


def _context(try_number: int, map_index: int = -1, run_id: str = "manual__1") -> dict:
    ti = SimpleNamespace(
        dag_id="tune_dag", task_id="tune", run_id=run_id, map_index=map_index, try_number=try_number
    )
    return {"ti": ti, "run_id": run_id}


def test_operator_id_is_the_same_on_every_try_and_differs_per_map_index():
    ids = {CreateTunedModelOperator.default_tuned_model_id(_context(t)) for t in (1, 2, 3, 7)}
    assert len(ids) == 1
    mapped = {CreateTunedModelOperator.default_tuned_model_id(_context(1, map_index=i)) for i in range(5)}
    assert len(mapped) == 5
    assert ids.isdisjoint(mapped)


def test_recreated_ids_are_valid_distinct_and_deterministic():
    base = default_tuned_model_id("a" * 80, "b", "run", -1)
    assert len(base) == 40
    recreated = [recreated_tuned_model_id(base, g) for g in range(2, 12)]
    assert len(set(recreated) | {base}) == 11
    assert all(len(i) <= 40 and TUNED_MODEL_ID_PATTERN.fullmatch(i) for i in recreated)
    assert recreated[0].endswith("-r2")
    assert recreated == [recreated_tuned_model_id(base, g) for g in range(2, 12)]
    assert recreated_tuned_model_id("my-model", 3) == "my-model-r3"
    with pytest.raises(ValueError, match="generation"):
        recreated_tuned_model_id(base, 1)


@pytest.mark.parametrize("bad", ["", "A", "1abc", "abc-", "a" * 41, "has_underscore", "tunedModels/x"])
def test_id_rule_rejects(bad):
    assert not is_valid_tuned_model_id(bad)


@pytest.mark.parametrize("good", ["a", "ab", "a1", "a-b-c", "a" * 40])
def test_id_rule_accepts(good):
    assert is_valid_tuned_model_id(good)


# --- provenance markers ----------------------------------------------------------------------------------

BODY = {
    "baseModel": "models/gemini-1.5-flash-001-tuning",
    "displayName": "numbers",
    "temperature": 0.5,
    "tuningTask": {
        "trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}},
        "hyperparameters": {"epochCount": 3},
    },
}
TI = ("dag", "task", "run-1", -1)


def test_the_marker_round_trips_through_the_description():
    ours = Provenance.of(*TI, "v1beta", BODY)
    assert re.fullmatch(r"\[airflow ti=[0-9a-f]{12} req=[0-9a-f]{12}\]", ours.marker)
    assert ours.describe(None) == ours.marker
    assert ours.describe("  ") == ours.marker
    assert ours.describe("adds one ") == f"adds one {ours.marker}"
    assert Provenance.parse(ours.describe("adds one")) == ours
    assert Provenance.parse(ours.describe("adds one") + "\n") == ours
    for description in (None, "", "adds one", f"{ours.marker} and then some text", 7):
        assert Provenance.parse(description) is None


def test_the_request_hash_covers_what_is_trained_not_what_can_be_updated():
    ours = Provenance.of(*TI, "v1beta", BODY)
    renamed = {**BODY, "displayName": "other", "temperature": 0.1, "description": "x"}
    assert Provenance.of(*TI, "v1beta", renamed) == ours
    other_data = {
        **BODY,
        "tuningTask": {**BODY["tuningTask"], "trainingData": {"examples": {"examples": []}}},
    }
    other_epochs = {**BODY, "tuningTask": {**BODY["tuningTask"], "hyperparameters": {"epochCount": 4}}}
    for body, version in ((other_data, "v1beta"), (other_epochs, "v1beta"), (BODY, "v1beta3")):
        changed = Provenance.of(*TI, version, body)
        assert changed.task_instance == ours.task_instance
        assert changed.request != ours.request
    for ti in (("dag", "task", "run-2", -1), ("dag", "task", "run-1", 0), ("dag2", "task", "run-1", -1)):
        moved = Provenance.of(*ti, "v1beta", BODY)
        assert (moved.task_instance != ours.task_instance, moved.request) == (True, ours.request)
