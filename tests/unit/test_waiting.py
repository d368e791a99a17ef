"""wait_for_tuning: the in-worker wait, through the real hook against a scripted loopback API."""

from __future__ import annotations

import logging
import pathlib
import sys
import time
from collections.abc import Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "triggers"))

from tuning_loopback import (
    API_KEY,
    MODEL,
    MODEL_PATH,
    OP,
    OP_PATH,
    Reply,
    ScriptedApi,
    api_key_connection,
    create_tuned_model,
    error,
    operation,
    set_connection,
    tuned_model,
)

from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    InvalidInputError,
    NotFoundError,
    QuotaExhaustedError,
    ServerError,
    TuningCancelledError,
    TuningFailedError,
    TuningTimeoutError,
)
from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.waiting import check_tuning, is_transient, wait_for_tuning
from tuning_api_emulator import Emulator

CONN_ID = "tuning_wait_loopback"
LOGGER = "tests.waiting"
FAST = {"poll_interval": 0.01, "retry_initial_delay": 0.01, "retry_max_delay": 0.02}


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    with ScriptedApi() as server:
        yield server


@pytest.fixture
def hook(api: ScriptedApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[GenerativeLanguageHook]:
    """The real hook; its own retries are off so each failed poll is seen by the wait."""
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, api.url))
    with GenerativeLanguageHook(CONN_ID, retry=RetryPolicy(max_attempts=1)) as the_hook:
        yield the_hook


def progress(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split(": ", 1)[1]
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.INFO
    ]


def test_operation_success_logs_progress_when_it_changes(api, hook, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    api.script(OP_PATH, operation(0), operation(0), operation(19), operation(19), operation(38, done=True))
    status = wait_for_tuning(hook, OP, log=logging.getLogger(LOGGER), **FAST)
    assert status.succeeded
    assert status.tuned_model == MODEL
    assert status.mean_loss == pytest.approx(0.410256)
    assert progress(caplog) == [
        "0% step 0/38",
        "50% step 19/38 epoch 2 loss 0.8",
        "100% step 38/38 epoch 5 loss 0.41 ACTIVE",
    ]
    assert len(api.seen(OP_PATH)) == 5
    assert {r.headers["x-goog-api-key"] for r in api.seen(OP_PATH)} == {API_KEY}


def test_model_flow_success(api, hook):
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("ACTIVE", 38))
    status = wait_for_tuning(hook, MODEL, **FAST)
    assert status.succeeded
    assert (status.tuned_model, status.completed_steps, status.epoch) == (MODEL, 38, 5)
    assert status.resource == {}  # a wait keeps a summary; callers read the final resource once


def test_failed_operation_raises_with_the_api_message(api, hook):
    message = "Tuning failed: the loss diverged at step 6."
    api.script(OP_PATH, operation(5), operation(5, error={"code": 13, "message": message}))
    with pytest.raises(TuningFailedError) as info:
        wait_for_tuning(hook, OP, **FAST)
    assert info.value.api_message == message
    assert info.value.code == 13
    assert info.value.tuned_model == MODEL
    assert not isinstance(info.value, TuningCancelledError)


def test_cancelled_operation_raises_cancelled(api, hook):
    api.script(OP_PATH, operation(5, error={"code": 1, "message": "Operation was cancelled."}))
    with pytest.raises(TuningCancelledError, match="cancelled"):
        wait_for_tuning(hook, OP, **FAST)


def test_failed_model_raises_with_the_message_of_its_operation(api, hook):
    message = "Tuning failed: training examples too long."
    api.script(MODEL_PATH, tuned_model("CREATING"), tuned_model("FAILED"))
    api.script(
        f"/v1/{MODEL}/operations", {"operations": [operation(1, error={"code": 3, "message": message})]}
    )
    with pytest.raises(TuningFailedError) as info:
        wait_for_tuning(hook, MODEL, **FAST)
    assert (info.value.api_message, info.value.code) == (message, 3)


