"""TuningOperationTrigger against the project's emulator: models created with plain requests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import structlog.testing
from tuning_loopback import API_KEY, api_key_connection, create_tuned_model, set_connection

from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger
from tuning_api_emulator import Emulator

CONN_ID = "tuning_emulator"
FAST = {"poll_interval": 0.01, "retry_initial_delay": 0.01, "retry_max_delay": 0.02}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(step_seconds=0.01) as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    emulator.reset()
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, emulator.url))
    return emulator


async def run_trigger(trigger: TuningOperationTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), 30)


async def test_operation_success(emu: Emulator):
    op = await asyncio.to_thread(
        create_tuned_model, emu.url, "emu-trigger-ok", examples=15, epochs=2, batch=2
    )
    assert op["metadata"]["totalSteps"] == 15  # ceil(15 * 2 / 2)
    with structlog.testing.capture_logs() as logs:
        events = await run_trigger(TuningOperationTrigger(conn_id=CONN_ID, name=op["name"], **FAST))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert event["tuned_model"] == "tunedModels/emu-trigger-ok"
    assert event["summary"]["done"] is True
    assert event["summary"]["state"] == "ACTIVE"
    assert len(json.dumps(event)) < 1024
    prefix = "tunedModels/emu-trigger-ok: "
    formatted = [e["event"] % e["positional_args"] if e.get("positional_args") else e["event"] for e in logs]
    lines = [m for m in formatted if m.startswith(prefix)]
    assert len(lines) > 2
    assert len(lines) == len(set(lines))  # each progress line once
    assert lines[-1].startswith(f"{prefix}100% step 15/15")


async def test_model_only_flow_gemini_and_palm(emu: Emulator):
    await asyncio.to_thread(create_tuned_model, emu.url, "emu-gemini")
    await asyncio.to_thread(
        create_tuned_model, emu.url, "emu-palm", version="v1beta3", base_model="models/text-bison-001"
    )
    gemini = TuningOperationTrigger(conn_id=CONN_ID, name="tunedModels/emu-gemini", **FAST)
    palm = TuningOperationTrigger(conn_id=CONN_ID, name="emu-palm", api_version="v1beta3", **FAST)
    [[first], [second]] = await asyncio.gather(run_trigger(gemini), run_trigger(palm))
    assert (first["status"], first["summary"]["state"]) == ("success", "ACTIVE")
    assert (second["status"], second["tuned_model"]) == ("success", "tunedModels/emu-palm")
    paths = {entry["path"] for entry in emu.request_log if entry["method"] == "GET"}
    assert {"/v1beta/tunedModels/emu-gemini", "/v1beta3/tunedModels/emu-palm"} <= paths


async def test_failed_job_yields_the_emulator_message(emu: Emulator):
    op = await asyncio.to_thread(
        create_tuned_model, emu.url, "emu-trigger-fail", display_name="doomed emulator:fail-at=2"
    )
    [event] = await run_trigger(TuningOperationTrigger(conn_id=CONN_ID, name=op["name"], **FAST))
    assert (event["status"], event["code"], event["state"]) == ("failed", 13, "FAILED")
    assert "emulated failure" in event["message"]

    [by_model] = await run_trigger(TuningOperationTrigger(conn_id=CONN_ID, name="emu-trigger-fail", **FAST))
    assert by_model["status"] == "failed"
    assert by_model["message"] == event["message"]  # read from the model's operation


async def test_cancelled_job(emu: Emulator):
    op = await asyncio.to_thread(create_tuned_model, emu.url, "emu-cancel", examples=200, epochs=5)
    cancel = await asyncio.to_thread(
        requests.post,
        f"{emu.url}/v1/{op['name']}:cancel",
        json={},
        headers={"x-goog-api-key": API_KEY},
        timeout=10,
    )
    assert cancel.status_code == 200
    [event] = await run_trigger(TuningOperationTrigger(conn_id=CONN_ID, name=op["name"], **FAST))
    assert (event["status"], event["state"], event["code"]) == ("failed", "CANCELLED", 1)


async def test_injected_503s_and_429s_still_finish_with_one_event(emu: Emulator):
    op = await asyncio.to_thread(create_tuned_model, emu.url, "emu-faults", examples=15, epochs=3)
    emu.set_faults(match="GetOperation", error_503=0.3, error_429=0.3, retry_after=0, seed=11)
    trigger = TuningOperationTrigger(conn_id=CONN_ID, name=op["name"], max_consecutive_failures=20, **FAST)
    events = await run_trigger(trigger)
    assert [e["status"] for e in events] == ["success"]
    statuses = [entry["status"] for entry in emu.request_log if entry.get("rpc") == "GetOperation"]
    assert 503 in statuses
    assert 429 in statuses
    assert statuses[-1] == 200


async def test_timeout_by_deadline(emu: Emulator):
    op = await asyncio.to_thread(create_tuned_model, emu.url, "emu-slow", examples=500, epochs=10)
    deadline = time.time() + 0.3
    trigger = TuningOperationTrigger(conn_id=CONN_ID, name=op["name"], deadline=deadline, **FAST)
    [event] = await run_trigger(trigger)
    assert (event["status"], event["deadline"]) == ("timeout", deadline)
    assert event["progress"].startswith(("0%", "1%", "2%", "3%"))


async def test_unknown_operation_fails_with_the_emulator_404(emu: Emulator):
    name = "tunedModels/nobody/operations/nothing"
    [event] = await run_trigger(TuningOperationTrigger(conn_id=CONN_ID, name=name, **FAST))
    assert (event["status"], event["http_status"], event["code"]) == ("failed", 404, 5)
    assert "does not exist" in event["message"]
