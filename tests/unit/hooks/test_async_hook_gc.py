"""The triggerer's full garbage collections: raised once per process, never lowered, configurable."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.hooks import async_hook

OPTION = "AIRFLOW__GENERATIVE_LANGUAGE__TRIGGER_GC_FULL_COLLECTION_THRESHOLD"


@pytest.fixture(autouse=True)
def restore_thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = gc.get_threshold()
    monkeypatch.setattr(async_hook, "_GC_TUNED", False)
    monkeypatch.delenv(OPTION, raising=False)
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_default_raises_the_third_threshold_once():
    async_hook.raise_full_collection_threshold()
    assert gc.get_threshold() == (700, 10, async_hook.DEFAULT_GC_FULL_COLLECTION_THRESHOLD)
    gc.set_threshold(700, 10, 10)
    async_hook.raise_full_collection_threshold()  # once per process
    assert gc.get_threshold() == (700, 10, 10)


def test_it_never_lowers_and_zero_leaves_it(monkeypatch: pytest.MonkeyPatch):
    gc.set_threshold(700, 10, 5000)
    async_hook.raise_full_collection_threshold()
    assert gc.get_threshold() == (700, 10, 5000)
    monkeypatch.setattr(async_hook, "_GC_TUNED", False)
    monkeypatch.setenv(OPTION, "0")
    gc.set_threshold(700, 10, 10)
    async_hook.raise_full_collection_threshold()
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_a_bad_value_names_the_option(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv(OPTION, value)
    with pytest.raises(
        InvalidInputError, match="trigger_gc_full_collection_threshold must be a whole number"
    ):
        async_hook.raise_full_collection_threshold()
    assert gc.get_threshold() == (700, 10, 10)
