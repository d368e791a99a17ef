"""Faults on demand: seeded 429/500/503 rates, Retry-After, dropped connections, latency, per-route
matching, start-up configuration and run-time changes through the control path."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest
import requests

from tests.emulator.emulator_support import Api, tuned_model_body
from tuning_api_emulator import Emulator
from tuning_api_emulator.faults import FaultPlan, FaultRule

N = 400
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _within(count: int, n: int, p: float) -> bool:
    """``count`` is within 4.5 standard deviations of ``n * p`` (a seeded draw: stable, not flaky)."""
    return abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1


def test_seeded_rates_over_many_requests(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(
        faults={
            "seed": 7,
            "rules": [{"match": "ListModels", "error_429": 0.2, "error_500": 0.1, "error_503": 0.15}],
        }
    )
    api = Api(emulator.url)
    statuses: Counter[int] = Counter()
    for _ in range(N):
        response = api.request("GET", "/v1beta/models", expect=None, params={"pageSize": 1})
        statuses[response.status_code] += 1
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        elif response.status_code == 503:
            assert response.json()["error"]["status"] == "UNAVAILABLE"
            assert "Retry-After" in response.headers
        elif response.status_code == 500:
            assert response.json()["error"]["status"] == "INTERNAL"
    assert _within(statuses[429], N, 0.2), statuses
    assert _within(statuses[500], N, 0.1), statuses
    assert _within(statuses[503], N, 0.15), statuses
    assert _within(statuses[200], N, 0.55), statuses
    # other routes are untouched
    assert all(
        api.request("GET", "/v1beta/models/text-bison-001", expect=None).status_code == 200 for _ in range(20)
    )


def test_same_seed_same_sequence() -> None:
    def sequence(seed: int) -> list[str | None]:
        plan = FaultPlan([FaultRule(error_429=0.3, error_503=0.3)], seed=seed)
        return [plan.decide("GetOperation", "GET", "/v1/x").outcome for _ in range(50)]

    assert sequence(3) == sequence(3)
    assert sequence(3) != sequence(4)


def test_dropped_connection_raises_connection_error(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(faults=[{"match": "/v1beta/models/*", "drop": 1.0}])
    with pytest.raises(requests.ConnectionError):
        requests.get(
            f"{emulator.url}/v1beta/models/text-bison-001", headers={"x-goog-api-key": "k"}, timeout=10
        )
    assert emulator.request_log[-1]["status"] == "dropped"
    ok = requests.get(f"{emulator.url}/v1beta/models", headers={"x-goog-api-key": "k"}, timeout=10)
    assert ok.status_code == 200  # the glob does not match the collection


def test_runtime_change_through_the_control_path(api: Api, emulator: Emulator) -> None:
    assert api.request("GET", "/v1beta/models", expect=None).status_code == 200
    reply = requests.put(
        f"{emulator.url}/_emulator/faults",
        json={"seed": 1, "rules": [{"match": "GET /v1beta/models", "error_503": 1.0, "retry_after": 7}]},
        timeout=10,
    )
    assert reply.status_code == 200
    assert reply.json()["rules"][0]["error_503"] == 1.0
    failed = api.request("GET", "/v1beta/models", expect=503)
    assert failed.headers["Retry-After"] == "7"
    assert (
        api.request("POST", "/v1beta/models", expect=404, json={}).status_code == 404
    )  # verb differs: no fault
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=10).json()["seed"] == 1
    assert requests.delete(f"{emulator.url}/_emulator/faults", timeout=10).json()["rules"] == []
    assert api.request("GET", "/v1beta/models", expect=None).status_code == 200


def test_python_control_and_rpc_globs(api: Api, emulator: Emulator) -> None:
    config = emulator.set_faults(match="*Model", error_429=1.0, seed=5)
    assert config == emulator.faults
    assert config["seed"] == 5
    assert api.request("GET", "/v1beta/models/text-bison-001", expect=None).status_code == 429  # GetModel
    assert api.request("GET", "/v1beta/models", expect=None).status_code == 200  # ListModels
    emulator.set_faults()
    assert api.request("GET", "/v1beta/models/text-bison-001", expect=None).status_code == 200


def test_latency_is_applied_without_breaking_answers(make_emulator: Callable[..., Emulator]) -> None:
    plan = FaultPlan([FaultRule(match="GetModel", latency=0.01, jitter=0.02)], seed=2)
    delays = [plan.decide("GetModel", "GET", "/v1beta/models/x").delay for _ in range(100)]
    assert all(0.01 <= d <= 0.03 for d in delays)
    assert len(set(delays)) > 90  # jittered
    assert plan.decide("ListModels", "GET", "/v1beta/models").delay == 0.0
    emulator = make_emulator(faults=plan)
    assert Api(emulator.url).get("/v1beta/models/text-bison-001")["name"] == "models/text-bison-001"


@pytest.mark.parametrize(
    "config",
    [
        {"rules": [{"match": "*", "error_429": 0.7, "error_503": 0.5}]},
        {"rules": [{"match": "*", "error_418": 0.1}]},
        {"rules": [{"match": "*", "latency": -1}]},
        {"rules": "all"},
        {"seed": "x"},
        {"rules": [], "colour": 1},
    ],
)
def test_invalid_fault_configuration(emulator: Emulator, config: object) -> None:
    reply = requests.put(f"{emulator.url}/_emulator/faults", json=config, timeout=10)
    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    with pytest.raises((ValueError, TypeError)):
        FaultPlan.from_config(config)
    assert emulator.faults["rules"] == []


_NON_FINITE = [
    ('{"rules": [{"match": "*", "latency": Infinity}]}', "latency must be a finite number of seconds"),
    ('{"rules": [{"match": "*", "jitter": NaN}]}', "jitter must be a finite number of seconds"),
    ('{"rules": [{"match": "*", "latency": 1e400}]}', "latency must be a finite number of seconds"),
    ('{"rules": [{"match": "*", "error_503": NaN}]}', "error_503 must be a probability from 0 to 1"),
    ('{"rules": [{"match": "*", "drop": -Infinity}]}', "drop must be a probability from 0 to 1"),
    ('{"rules": [{"match": "*", "error_429": 1.5}]}', "error_429 must be a probability from 0 to 1"),
    ('{"rules": [{"match": "*", "latency": -0.5}]}', "latency must be a finite number of seconds"),
]


@pytest.mark.parametrize(("text", "message"), _NON_FINITE)
def test_non_finite_and_out_of_range_numbers_are_refused_by_the_control_path(
    emulator: Emulator, text: str, message: str
) -> None:
    reply = requests.put(
        f"{emulator.url}/_emulator/faults",
        data=text,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]
    assert emulator.faults["rules"] == []
    assert Api(emulator.url).get("/v1beta/models", params={"pageSize": 1})["models"]  # no hang


@pytest.mark.parametrize(("text", "message"), _NON_FINITE)
def test_non_finite_and_out_of_range_numbers_are_refused_in_python(
    emulator: Emulator, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Emulator(faults=text)
    with pytest.raises(ValueError, match=message):
        emulator.set_faults(json.loads(text))
    assert emulator.faults["rules"] == []


def test_non_finite_latency_is_refused_by_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tuning_api_emulator", "--port", "0", "--faults", _NON_FINITE[0][0]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "invalid --faults" in result.stderr
    assert "latency must be a finite number of seconds, 0 or more, got inf" in result.stderr


def test_deeply_nested_fault_configuration_is_a_400(emulator: Emulator) -> None:
    reply = requests.put(f"{emulator.url}/_emulator/faults", data="[" * 100_000, timeout=10)
    assert reply.status_code == 400
    assert "JSON nesting too deep" in reply.json()["error"]["message"]
    with pytest.raises(ValueError, match="JSON nesting too deep"):
        FaultPlan.from_text("[" * 100_000)


def _create(emulator: Emulator, model_id: str) -> requests.Response:
    return requests.post(
        f"{emulator.url}/v1beta/tunedModels",
        params={"tunedModelId": model_id},
        json=tuned_model_body(),
        headers={"x-goog-api-key": "k"},
        timeout=10,
    )


@pytest.mark.parametrize("how", ["constructor", "set_faults", "control path"])
def test_a_create_whose_response_is_lost_still_created_the_model(
    make_emulator: Callable[..., Emulator], how: str
) -> None:
    rule = {"match": "CreateTunedModel", "drop_after": 1.0}
    emulator = make_emulator(faults=[rule]) if how == "constructor" else make_emulator()
    if how == "set_faults":
        emulator.set_faults(**rule)
    elif how == "control path":
        reply = requests.put(f"{emulator.url}/_emulator/faults", json={"rules": [rule]}, timeout=10)
        assert reply.json()["rules"][0]["drop_after"] == 1.0
    with pytest.raises(requests.ConnectionError):
        _create(emulator, "committed")
    assert emulator.request_log[-1]["status"] == "dropped_after"
    assert emulator.request_log[-1]["handled_status"] == 200  # the create committed
    emulator.set_faults()
    api = Api(emulator.url)
    assert api.get("/v1beta/tunedModels/committed")["name"] == "tunedModels/committed"
    retry = _create(emulator, "committed")
    assert retry.status_code == 409
    assert retry.json()["error"]["status"] == "ALREADY_EXISTS"


def test_drop_before_changes_nothing_and_drop_after_is_seeded(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(faults=[{"match": "CreateTunedModel", "drop": 1.0}])
    with pytest.raises(requests.ConnectionError):
        _create(emulator, "never")
    emulator.set_faults()
    assert _create(emulator, "never").status_code == 200  # the dropped create changed nothing

    def outcomes(seed: int) -> list[str | None]:
        plan = FaultPlan([FaultRule(drop_after=0.3, error_503=0.2)], seed=seed)
        return [plan.decide("CreateTunedModel", "POST", "/v1beta/tunedModels").outcome for _ in range(200)]

    assert outcomes(9) == outcomes(9)
    assert _within(outcomes(9).count("drop_after"), 200, 0.3)
    with pytest.raises(
        ValueError, match=r"error_429 \+ error_500 \+ error_503 \+ drop \+ drop_after exceeds 1"
    ):
        FaultRule(drop=0.6, drop_after=0.6)


def test_drop_after_from_the_cli(tmp_path: pathlib.Path) -> None:
    faults = json.dumps({"rules": [{"match": "POST /v1beta/tunedModels", "drop_after": 1.0}]})
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning_api_emulator", "--port", "0", "--faults", faults],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        with pytest.raises(requests.ConnectionError):
            requests.post(
                f"{url}/v1beta/tunedModels",
                params={"tunedModelId": "cli"},
                json=tuned_model_body(),
                headers={"x-goog-api-key": "k"},
                timeout=10,
            )
        state = requests.get(f"{url}/_emulator/state", timeout=10).json()
        assert [m["name"] for m in state["tunedModels"]] == ["tunedModels/cli"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
