"""TunedModelSensor in poke, reschedule and deferrable mode against a scripted loopback API."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "triggers"))

from tuning_loopback import (
    MODEL,
    MODEL_PATH,
    OP,
    OP_PATH,
    ScriptedApi,
    api_key_connection,
    error,
    operation,
    set_connection,
    tuned_model,
)

from airflow_provider_tuning.exceptions import (
    InvalidInputError,
    NotFoundError,
    ServerError,
    TuningCancelledError,
    TuningFailedError,
)
from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.sensors.tuning import TunedModelSensor
from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

CONN_ID = "tuning_sensor_loopback"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedApi]:
    with ScriptedApi() as server:
        set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, server.url))
        yield server


def make_sensor(**kwargs: Any) -> TunedModelSensor:
    """A sensor whose hook does not retry (each failed poke is seen), with fast pokes."""
    options: dict[str, Any] = {"task_id": "wait_for_model", "conn_id": CONN_ID, "poke_interval": 0.01}
    options.update(kwargs)
    sensor = TunedModelSensor(**options)
    sensor.__dict__["hook"] = GenerativeLanguageHook(CONN_ID, retry=RetryPolicy(max_attempts=1))
    return sensor


def run_trigger(trigger: TuningOperationTrigger) -> dict[str, Any]:
    """Run a trigger the way the triggerer would (here: on a fresh event loop); one event."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), 20))
    assert len(events) == 1
    return events[0]


# -- poke / reschedule -----------------------------------------------------------------------------


def test_poke_false_while_creating_then_plain_json(api):
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("CREATING", 5), tuned_model("ACTIVE", 38))
    sensor = make_sensor(tuned_model_name=MODEL)
    assert sensor.poke({}) is False
    assert sensor.poke({}) is False
    done = sensor.poke({})
    assert done.is_done
    assert done.xcom_value["tuned_model"] == MODEL
    assert done.xcom_value["state"] == "ACTIVE"
    assert json.loads(json.dumps(done.xcom_value)) == done.xcom_value


def test_reschedule_mode_each_poke_is_a_fresh_instance(api):
    api.script(OP_PATH, operation(3), operation(38, done=True))
    first = make_sensor(operation_name=OP, mode="reschedule")
    assert first.reschedule
    assert first.poke({}) is False
    second = make_sensor(operation_name=OP, mode="reschedule")  # the task comes back later
    assert second.poke({}).xcom_value["completed_steps"] == 38


def test_poke_raises_on_failed_never_returns_false(api):
    message = "Tuning failed: the loss diverged."
    api.script(OP_PATH, operation(5, error={"code": 13, "message": message}))
    sensor = make_sensor(operation_name=OP)
    for _ in range(2):
        with pytest.raises(TuningFailedError, match="the loss diverged"):
            sensor.poke({})


def test_poke_on_failed_model_uses_the_operation_message(api):
    api.script(MODEL_PATH, tuned_model("FAILED"))
    api.script(
        f"/v1/{MODEL}/operations", {"operations": [operation(1, error={"code": 1, "message": "Cancelled."})]}
    )
    with pytest.raises(TuningCancelledError, match=r"Cancelled\."):
        make_sensor(tuned_model_name=MODEL).poke({})


def test_poke_mode_execute_returns_the_status(api):
    api.script(OP_PATH, operation(0), operation(20), operation(38, done=True))
    result = make_sensor(operation_name=OP, deferrable=False).execute({})
    assert result["state"] == "ACTIVE"
    assert result["tuned_model"] == MODEL
    assert result["snapshots"][-1]["step"] == 38
    polls = api.seen(OP_PATH)
    assert len(polls) == 4  # three partial polls, then one full read for the snapshots
    assert all("fields=" in seen.query for seen in polls[:3])
    assert "fields=" not in polls[3].query


def test_poke_mode_execute_fails_on_failed(api):
    api.script(OP_PATH, operation(2), operation(5, error={"code": 13, "message": "boom"}))
    with pytest.raises(TuningFailedError, match="boom"):
        make_sensor(operation_name=OP, deferrable=False).execute({})


def test_poke_mode_times_out(api):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    api.script(MODEL_PATH, tuned_model("CREATING"))
    with pytest.raises(AirflowSensorTimeout):
        make_sensor(tuned_model_name=MODEL, timeout=0.2, deferrable=False).execute({})
    assert len(api.seen(MODEL_PATH)) > 1


def test_transient_poke_failures_are_tolerated_up_to_the_limit(api):
    unavailable = error(503, "UNAVAILABLE", "unavailable")
    api.script(MODEL_PATH, unavailable, tuned_model("CREATING"), unavailable, unavailable, unavailable)
    sensor = make_sensor(tuned_model_name=MODEL, max_consecutive_failures=3)
    assert [sensor.poke({}) for _ in range(4)] == [False] * 4  # 503, CREATING (reset), 503, 503
    with pytest.raises(ServerError):
        sensor.poke({})  # third failure in a row


def test_reschedule_mode_gives_up_on_persistent_errors(api, monkeypatch):
    """Each reschedule is a new instance that remembers nothing: the budget is spent within a poke."""
    api.script(MODEL_PATH, error(503, "UNAVAILABLE", "unavailable"))
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    for _ in range(3):  # the task comes back again and again: every poke ends in the error
        sensor = make_sensor(tuned_model_name=MODEL, mode="reschedule", max_consecutive_failures=4)
        with pytest.raises(ServerError, match="unavailable"):
            sensor.poke({})
    assert len(api.seen(MODEL_PATH)) == 3 * 4
    assert len(sleeps) == 3 * 3  # the policy's backoff between the polls of one poke