def test_failed_model_without_readable_operations_still_fails(api, hook):
    api.script(MODEL_PATH, tuned_model("FAILED"))  # operations route not scripted: 404
    with pytest.raises(TuningFailedError, match="state FAILED"):
        wait_for_tuning(hook, MODEL, **FAST)


def test_timeout(api, hook):
    api.script(OP_PATH, operation(3))
    deadline = time.time() + 0.3
    with pytest.raises(TuningTimeoutError, match=r"deadline \(7% step 3/38"):
        wait_for_tuning(hook, OP, deadline=deadline, **FAST)
    assert time.time() >= deadline
    assert len(api.seen(OP_PATH)) > 1


def test_past_deadline_polls_once_then_times_out(api, hook):
    api.script(OP_PATH, operation(3))
    with pytest.raises(TuningTimeoutError):
        wait_for_tuning(hook, OP, deadline=time.time() - 1, **FAST)
    assert len(api.seen(OP_PATH)) == 1


def test_transient_failures_then_success(api, hook, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    api.script(
        OP_PATH,
        error(503, "UNAVAILABLE", "unavailable"),
        error(429, "RESOURCE_EXHAUSTED", "quota", headers={"Retry-After": "0"}),
        Reply(text="<html>gateway</html>"),
        operation(38, done=True),
    )
    delays: list[float] = []
    status = wait_for_tuning(
        hook, OP, max_consecutive_failures=4, log=logging.getLogger(LOGGER), sleep=delays.append, **FAST
    )
    assert status.succeeded
    assert len(api.seen(OP_PATH)) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == LOGGER]
    assert [w.split(" (")[0] for w in warnings] == [f"{OP}: failed poll {n}/4" for n in (1, 2, 3)]
    assert "503" in warnings[0]
    assert "429" in warnings[1]
    assert "not JSON" in warnings[2]
    assert len(delays) == 3
    assert all(0 < d <= 0.02 for d in (delays[0], delays[2]))
    assert delays[1] == 0  # the 429's Retry-After: 0 is honoured


def test_n_consecutive_failures_raise_the_last_error(api, hook):
    api.script(OP_PATH, error(503, "UNAVAILABLE", "Backend unavailable."))
    with pytest.raises(ServerError, match="Backend unavailable"):
        wait_for_tuning(hook, OP, max_consecutive_failures=3, **FAST)
    assert len(api.seen(OP_PATH)) == 3


def test_only_consecutive_failures_count(api, hook):
    quota = error(429, "RESOURCE_EXHAUSTED", "quota")
    api.script(OP_PATH, quota, operation(1), quota, operation(2), quota, operation(38, done=True))
    assert wait_for_tuning(hook, OP, max_consecutive_failures=2, **FAST).succeeded
    api.script(OP_PATH, quota, quota, operation(38, done=True))
    with pytest.raises(QuotaExhaustedError):
        wait_for_tuning(hook, OP, max_consecutive_failures=2, **FAST)


def test_a_poll_is_one_attempt_whatever_the_hooks_retry_policy(api, monkeypatch):
    """The failure budget counts requests, as in the trigger: the hook's in-call retries are off."""
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, api.url))
    api.script(OP_PATH, *[error(503, "UNAVAILABLE", "unavailable")] * 3, operation(38, done=True))
    retrying = GenerativeLanguageHook(
        CONN_ID, retry=RetryPolicy(max_attempts=5, initial_delay=0.01, max_delay=0.01)
    )
    with pytest.raises(ServerError):
        wait_for_tuning(retrying, OP, max_consecutive_failures=2, **FAST)
    assert len(api.seen(OP_PATH)) == 2
    api.script(OP_PATH, *[error(503, "UNAVAILABLE", "unavailable")] * 3, operation(38, done=True))
    assert wait_for_tuning(retrying, OP, max_consecutive_failures=4, **FAST).succeeded
    assert len(api.seen(OP_PATH)) == 2 + 4


def test_404_is_raised_at_once(api, hook):
    api.script(OP_PATH, error(404, "NOT_FOUND", f"Operation {OP} not found."))
    with pytest.raises(NotFoundError, match="not found"):
        wait_for_tuning(hook, OP, **FAST)
    assert len(api.seen(OP_PATH)) == 1


