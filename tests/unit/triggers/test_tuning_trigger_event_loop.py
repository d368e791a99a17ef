"""The trigger never blocks the event loop, even when its credentials need a (slow) token refresh.

Each run uses a fresh event loop in asyncio debug mode with ``slow_callback_duration = 0.02``:
asyncio then logs "Executing <...> took N seconds" on logger ``asyncio`` for any step that holds
the loop longer than 20 ms. The API and the token endpoint answer from another thread, and the
token endpoint takes 100 ms per answer, so a refresh on the loop would be caught.

Airflow's own async connection lookup (``get_async_connection`` -> ``amask_secret``) registers the
connection's secrets with the process-wide secrets masker, which recompiles one regex of every
secret registered so far, on the loop. In a long test session that has registered hundreds of
secrets this alone takes 0.1-0.4 s, so each run here starts, like a new triggerer process, with
an empty masker (restored afterwards).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tuning_loopback import (
    OP,
    OP_PATH,
    Reply,
    ScriptedApi,
    api_key_connection,
    create_tuned_model,
    error,
    operation,
    set_connection,
)

from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

SLOW = 0.02
CLIENT_SECRET = "loopback-client-secret-xyz"
REFRESH_TOKEN = "1//loopback-refresh-token-abc"


@pytest.fixture(autouse=True)
def fresh_secrets_masker() -> Iterator[None]:
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    saved = (set(masker.patterns), masker.replacer)
    masker.reset_masker()
    try:
        yield
    finally:
        masker.patterns, masker.replacer = saved


def run_in_debug_loop(coro_factory: Any, slow: float = SLOW) -> Any:
    """Run ``coro_factory()`` on a new event loop in debug mode with a ``slow`` (20 ms) callback limit."""
    loop = asyncio.new_event_loop()
    try:
        loop.set_debug(True)
        loop.slow_callback_duration = slow
        return loop.run_until_complete(asyncio.wait_for(coro_factory(), 20))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def slow_callback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "asyncio" and " took " in r.getMessage()]


async def _events(trigger: TuningOperationTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_the_detector_catches_a_blocking_call(caplog: pytest.LogCaptureFixture):
    """Control: the same setup does report a callback that blocks for 50 ms."""
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def blocking() -> None:
        time.sleep(0.05)

    run_in_debug_loop(blocking)
    assert any("Executing" in m for m in slow_callback_warnings(caplog))


def test_api_key_trigger_never_blocks_the_loop(
    api: ScriptedApi, conn_id: str, caplog: pytest.LogCaptureFixture
):
    api.script(
        OP_PATH,
        operation(1),
        error(503, "UNAVAILABLE", "unavailable"),
        error(429, "RESOURCE_EXHAUSTED", "quota", headers={"Retry-After": "0.01"}),
        operation(10),
        operation(38, done=True),
    )
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, poll_interval=0.01, retry_initial_delay=0.01)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    events = run_in_debug_loop(lambda: _events(trigger))
    assert [e["status"] for e in events] == ["success"]
    assert slow_callback_warnings(caplog) == []


def test_oauth_trigger_refreshes_tokens_off_the_loop(
    api: ScriptedApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """authorized_user credentials: the first request and the one after a 401 each need a refresh."""
    tokens = [
        Reply(
            {"access_token": f"ya29.loopback-token-{i}", "expires_in": 3600, "token_type": "Bearer"},
            delay=0.1,
        )
        for i in (1, 2)
    ]
    api.script("/token", *tokens, method="POST")
    api.script(
        OP_PATH,
        error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
        operation(5),
        operation(38, done=True),
    )
    keyfile = {
        "type": "authorized_user",
        "client_id": "loopback-client.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "token_uri": f"{api.url}/token",
    }
    conn = {
        "conn_type": "generativelanguage",
        "host": api.url,
        "extra": {"keyfile_dict": keyfile, "quota_project_id": "loopback-project"},
    }
    set_connection(monkeypatch, "tuning_oauth", json.dumps(conn))
    trigger = TuningOperationTrigger(conn_id="tuning_oauth", name=OP, poll_interval=0.01)
    caplog.set_level(logging.DEBUG, logger="asyncio")

    events = run_in_debug_loop(lambda: _events(trigger))

    assert [e["status"] for e in events] == ["success"]
    assert slow_callback_warnings(caplog) == []
    assert len(api.seen("/token", method="POST")) == 2  # first use, then after the 401
    auth = [r.headers.get("Authorization") for r in api.seen(OP_PATH)]
    assert auth == [
        "Bearer ya29.loopback-token-1",
        "Bearer ya29.loopback-token-2",
        "Bearer ya29.loopback-token-2",
    ]
    assert {r.headers.get("x-goog-user-project") for r in api.seen(OP_PATH)} == {"loopback-project"}
    assert "x-goog-api-key" not in {k.lower() for r in api.seen(OP_PATH) for k in r.headers}
    serialized = json.dumps(trigger.serialize()) + json.dumps(events)
    assert CLIENT_SECRET not in serialized
    assert REFRESH_TOKEN not in serialized


BIG_JOB_STEPS = 10_000
#: The longest step a 10,000-step job may hold the loop for (the project's goal for this size).
BIG_JOB_SLOW = 0.05


@pytest.fixture
def emulator_process() -> Iterator[str]:
    """The emulator CLI in a subprocess (its own GIL): jobs of 0.1 ms per step, any API key."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuning_api_emulator", "--port", "0", "--step-seconds", "0.0001"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            if found:
                url = found.group(0)
                break
        assert url, "the emulator did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_10000_step_job_never_holds_the_loop_and_its_event_stays_small(
    emulator_process: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """The emulator holds a finished job of 10,000 snapshots; the trigger asks only for state and
    progress counters, so no poll holds the loop and the event is a summary."""
    set_connection(monkeypatch, "tuning_big_job", api_key_connection("tuning_big_job", emulator_process))
    op = create_tuned_model(emulator_process, "big-job", examples=100, epochs=100, batch=1)
    assert op["metadata"]["totalSteps"] == BIG_JOB_STEPS
    time.sleep(1.5)  # 10,000 steps of 0.1 ms: the job is done with every snapshot
    trigger = TuningOperationTrigger(conn_id="tuning_big_job", name=op["name"], poll_interval=0.01)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    [event] = run_in_debug_loop(lambda: _events(trigger), slow=BIG_JOB_SLOW)
    assert event["status"] == "success"
    assert event["summary"]["completed_steps"] == BIG_JOB_STEPS
    assert len(json.dumps(event)) < 4096  # Airflow stores it in its database and prints it in the log
    assert slow_callback_warnings(caplog) == []


def test_a_server_that_ignores_fields_still_yields_a_small_event(api: ScriptedApi, conn_id: str):
    """Every snapshot arrives (about 2 MB); it is parsed off the loop and the event stays a summary."""
    api.script(OP_PATH, operation(BIG_JOB_STEPS, total=BIG_JOB_STEPS, done=True))
    [event] = run_in_debug_loop(lambda: _events(TuningOperationTrigger(conn_id=conn_id, name=OP)))
    assert event["status"] == "success"
    assert event["summary"]["completed_steps"] == BIG_JOB_STEPS
    assert len(json.dumps(event)) < 4096


def test_a_failed_10000_step_job_yields_a_small_event(api: ScriptedApi, conn_id: str):
    message = "Tuning failed: " + "x" * 20_000  # even an enormous API message is cut
    api.script(OP_PATH, operation(BIG_JOB_STEPS, total=BIG_JOB_STEPS, error={"code": 13, "message": message}))
    [event] = run_in_debug_loop(lambda: _events(TuningOperationTrigger(conn_id=conn_id, name=OP)))
    assert (event["status"], event["code"]) == ("failed", 13)
    assert event["message"].startswith("Tuning failed: xxx")
    assert len(json.dumps(event)) < 4096