def test_reschedule_mode_recovers_within_a_poke(api, monkeypatch):
    unavailable = error(503, "UNAVAILABLE", "unavailable")
    api.script(MODEL_PATH, unavailable, unavailable, tuned_model("CREATING"))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    sensor = make_sensor(tuned_model_name=MODEL, mode="reschedule", max_consecutive_failures=3)
    assert sensor.poke({}) is False
    assert len(api.seen(MODEL_PATH)) == 3


def test_404_fails_at_once(api):
    api.script(MODEL_PATH, error(404, "NOT_FOUND", f"Tuned model {MODEL} not found."))
    with pytest.raises(NotFoundError, match="not found"):
        make_sensor(tuned_model_name=MODEL).poke({})


# -- deferrable ------------------------------------------------------------------------------------


def test_deferrable_defers_with_an_absolute_deadline_then_completes(api):
    from airflow.providers.common.compat.sdk import TaskDeferred

    api.script(OP_PATH, operation(1), operation(10), operation(38, done=True))
    sensor = make_sensor(operation_name=OP, deferrable=True, timeout=600, poke_interval=0.01)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    after = time.time()
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, TuningOperationTrigger)
    _, kwargs = trigger.serialize()
    assert (kwargs["conn_id"], kwargs["name"], kwargs["poll_interval"]) == (CONN_ID, OP, 0.01)
    assert before + 600 <= kwargs["deadline"] <= after + 600
    assert deferred.timeout is not None  # a backstop after the trigger's own deadline
    assert deferred.timeout.total_seconds() > 600
    assert len(api.seen(OP_PATH)) == 1  # one check before deferring

    event = run_trigger(trigger)
    result = sensor.execute_complete({}, event)
    assert result["state"] == "ACTIVE"
    assert result["completed_percent"] == 100.0
    assert json.loads(json.dumps(result)) == result


def test_deferrable_does_not_defer_when_already_done(api):
    api.script(MODEL_PATH, tuned_model("ACTIVE", 38))
    result = make_sensor(tuned_model_name=MODEL, deferrable=True).execute({})
    assert result["state"] == "ACTIVE"


def test_deferrable_failure(api):
    from airflow.providers.common.compat.sdk import TaskDeferred

    message = "Tuning failed: out of quota."
    api.script(OP_PATH, operation(1), operation(4, error={"code": 13, "message": message}))
    sensor = make_sensor(operation_name=OP, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    event = run_trigger(info.value.trigger)
    assert event["status"] == "failed"
    with pytest.raises(TuningFailedError, match="out of quota") as failed:
        sensor.execute_complete({}, event)
    assert failed.value.code == 13


def test_deferrable_timeout(api):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

    api.script(MODEL_PATH, tuned_model("CREATING"))
    sensor = make_sensor(tuned_model_name=MODEL, deferrable=True, timeout=0.3)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    event = run_trigger(info.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match="deadline"):
        sensor.execute_complete({}, event)


def test_execute_complete_rejects_bad_events():
    from airflow_provider_tuning.exceptions import GenerativeLanguageError

    sensor = TunedModelSensor(task_id="t", tuned_model_name=MODEL)
    with pytest.raises(GenerativeLanguageError, match="unexpected trigger event"):
        sensor.execute_complete({}, None)
    with pytest.raises(ServerError):
        sensor.execute_complete(
            {}, {"status": "error", "message": "3 consecutive failures", "http_status": 503}
        )


# -- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"tuned_model_name": MODEL, "operation_name": OP},
        {"tuned_model_name": MODEL, "max_consecutive_failures": 0},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(InvalidInputError):
        TunedModelSensor(task_id="t", **kwargs)


def test_bad_rendered_name_fails_before_any_request(api):
    sensor = make_sensor(tuned_model_name="models/gemini-1.0-pro-001")
    with pytest.raises(InvalidInputError, match="neither a tuned model"):
        sensor.poke({})
    assert api.seen() == []


def test_names_are_templated():
    assert set(TunedModelSensor.template_fields) >= {
        "tuned_model_name",
        "operation_name",
        "conn_id",
        "api_version",
    }
    sensor = TunedModelSensor(task_id="t", tuned_model_name="{{ params.model }}", conn_id="{{ params.conn }}")
    sensor.render_template_fields({"params": {"model": MODEL, "conn": CONN_ID}})
    assert (sensor.tuned_model_name, sensor.conn_id) == (MODEL, CONN_ID)


def test_default_deferrable_follows_the_airflow_setting():
    from airflow.providers.common.compat.sdk import conf

    expected = conf.getboolean("operators", "default_deferrable", fallback=False)
    assert TunedModelSensor(task_id="t", tuned_model_name=MODEL).deferrable is expected


def test_importing_the_sensor_and_trigger_stays_light():
    """DAG files import these modules: no aiohttp, google-auth, requests-based hook or emulator."""
    import subprocess

    heavy = ["aiohttp", "google.auth", "airflow_provider_tuning.hooks.generative_language"]
    heavy += ["airflow_provider_tuning.hooks.credentials", "tuning_api_emulator"]
    code = (
        "import sys, airflow_provider_tuning.sensors.tuning, airflow_provider_tuning.triggers.tuning\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
