"""The one module for resource names and argument validation."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from airflow_provider_tuning import validation as v
from airflow_provider_tuning.exceptions import InvalidInputError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("abc", "tunedModels/abc"),
        (" tunedModels/abc-1 ", "tunedModels/abc-1"),
        ("tunedModels/abc/operations/op-1", "tunedModels/abc/operations/op-1"),
    ],
)
def test_tuning_name_normalises_models_and_operations(given, expected):
    assert v.tuning_name(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "tunedModels/../models",
        "tunedModels/a/operations/..",
        "tunedModels/a?x=1",
        "tunedModels/a#frag",
        "tunedModels//a",
        "tunedModels/a/operations/",
        "models/x",
        "",
        None,
        5,
    ],
)
def test_tuning_name_rejects_anything_that_could_reach_another_route(bad):
    with pytest.raises(InvalidInputError):
        v.tuning_name(bad)


def test_names_of_each_kind():
    assert v.tuned_model_name("x1") == "tunedModels/x1"
    assert v.operation_name("tunedModels/x/operations/y") == "tunedModels/x/operations/y"
    assert v.tuned_model_of("tunedModels/x/operations/y") == "tunedModels/x"
    assert v.model_name("gemini-pro") == "models/gemini-pro"
    assert v.model_name("tunedModels/t") == "tunedModels/t"
    assert v.base_model_name("text-bison-001") == "models/text-bison-001"
    assert v.permission_name("tunedModels/t/permissions/p") == "tunedModels/t/permissions/p"
    with pytest.raises(InvalidInputError, match="base model"):
        v.base_model_name("tunedModels/t")
    with pytest.raises(InvalidInputError):
        v.model_name("tunedModels/t", allow_tuned=False)
    with pytest.raises(InvalidInputError):
        v.operation_name("tunedModels/t")
    with pytest.raises(InvalidInputError):
        v.permission_name("tunedModels/t/permissions/../x")


@pytest.mark.parametrize("good", ["a", "abc-123", "a" * 40])
def test_tuned_model_id_accepts_the_api_rule(good):
    assert v.tuned_model_id(good) == good
    assert v.tuned_model_id(f"tunedModels/{good}") == good


@pytest.mark.parametrize("bad", ["A", "1abc", "abc-", "a" * 41, "a_b", "", None])
def test_tuned_model_id_rejects_what_the_api_rejects(bad):
    with pytest.raises(InvalidInputError):
        v.tuned_model_id(bad)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "inf", "nan", "x", True, None])
def test_numbers_are_finite(bad):
    with pytest.raises(InvalidInputError, match="finite number"):
        v.number("x", bad)
    with pytest.raises(InvalidInputError):
        v.seconds("poll_interval", bad)


def test_number_bounds_and_strings():
    assert v.number("t", "0.5", minimum=0, maximum=1) == 0.5
    with pytest.raises(InvalidInputError, match=r"must be > 0"):
        v.number("lr", 0, minimum=0, exclusive_minimum=True)
    with pytest.raises(InvalidInputError, match=r"<= 1"):
        v.number("t", 1.5, minimum=0, maximum=1)


def test_seconds_take_timedeltas_and_refuse_zero_unless_allowed():
    assert v.seconds("timeout", timedelta(minutes=2)) == 120.0
    assert v.seconds("poll_interval", 0, allow_zero=True) == 0.0
    with pytest.raises(InvalidInputError):
        v.seconds("timeout", 0)
    with pytest.raises(InvalidInputError):
        v.seconds("timeout", timedelta(seconds=-1))


def test_integers():
    assert v.positive_int("n", "7") == 7
    assert v.failure_budget(3) == 3
    assert v.page_size(None) is None
    assert v.page_size(1000) == 1000
    for bad in (0, -1, 1.5, "1.5", True, "x"):
        with pytest.raises(InvalidInputError):
            v.positive_int("n", bad)
    with pytest.raises(InvalidInputError, match="at most 1000"):
        v.page_size(1001)


def test_text_refuses_lone_surrogates_and_names_the_place():
    assert v.optional_string("display_name", "ok", max_length=40) == "ok"
    with pytest.raises(InvalidInputError, match=r"display_name contains a lone surrogate .* character 2"):
        v.optional_string("display_name", "ab\ud800")
    with pytest.raises(InvalidInputError, match="at most 3"):
        v.optional_string("x", "abcd", max_length=3)


def test_quote_shortens_long_values():
    assert v.quote("a" * 100, limit=5) == "'aaaaa...'"
    assert v.quote(5) == "5"


def test_service_account_emails():
    email = "tuning@my-project.iam.gserviceaccount.com"
    assert v.service_account_email(email) == email
    assert v.service_account_email(None) is None
    assert v.service_account_email("") is None  # a template rendered empty: no service account
    for bad in ("tuning-sa", "tuning@", "@my-project.iam.gserviceaccount.com", "a b@c.com"):
        with pytest.raises(InvalidInputError, match="service_account must be a service account email"):
            v.service_account_email(bad)


def test_kms_key_names():
    key = "projects/my-project/locations/us-central1/keyRings/tuning/cryptoKeys/datasets"
    assert v.kms_key_name(key) == key
    assert v.kms_key_name(None) is None
    for bad in (
        "my-key",
        "projects/my-project/locations/us-central1/keyRings/tuning",
        "projects/My Project/locations/us-central1/keyRings/r/cryptoKeys/k",
        f"{key}/cryptoKeyVersions/1",
    ):
        with pytest.raises(InvalidInputError, match="kms_key_name must be 'projects/<project>/locations/"):
            v.kms_key_name(bad)
