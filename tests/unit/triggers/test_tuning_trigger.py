"""TuningOperationTrigger against a scripted loopback API (real HTTP through aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from typing import Any

import pytest
import structlog.testing
from tuning_loopback import (
    API_KEY,
    MODEL,
    MODEL_PATH,
    OP,
    OP_PATH,
    Reply,
    ScriptedApi,
    api_key_connection,
    error,
    operation,
    set_connection,
    tuned_model,
)

from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.hooks import async_hook as async_hook_module
from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

FAST = {"poll_interval": 0.01, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}


async def run_trigger(trigger: TuningOperationTrigger, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Run the trigger to its end and return every event payload it yielded."""

    async def _collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(_collect(), timeout)


def messages(logs: list[dict[str, Any]], level: str | None = None) -> list[str]:
    """The formatted messages captured by ``structlog.testing.capture_logs``."""
    out = []
    for entry in logs:
        if level and entry.get("log_level") != level:
            continue
        args = entry.get("positional_args") or ()
        out.append(entry["event"] % args if args else entry["event"])
    return out


def progress_lines(logs: list[dict[str, Any]]) -> list[str]:
    return [m.split(": ", 1)[1] for m in messages(logs, "info") if m.startswith(f"{MODEL}: ")]


# -- success, failure, timeout ---------------------------------------------------------------------


async def test_success_logs_progress_only_when_it_changes(api: ScriptedApi, conn_id: str):
    api.script(
        OP_PATH,
        operation(0),
        operation(0),
        operation(10),
        operation(10),
        operation(10),
        operation(20),
        operation(38, done=True),
    )
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST)
    with structlog.testing.capture_logs() as logs:
        events = await run_trigger(trigger)

    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert event["tuned_model"] == MODEL
    assert event["summary"]["state"] == "ACTIVE"
    assert (event["summary"]["completed_steps"], event["summary"]["total_steps"]) == (38, 38)
    assert event["summary"]["operation"] == OP
    assert json.loads(json.dumps(event)) == event  # plain JSON
    assert "snapshots" not in json.dumps(event)
    assert len(api.seen(OP_PATH)) == 7
    assert progress_lines(logs) == [
        "0% step 0/38",
        "26% step 10/38 epoch 1 loss 1.45",
        "52% step 20/38 epoch 2 loss 0.762",
        "100% step 38/38 epoch 5 loss 0.41 ACTIVE",
    ]
    # The key travels only in its header: never in the URL, a log line or the event.
    assert {r.headers.get("x-goog-api-key") for r in api.seen(OP_PATH)} == {API_KEY}
    assert all(r.query.startswith("fields=") and "key" not in r.query for r in api.seen(OP_PATH))
    assert API_KEY not in json.dumps(event)
    assert not any(API_KEY in m for m in messages(logs))


async def test_success_event_never_carries_training_data(api: ScriptedApi, conn_id: str):
    done = operation(38, done=True)
    done["response"]["tuningTask"]["trainingData"] = {
        "examples": {"examples": [{"textInput": "1", "output": "2"}]}
    }
    api.script(OP_PATH, done)
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert event["status"] == "success"
    assert "trainingData" not in json.dumps(event)
    assert "examples" not in json.dumps(event)


async def test_failed_operation_yields_the_api_message(api: ScriptedApi, conn_id: str):
    message = "Tuning failed: the loss diverged at step 6."
    api.script(OP_PATH, operation(5), operation(5, error={"code": 13, "message": message}))
    events = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "failed"
    assert (event["message"], event["code"], event["state"]) == (message, 13, "FAILED")
    assert event["tuned_model"] == MODEL
    assert event["summary"]["error"] == {"code": 13, "message": message}


async def test_cancelled_operation(api: ScriptedApi, conn_id: str):
    api.script(OP_PATH, operation(5, error={"code": 1, "message": "Operation was cancelled."}))
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert (event["status"], event["state"], event["code"]) == ("failed", "CANCELLED", 1)


async def test_model_only_flow_creating_then_active(api: ScriptedApi, conn_id: str):
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("CREATING", 7), tuned_model("ACTIVE", 38))
    with structlog.testing.capture_logs() as logs:
        [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=MODEL, **FAST))
    assert event["status"] == "success"
    assert event["summary"]["state"] == "ACTIVE"
    assert event["summary"]["tuned_model"] == MODEL
    assert event["summary"]["operation"] is None
    assert progress_lines(logs) == ["CREATING", "step 7 epoch 0 loss 2", "step 38 epoch 5 loss 0.41 ACTIVE"]