def test_unreachable_api(monkeypatch):
    with ScriptedApi() as gone:
        url = gone.url
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, url))
    hook = GenerativeLanguageHook(CONN_ID, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ApiConnectionError):
        wait_for_tuning(hook, OP, max_consecutive_failures=2, **FAST)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "models/text-bison-001"}, "neither a tuned model"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures"),
        ({"poll_interval": -1}, "poll_interval"),
    ],
)
def test_bad_arguments_fail_before_any_request(api, hook, kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        wait_for_tuning(hook, **{"name": OP, **kwargs})
    assert api.seen() == []


def test_check_tuning_polls_once(api, hook):
    api.script(OP_PATH, operation(19))
    status = check_tuning(hook, OP)
    assert (status.state, status.completed_steps, status.total_steps) == ("CREATING", 19, 38)
    api.script(f"/v1beta3/{MODEL}", tuned_model("ACTIVE"))
    assert check_tuning(hook, MODEL.split("/")[1], api_version="v1beta3").succeeded
    assert len(api.seen()) == 2


def test_is_transient():
    assert is_transient(ServerError(503, "UNAVAILABLE", "x"))
    assert is_transient(QuotaExhaustedError(429, "RESOURCE_EXHAUSTED", "x"))
    assert is_transient(ApiConnectionError("refused"))
    assert not is_transient(NotFoundError(404, "NOT_FOUND", "x"))
    assert not is_transient(ValueError("x"))


# -- against the project's emulator ----------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(step_seconds=0.01) as emu:
        yield emu


@pytest.fixture
def emu_hook(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GenerativeLanguageHook]:
    emulator.reset()
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, emulator.url))
    with GenerativeLanguageHook(CONN_ID, retry=RetryPolicy(max_attempts=1)) as the_hook:
        yield the_hook


def test_emulator_operation_and_model_success(emulator, emu_hook):
    op = create_tuned_model(emulator.url, "wait-ok", examples=15, epochs=2)
    status = wait_for_tuning(emu_hook, op["name"], **FAST)
    assert status.succeeded
    # partial polls: progress counters, no snapshots (the caller reads the final resource once)
    assert (status.completed_steps, status.total_steps, status.tuned_model) == (15, 15, "tunedModels/wait-ok")
    assert status.snapshots == ()
    again = wait_for_tuning(emu_hook, "wait-ok", **FAST)  # the model is ACTIVE by now
    assert again.succeeded
    assert again.operation is None


def test_emulator_failure_and_cancel(emulator, emu_hook):
    op = create_tuned_model(emulator.url, "wait-fail", display_name="x emulator:fail-at=3")
    with pytest.raises(TuningFailedError, match="emulated failure") as info:
        wait_for_tuning(emu_hook, op["name"], **FAST)
    assert info.value.code == 13
    with pytest.raises(TuningFailedError, match="emulated failure"):
        wait_for_tuning(emu_hook, "tunedModels/wait-fail", **FAST)  # message read from its operation
    running = create_tuned_model(emulator.url, "wait-cancel", examples=300, epochs=5)
    emu_hook.cancel_operation(running["name"])
    with pytest.raises(TuningCancelledError):
        wait_for_tuning(emu_hook, running["name"], **FAST)


def test_emulator_faults_and_timeout(emulator, emu_hook):
    op = create_tuned_model(emulator.url, "wait-faults", examples=15, epochs=3)
    emulator.set_faults(match="GetOperation", error_503=0.3, error_429=0.3, retry_after=0, seed=5)
    assert wait_for_tuning(emu_hook, op["name"], max_consecutive_failures=20, **FAST).succeeded
    statuses = {e["status"] for e in emulator.request_log if e.get("rpc") == "GetOperation"}
    assert {200, 429, 503} <= statuses
    emulator.set_faults()
    slow = create_tuned_model(emulator.url, "wait-slow", examples=500, epochs=10)
    with pytest.raises(TuningTimeoutError):
        wait_for_tuning(emu_hook, slow["name"], deadline=time.time() + 0.2, **FAST)
