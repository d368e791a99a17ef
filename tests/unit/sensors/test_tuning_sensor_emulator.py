"""TunedModelSensor against the project's emulator, in poke and deferrable mode."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "triggers"))

from tuning_loopback import api_key_connection, create_tuned_model, set_connection

from airflow_provider_tuning.exceptions import TuningFailedError
from airflow_provider_tuning.sensors.tuning import TunedModelSensor
from tuning_api_emulator import Emulator

CONN_ID = "tuning_sensor_emulator"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(step_seconds=0.01) as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    emulator.reset()
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, emulator.url))
    return emulator


def deferred_run(sensor: TunedModelSensor) -> Any:
    """execute() -> TaskDeferred -> run the trigger as the triggerer would -> execute_complete()."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in info.value.trigger.run()]

    [event] = asyncio.run(asyncio.wait_for(collect(), 30))
    return getattr(sensor, info.value.method_name)({}, event)


def test_poke_mode_success(emu):
    op = create_tuned_model(emu.url, "sensor-poke", examples=15, epochs=2)
    sensor = TunedModelSensor(task_id="s", operation_name=op["name"], conn_id=CONN_ID, poke_interval=0.01)
    result = sensor.execute({})
    assert result["state"] == "ACTIVE"
    assert result["completed_steps"] == 15


def test_deferrable_success_for_a_model(emu):
    create_tuned_model(emu.url, "sensor-deferred", examples=60, epochs=2)
    sensor = TunedModelSensor(
        task_id="s", tuned_model_name="sensor-deferred", conn_id=CONN_ID, deferrable=True, poke_interval=0.01
    )
    result = deferred_run(sensor)
    assert result["tuned_model"] == "tunedModels/sensor-deferred"
    assert result["state"] == "ACTIVE"


def test_deferrable_failure(emu):
    op = create_tuned_model(
        emu.url, "sensor-fail", examples=60, epochs=2, display_name="x emulator:fail-at=40"
    )
    sensor = TunedModelSensor(
        task_id="s", operation_name=op["name"], conn_id=CONN_ID, deferrable=True, poke_interval=0.01
    )
    with pytest.raises(TuningFailedError, match="emulated failure"):
        deferred_run(sensor)


def test_reschedule_mode_poke_fails_on_failed(emu):
    create_tuned_model(emu.url, "sensor-resched", display_name="x emulator:fail-at=0")
    sensor = TunedModelSensor(
        task_id="s", tuned_model_name="sensor-resched", conn_id=CONN_ID, mode="reschedule"
    )
    with pytest.raises(TuningFailedError):
        sensor.poke({})
