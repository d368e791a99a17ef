"""CreateTunedModelOperator pushes the tuned model's name to XCom (key ``tuned_model``) as soon as it
is known, so a teardown can delete the model even when the task fails afterwards."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_tuning.exceptions import TuningFailedError
from airflow_provider_tuning.operators.tuning import TUNED_MODEL_XCOM_KEY
from tests.unit.operators.test_tuning_create import FakeHook, expected_id, make_context, make_operator, ours


def test_the_key_is_tuned_model():
    assert TUNED_MODEL_XCOM_KEY == "tuned_model"


def test_the_name_is_pushed_right_after_create_before_the_deferral(monkeypatch):
    fake = FakeHook()
    op = make_operator(fake, monkeypatch, deferrable=True)
    context = make_context()
    with pytest.raises(TaskDeferred):
        op.execute(context)
    assert context["ti"].xcoms[TUNED_MODEL_XCOM_KEY] == f"tunedModels/{expected_id(context)}"


def test_the_name_is_in_xcom_when_the_job_fails_during_the_wait(monkeypatch):
    fake = FakeHook(fail_with="Tuning diverged.")
    op = make_operator(fake, monkeypatch)
    context = make_context()
    with pytest.raises(AirflowFailException, match="diverged") as info:
        op.execute(context)
    assert isinstance(info.value.__cause__, TuningFailedError)
    assert context["ti"].xcoms[TUNED_MODEL_XCOM_KEY] == f"tunedModels/{expected_id(context)}"


def test_a_retry_that_reattaches_to_a_failed_model_pushes_its_name_before_failing(monkeypatch):
    fake = FakeHook()
    context = make_context(try_number=2)
    name = fake.seed(
        expected_id(context), "FAILED", error="Tuning job ran out of quota.", description=ours(context)
    )
    op = make_operator(fake, monkeypatch)
    with pytest.raises(AirflowFailException) as info:
        op.execute(context)
    assert isinstance(info.value.__cause__, TuningFailedError)
    assert context["ti"].xcoms[TUNED_MODEL_XCOM_KEY] == name


def test_a_reattach_to_an_active_model_pushes_its_name(monkeypatch):
    fake = FakeHook()
    context = make_context(try_number=3)
    name = fake.seed(expected_id(context), "ACTIVE", description=ours(context))
    op = make_operator(fake, monkeypatch)
    assert op.execute(context)["tuned_model"] == name
    assert context["ti"].xcoms[TUNED_MODEL_XCOM_KEY] == name


def test_a_model_of_another_base_model_is_not_claimed(monkeypatch):
    fake = FakeHook()
    fake.seed("my-model", "ACTIVE", base_model="models/text-bison-001")
    op = make_operator(fake, monkeypatch, tuned_model_id="my-model")
    context = make_context()
    with pytest.raises(AirflowFailException):
        op.execute(context)
    assert TUNED_MODEL_XCOM_KEY not in context["ti"].xcoms


def test_invalid_input_pushes_nothing(monkeypatch):
    fake = FakeHook()
    op = make_operator(fake, monkeypatch, training_data=[{"text_input": "only input"}])
    context = make_context()
    with pytest.raises(AirflowFailException):
        op.execute(context)
    assert TUNED_MODEL_XCOM_KEY not in context["ti"].xcoms
    assert fake.calls == []