async def test_model_only_flow_bare_id_and_api_version(api: ScriptedApi, conn_id: str):
    api.script(f"/v1beta3/{MODEL}", tuned_model("ACTIVE", 3))
    trigger = TuningOperationTrigger(conn_id=conn_id, name=MODEL.split("/")[1], api_version="v1beta3", **FAST)
    [event] = await run_trigger(trigger)
    assert event["status"] == "success"
    assert len(api.seen(f"/v1beta3/{MODEL}")) == 1


async def test_model_only_flow_failed_reads_the_error_of_its_operation(api: ScriptedApi, conn_id: str):
    message = "Tuning failed: training examples too long."
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("FAILED", 2))
    api.script(
        f"/v1/{MODEL}/operations", {"operations": [operation(2, error={"code": 3, "message": message})]}
    )
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=MODEL, **FAST))
    assert (event["status"], event["state"]) == ("failed", "FAILED")
    assert (event["message"], event["code"]) == (message, 3)
    assert event["summary"]["state"] == "FAILED"


async def test_model_only_flow_failed_without_operations_still_fails(api: ScriptedApi, conn_id: str):
    api.script(MODEL_PATH, tuned_model("FAILED"))  # the operations route is not scripted: 404
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=MODEL, **FAST))
    assert event["status"] == "failed"
    assert event["message"] == f"tuned model {MODEL} is in state FAILED"


async def test_timeout_by_deadline(api: ScriptedApi, conn_id: str):
    api.script(OP_PATH, operation(3))
    deadline = time.time() + 0.3
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, deadline=deadline, **FAST)
    events = await run_trigger(trigger)
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "timeout"
    assert event["deadline"] == deadline
    assert event["progress"] == "7% step 3/38 epoch 0 loss 4"
    assert "did not finish before its deadline" in event["message"]
    assert time.time() >= deadline
    assert len(api.seen(OP_PATH)) > 1  # it kept polling until then


async def test_deadline_survives_a_restart(api: ScriptedApi, conn_id: str):
    """A trigger re-created from serialize() keeps the absolute deadline."""
    api.script(OP_PATH, operation(3))
    first = TuningOperationTrigger(conn_id=conn_id, name=OP, deadline=time.time() + 0.4, **FAST)
    classpath, kwargs = first.serialize()

    task = asyncio.ensure_future(run_trigger(first))
    await asyncio.sleep(0.1)
    task.cancel()  # the triggerer stops ...
    with pytest.raises(asyncio.CancelledError):
        await task

    module, _, name = classpath.rpartition(".")
    restarted = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert restarted.deadline == first.deadline
    [event] = await run_trigger(restarted)  # ... and another one picks the trigger up
    assert event["status"] == "timeout"
    assert event["deadline"] == first.deadline
    assert time.time() >= first.deadline


async def test_restart_after_the_deadline_times_out_after_one_last_look(api: ScriptedApi, conn_id: str):
    api.script(OP_PATH, operation(3))
    kwargs = TuningOperationTrigger(
        conn_id=conn_id, name=OP, deadline=time.time() + 3600, **FAST
    ).serialize()[1]
    kwargs["deadline"] = time.time() - 5  # the triggerer was down past the deadline
    [event] = await run_trigger(TuningOperationTrigger(**kwargs))
    assert event["status"] == "timeout"
    assert len(api.seen(OP_PATH)) == 1


async def test_finished_job_seen_at_the_deadline_is_a_success(api: ScriptedApi, conn_id: str):
    api.script(OP_PATH, operation(38, done=True))
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, deadline=time.time() - 1, **FAST)
    [event] = await run_trigger(trigger)
    assert event["status"] == "success"


# -- transient errors ------------------------------------------------------------------------------


async def test_503s_and_429_with_retry_after_then_success(api: ScriptedApi, conn_id: str):
    api.script(
        OP_PATH,
        operation(1),
        error(503, "UNAVAILABLE", "The service is currently unavailable."),
        error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", headers={"Retry-After": "0.25"}),
        error(503, "UNAVAILABLE", "The service is currently unavailable."),
        error(500, "INTERNAL", "Internal error."),
        operation(38, done=True),
    )
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, max_consecutive_failures=5, **FAST)
    with structlog.testing.capture_logs() as logs:
        events = await run_trigger(trigger)
    assert [e["status"] for e in events] == ["success"]
    assert len(api.seen(OP_PATH)) == 6
    warnings = messages(logs, "warning")
    assert len(warnings) == 4
    assert "transient failure 1/5" in warnings[0]
    assert "503" in warnings[0]
    # Retry-After (0.25 s) replaces the backoff (at most retry_max_delay 0.05 s otherwise) ...
    assert "429 RESOURCE_EXHAUSTED: Quota exceeded." in warnings[1]
    assert warnings[1].endswith("retrying in 0.05s")  # ... capped by retry_max_delay
    assert "transient failure 4/5" in warnings[3]


