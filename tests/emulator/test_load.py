"""A bounded loopback load test: 1,000 concurrent aiohttp pollers against the emulator's CLI.

The emulator runs as a subprocess (``python -m tuning_api_emulator``), so client and
server do not share a GIL. One ``aiohttp.ClientSession`` (connector limit 1,000) carries 1,000
pollers released together by one gate; each polls ``GET /v1/{operation}`` 3 times. Every response
must be a 200 that parses strictly into ``google.longrunning.Operation`` naming the polled operation;
the emulator's own request log must show exactly the requests sent. Bounded: 3,000 requests, 60 s
overall. No timing is asserted (``bench/emulator_load.py`` measures it, see BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from bench._common import API_KEY, EmulatorProcess, control, create_tuned_models
from bench.emulator_load import RunResult, check_operation, raise_fd_limit, run_pollers

POLLERS = 1000
POLLS = 3
OPERATIONS = 5
OVERALL_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cli_emulator() -> Iterator[EmulatorProcess]:
    """The emulator CLI in a subprocess (jobs so slow that none finishes), stopped by its PID."""
    raise_fd_limit(2 * POLLERS + 256)  # inherited by the subprocess
    with EmulatorProcess(step_seconds=3600.0) as emulator:
        yield emulator
    assert emulator.proc is not None
    assert emulator.proc.poll() is not None, "the emulator subprocess is still running"


@pytest.fixture(scope="module")
def operations(cli_emulator: EmulatorProcess) -> list[str]:
    return create_tuned_models(cli_emulator.url, OPERATIONS, prefix="load")


def _poll(url: str, operations: list[str], pollers: int, polls: int) -> RunResult:
    return asyncio.run(
        asyncio.wait_for(run_pollers(url, operations, pollers=pollers, polls=polls), OVERALL_TIMEOUT)
    )


def test_a_thousand_concurrent_pollers(cli_emulator: EmulatorProcess, operations: list[str]) -> None:
    url = cli_emulator.url
    control(url, "DELETE", "requests")
    result = _poll(url, operations, POLLERS, POLLS)

    assert result.error_samples == []
    assert result.errors == 0
    assert result.requests == POLLERS * POLLS
    assert len(result.latencies) == POLLERS * POLLS
    # All 1,000 first requests were in flight at once, each on its own connection.
    assert result.peak_in_flight == POLLERS
    assert POLLERS <= result.connections_created <= POLLERS * POLLS

    # The server saw exactly these requests, each answered 200, the key only in a (redacted) header.
    logged = control(url, "GET", "requests")["requests"]
    assert Counter((e["method"], e["path"], e["rpc"], e["status"]) for e in logged) == {
        ("GET", f"/v1/{name}", "GetOperation", 200): POLLERS * POLLS // OPERATIONS for name in operations
    }
    assert {e["headers"].get("x-goog-api-key") for e in logged} == {"<redacted>"}
    assert {e["query"] for e in logged} == {""}
    assert API_KEY not in json.dumps(logged)


def test_errors_are_counted(cli_emulator: EmulatorProcess, operations: list[str]) -> None:
    """The load test can fail: a missing operation (404) and a wrong key (400) are errors."""
    missing = operations[0].rsplit("/", 1)[0] + "/nope"
    result = _poll(cli_emulator.url, [operations[0], missing], pollers=10, polls=2)
    assert (result.requests, result.errors) == (20, 10)
    assert all("HTTP 404" in sample for sample in result.error_samples)

    async def wrong_key() -> RunResult:
        return await run_pollers(cli_emulator.url, operations, pollers=3, polls=1, api_key="not-the-key")

    refused = asyncio.run(wrong_key())
    assert (refused.requests, refused.errors) == (3, 3)
    assert all("HTTP 400" in sample for sample in refused.error_samples)


def test_the_check_is_strict(cli_emulator: EmulatorProcess, operations: list[str]) -> None:
    """``check_operation`` accepts the emulator's Operation and rejects anything else."""
    name = operations[0]
    body = requests.get(f"{cli_emulator.url}/v1/{name}", headers={"x-goog-api-key": API_KEY}, timeout=10)
    check_operation(body.content, name)
    with pytest.raises(ValueError, match="expected"):
        check_operation(body.content, operations[1])
    data = body.json()
    with pytest.raises(ValueError, match=r"not a google\.longrunning\.Operation"):
        check_operation(json.dumps({**data, "extra": 1}).encode(), name)
    with pytest.raises(ValueError, match=r"not a google\.longrunning\.Operation"):
        check_operation(b"<html>busy</html>", name)
    wrong_type = {**data, "metadata": {"@type": "type.googleapis.com/google.protobuf.Empty"}}
    with pytest.raises(ValueError, match="CreateTunedModelMetadata"):
        check_operation(json.dumps(wrong_type).encode(), name)
    other_model = {**data, "metadata": {**data["metadata"], "tunedModel": "tunedModels/other"}}
    with pytest.raises(ValueError, match="does not describe"):
        check_operation(json.dumps(other_model).encode(), name)