async def test_retry_after_is_honoured_up_to_the_cap(api: ScriptedApi, conn_id: str):
    api.script(
        OP_PATH,
        error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", headers={"Retry-After": "0.2"}),
        operation(38, done=True),
    )
    trigger = TuningOperationTrigger(
        conn_id=conn_id, name=OP, poll_interval=0.01, retry_initial_delay=0.01, retry_max_delay=1.0
    )
    with structlog.testing.capture_logs() as logs:
        [event] = await run_trigger(trigger)
    assert event["status"] == "success"
    [warning] = messages(logs, "warning")
    assert warning.endswith("retrying in 0.20s")
    first, second = api.seen(OP_PATH)
    assert second.time - first.time >= 0.2


async def test_connection_drops_timeouts_and_non_json_are_transient(api: ScriptedApi, conn_id: str):
    api.script(
        OP_PATH,
        Reply(drop=True),
        Reply(drop=True),  # aiohttp itself retries an idempotent request once after a drop
        Reply(text="<html><body>502 Bad Gateway</body></html>", status=200),
        Reply({"name": OP, "done": "perhaps"}),  # JSON of the wrong shape
        Reply(operation(1), delay=0.6),  # slower than request_timeout
        operation(38, done=True),
    )
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, request_timeout=0.2, **FAST)
    with structlog.testing.capture_logs() as logs:
        [event] = await run_trigger(trigger)
    assert event["status"] == "success"
    warnings = messages(logs, "warning")
    assert len(warnings) == 4
    assert "ServerDisconnectedError" in warnings[0] or "ClientOSError" in warnings[0]
    assert "response is not JSON" in warnings[1]
    assert "502 Bad Gateway" in warnings[1]
    assert "Operation.done is not a boolean" in warnings[2]
    assert "timed out" in warnings[3]


async def test_n_consecutive_failures_yield_one_error_event(api: ScriptedApi, conn_id: str):
    api.script(OP_PATH, error(503, "UNAVAILABLE", "Backend unavailable."))
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, max_consecutive_failures=3, **FAST)
    events = await run_trigger(trigger)
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "error"
    assert (event["failures"], event["http_status"]) == (3, 503)
    assert "3 consecutive failures" in event["message"]
    assert "Backend unavailable." in event["message"]
    assert len(api.seen(OP_PATH)) == 3


async def test_only_consecutive_failures_count(api: ScriptedApi, conn_id: str):
    unavailable = error(503, "UNAVAILABLE", "Backend unavailable.")
    api.script(
        OP_PATH, unavailable, unavailable, operation(3), unavailable, unavailable, operation(38, done=True)
    )
    trigger = TuningOperationTrigger(conn_id=conn_id, name=OP, max_consecutive_failures=3, **FAST)
    [event] = await run_trigger(trigger)
    assert event["status"] == "success"
    assert len(api.seen(OP_PATH)) == 6


async def test_unreachable_api_yields_an_error_event(monkeypatch: pytest.MonkeyPatch):
    with ScriptedApi() as gone:
        url = gone.url
    set_connection(monkeypatch, "tuning_gone", api_key_connection("tuning_gone", url))
    trigger = TuningOperationTrigger(conn_id="tuning_gone", name=OP, max_consecutive_failures=2, **FAST)
    [event] = await run_trigger(trigger)
    assert event["status"] == "error"
    assert event["http_status"] is None
    assert "ClientConnectorError" in event["message"] or "Cannot connect" in event["message"]


# -- permanent errors ------------------------------------------------------------------------------


async def test_404_yields_a_failed_event_with_the_api_message(api: ScriptedApi, conn_id: str):
    api.script(OP_PATH, error(404, "NOT_FOUND", f"Operation {OP} not found."))
    events = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert events == [
        {
            "status": "failed",
            "tuned_model": MODEL,
            "name": OP,
            "message": f"Operation {OP} not found.",
            "code": 5,
            "state": None,
            "http_status": 404,
            "rpc_status": "NOT_FOUND",
        }
    ]
    assert len(api.seen(OP_PATH)) == 1  # never retried


async def test_403_is_not_retried(api: ScriptedApi, conn_id: str):
    api.script(MODEL_PATH, error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."))
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=MODEL, **FAST))
    assert (event["status"], event["http_status"], event["code"]) == ("failed", 403, 7)
    assert event["message"] == "Method doesn't allow unregistered callers."
    assert len(api.seen(MODEL_PATH)) == 1


async def test_401_to_an_api_key_is_final(api: ScriptedApi, conn_id: str):
    """An API key cannot be refreshed (as in the sync hook): the 401 ends the wait at once."""
    api.script(OP_PATH, error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert (event["status"], event["http_status"]) == ("failed", 401)
    assert event["message"] == "Request had invalid authentication credentials."
    assert len(api.seen(OP_PATH)) == 1


async def test_missing_connection_yields_an_error_event(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AIRFLOW_CONN_TUNING_NOWHERE", raising=False)
    [event] = await run_trigger(TuningOperationTrigger(conn_id="tuning_nowhere", name=OP, **FAST))
    assert event["status"] == "error"
    assert "tuning_nowhere" in event["message"]


async def test_bad_connection_yields_an_error_event_without_the_secret(monkeypatch: pytest.MonkeyPatch):
    secret = "do-not-leak-this-key-42"
    conn = json.dumps(
        {"conn_type": "generativelanguage", "host": "http://api.example.com", "password": secret}
    )
    set_connection(monkeypatch, "tuning_plain_http", conn)
    [event] = await run_trigger(TuningOperationTrigger(conn_id="tuning_plain_http", name=OP, **FAST))
    assert event["status"] == "error"
    assert "ConnectionConfigError" in event["message"]
    assert "loopback" in event["message"]
    assert secret not in json.dumps(event)


# -- serialization and construction ----------------------------------------------------------------


def test_serialize_round_trips_and_holds_no_secret():
    trigger = TuningOperationTrigger(
        conn_id="generative_language_default",
        name=OP,
        api_version="v1beta3",
        poll_interval=12,
        deadline=1_900_000_000.5,
        max_consecutive_failures=7,
        request_timeout=30,
        retry_initial_delay=0.5,
        retry_max_delay=9,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_tuning.triggers.tuning.TuningOperationTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "conn_id": "generative_language_default",
        "name": OP,
        "api_version": "v1beta3",
        "poll_interval": 12.0,
        "deadline": 1_900_000_000.5,
        "max_consecutive_failures": 7,
        "request_timeout": 30.0,
        "retry_initial_delay": 0.5,
        "retry_max_delay": 9.0,
        "backend": "gemini",
        "cancel_on_kill": False,
    }
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_airflow_serializes_the_trigger_kwargs():
    from airflow.serialization.serialized_objects import BaseSerialization

    _, kwargs = TuningOperationTrigger(conn_id="c", name=MODEL, deadline=1_900_000_000.0).serialize()
    encoded = BaseSerialization.serialize(kwargs)
    assert BaseSerialization.deserialize(encoded) == kwargs


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "models/gemini-1.0-pro"}, "neither a tuned model"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": "tunedModels/x/operations/.."}, "neither a tuned model"),
        ({"name": "tunedModels/x?alt=media"}, "neither a tuned model"),
        ({"name": "tunedModels/x#frag"}, "neither a tuned model"),
        ({"poll_interval": float("inf")}, "poll_interval must be a finite number"),
        ({"poll_interval": float("nan")}, "poll_interval must be a finite number"),
        ({"deadline": float("inf")}, "deadline must be a finite number"),
        ({"retry_max_delay": float("inf")}, "retry_max_delay must be a finite number"),
        ({"request_timeout": float("nan")}, "request_timeout must be a finite number"),
        ({"backend": "palm"}, "unknown tuning backend"),
        ({"conn_id": ""}, "conn_id"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"api_version": "v2"}, "api_version must be one of"),
        ({"operation_api_version": "v1alpha"}, "operation_api_version"),
        ({"name": MODEL, "api_version": "v1"}, "cannot be read in v1"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        TuningOperationTrigger(**{"conn_id": "c", "name": OP, **kwargs})


# -- one shared session per (event loop, conn id) ---------------------------------------------------


def record_sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every session the triggers' hooks lease."""
    opened: list[Any] = []
    real = async_hook_module.shared_session

    @contextlib.asynccontextmanager
    async def recording(conn_id: str, **kwargs: Any):
        async with real(conn_id, **kwargs) as session:
            opened.append(session)
            yield session

    monkeypatch.setattr(async_hook_module, "shared_session", recording)
    return opened


async def test_two_triggers_on_one_loop_share_one_session(api: ScriptedApi, conn_id: str, monkeypatch):
    api.script(OP_PATH, operation(1), operation(2), operation(3), operation(38, done=True))
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("CREATING"), tuned_model("ACTIVE", 38))
    first = TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST)
    second = TuningOperationTrigger(conn_id=conn_id, name=MODEL, **FAST)
    opened = record_sessions(monkeypatch)
    results = await asyncio.gather(run_trigger(first), run_trigger(second))
    assert [r[0]["status"] for r in results] == ["success", "success"]
    sessions = {id(s) for s in opened}
    assert len(sessions) == 1  # both triggers leased the same session
    assert all(s.closed for s in opened)  # closed when its last user left
    assert async_hook_module._SESSIONS.get(asyncio.get_running_loop(), {}) == {}


async def test_other_connection_or_loop_gets_another_session(api: ScriptedApi, conn_id: str, monkeypatch):
    set_connection(monkeypatch, "tuning_other", api_key_connection("tuning_other", api.url))
    api.script(OP_PATH, operation(1), operation(2), operation(38, done=True))
    first = TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST)
    other = TuningOperationTrigger(conn_id="tuning_other", name=OP, **FAST)
    opened = record_sessions(monkeypatch)
    await asyncio.gather(run_trigger(first), run_trigger(other))
    assert len({id(s) for s in opened}) == 2

    async def lease() -> Any:
        async with async_hook_module.shared_session(conn_id) as session:
            return session

    async with async_hook_module.shared_session(conn_id) as here:
        there = await asyncio.to_thread(asyncio.run, lease())
        assert here is not there


LIMIT_VARIABLE = "AIRFLOW__GENERATIVE_LANGUAGE__TRIGGER_MAX_CONNECTIONS"


async def test_the_shared_session_holds_the_configured_number_of_connections(
    conn_id: str, monkeypatch: pytest.MonkeyPatch
):
    async def limit() -> int:
        async with async_hook_module.shared_session(conn_id) as session:
            return session.connector.limit

    monkeypatch.delenv(LIMIT_VARIABLE, raising=False)
    assert await limit() == async_hook_module.DEFAULT_MAX_CONNECTIONS == 256
    monkeypatch.setenv(LIMIT_VARIABLE, "128")
    assert await limit() == 128


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5"])
async def test_a_bad_connection_limit_yields_an_error_event_naming_the_option(
    api: ScriptedApi, conn_id: str, monkeypatch: pytest.MonkeyPatch, value: str
):
    monkeypatch.setenv(LIMIT_VARIABLE, value)
    api.script(OP_PATH, operation(38, done=True))
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert event["status"] == "error"
    assert "[generative_language] trigger_max_connections must be a positive integer" in event["message"]
    assert repr(value) in event["message"]
    assert api.seen(OP_PATH) == []


async def test_api_messages_are_scrubbed_of_the_key(api: ScriptedApi, conn_id: str):
    api.script(
        OP_PATH, error(400, "INVALID_ARGUMENT", f"API key not valid: {API_KEY}. Please pass a valid key.")
    )
    [event] = await run_trigger(TuningOperationTrigger(conn_id=conn_id, name=OP, **FAST))
    assert event["status"] == "failed"
    assert event["message"] == "API key not valid: ***. Please pass a valid key."
    assert API_KEY not in json.dumps(event)


async def test_triggers_of_one_connection_share_its_credentials_and_one_token(api, monkeypatch):
    """One read of the connection and one token refresh serve every wait on it; nothing is kept
    once the last wait ends (an edited connection is read afresh by the next one)."""
    api.script(
        "/token", {"access_token": "ya29.shared", "expires_in": 3600, "token_type": "Bearer"}, method="POST"
    )
    keyfile = {
        "type": "authorized_user",
        "client_id": "c.apps.googleusercontent.com",
        "client_secret": "shared-secret",
        "refresh_token": "shared-refresh",
        "token_uri": f"{api.url}/token",
    }
    conn = {
        "conn_type": "generativelanguage",
        "host": api.url,
        "extra": json.dumps({"keyfile_dict": keyfile}),
    }
    set_connection(monkeypatch, "tuning_shared_oauth", json.dumps(conn))
    api.script(OP_PATH, operation(1), operation(2), operation(38, done=True))
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("ACTIVE", 38))
    triggers = [
        TuningOperationTrigger(conn_id="tuning_shared_oauth", name=name, **FAST) for name in (OP, MODEL, OP)
    ]
    results = await asyncio.gather(*(run_trigger(t) for t in triggers))
    assert [r[0]["status"] for r in results] == ["success"] * 3
    assert len(api.seen("/token", method="POST")) == 1
    assert {r.headers["Authorization"] for r in api.requests if r.path != "/token"} == {"Bearer ya29.shared"}
    assert async_hook_module._CREDENTIALS.get(asyncio.get_running_loop(), {}) == {}
