"""The state file keeps tuned models across a restart (and they keep progressing); the control
paths; the command line starts, answers and stops on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.emulator.emulator_support import Api, FakeClock, tuned_model_body
from tuning_api_emulator import Emulator
from tuning_api_emulator.runner import is_loopback

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_restart_on_the_state_file(
    make_emulator: Callable[..., Emulator], clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    state = tmp_path / "state" / "emulator.json"
    first = make_emulator(state_file=state)
    api = Api(first.url)
    operation = api.post(
        "/v1beta/tunedModels",
        tuned_model_body(batchSize=2, epochCount=5),
        params={"tunedModelId": "survivor"},
    )
    api.post("/v1beta/tunedModels/survivor/permissions", {"granteeType": "EVERYONE", "role": "READER"})
    api.patch("/v1beta/tunedModels/survivor", {"description": "kept"}, params={"updateMask": "description"})
    clock.advance(10)
    before = api.get(f"/v1/{operation['name']}")
    assert before["metadata"]["completedSteps"] == 10
    first.stop()
    saved = json.loads(state.read_text())
    assert [m["id"] for m in saved["tunedModels"]] == ["survivor"]
    assert [p.name for p in state.parent.iterdir()] == ["emulator.json"]  # no temporary file left behind

    second = make_emulator(state_file=state)
    api = Api(second.url)
    assert api.get(f"/v1/{operation['name']}") == before  # nothing lost
    model = api.get("/v1beta/tunedModels/survivor")
    assert (model["state"], model["description"]) == ("CREATING", "kept")
    assert len(api.get("/v1beta/tunedModels/survivor/permissions")["permissions"]) == 2
    clock.advance(5)
    assert api.get(f"/v1/{operation['name']}")["metadata"]["completedSteps"] == 15  # still progressing
    clock.advance(100)
    assert api.get(f"/v1/{operation['name']}")["done"] is True
    assert api.get("/v1beta/tunedModels/survivor")["state"] == "ACTIVE"
    assert api.post(
        "/v1beta/tunedModels/survivor:generateContent", {"contents": [{"parts": [{"text": "3"}]}]}
    )["candidates"]
    api.delete("/v1beta/tunedModels/survivor")
    assert json.loads(state.read_text())["tunedModels"] == []


def test_bad_state_file_is_refused(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="unsupported emulator state format"):
        Emulator(state_file=state)


def test_control_state_reset_and_request_log(api: Api, emulator: Emulator, clock: FakeClock) -> None:
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "ctl"})
    clock.advance(3)
    state = requests.get(f"{emulator.url}/_emulator/state", timeout=10).json()
    assert state["tunedModels"] == [
        {
            "name": "tunedModels/ctl",
            "operation": state["tunedModels"][0]["operation"],
            "apiVersion": "v1beta",
            "state": "CREATING",
            "completedSteps": 3,
            "totalSteps": 19,
        }
    ]
    assert state["requestCount"] == 1
    logged = requests.get(f"{emulator.url}/_emulator/requests", timeout=10).json()["requests"]
    assert [(e["method"], e["path"], e["query"]) for e in logged] == [
        ("POST", "/v1beta/tunedModels", "tunedModelId=ctl")
    ]
    assert requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).status_code == 200
    assert emulator.request_log == []
    emulator.set_faults(error_503=0.5)
    assert requests.post(f"{emulator.url}/_emulator/reset", timeout=10).status_code == 200
    assert api.get("/v1beta/tunedModels") == {}
    assert emulator.faults["rules"] == []
    assert emulator.state()["tunedModels"] == []
    unknown = requests.get(f"{emulator.url}/_emulator/nothing", timeout=10)
    assert (unknown.status_code, unknown.json()["error"]["status"]) == (404, "NOT_FOUND")
    assert requests.patch(f"{emulator.url}/_emulator/state", timeout=10).status_code == 404


def test_emulator_lifecycle() -> None:
    emulator = Emulator(step_seconds=0.05)
    with pytest.raises(RuntimeError):
        _ = emulator.url
    url = emulator.start()
    assert emulator.start() == url  # idempotent
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    emulator.stop()
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_emulator/state", timeout=5)


def test_real_clock_progression() -> None:
    """Without a fake clock the job progresses with wall time (small steps, bounded wait)."""
    with Emulator(step_seconds=0.01) as emulator:
        api = Api(emulator.url)
        operation = api.post("/v1beta/tunedModels", tuned_model_body(2, epochCount=1, batchSize=1))
        deadline = time.monotonic() + 20
        while not api.get(f"/v1/{operation['name']}").get("done"):
            assert time.monotonic() < deadline, "the job never finished"
            time.sleep(0.01)
        assert api.get(f"/v1beta/{operation['metadata']['tunedModel']}")["state"] == "ACTIVE"


def test_port_in_use_is_an_error(emulator: Emulator) -> None:
    port = int(emulator.url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match=r"(?i)address already in use"):
        Emulator(port=port).start()


@pytest.fixture
def cli() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tuning_api_emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, line
        return process, found.group(0)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops(
    cli: Callable[..., tuple[subprocess.Popen[str], str]], tmp_path: pathlib.Path, stop_signal: int
) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"rules": [{"match": "GetModel", "error_429": 1.0}]}))
    process, url = cli(
        "--step-seconds",
        "0.01",
        "--api-key",
        "cli-key",
        "--token",
        "cli-token",
        "--faults",
        str(faults),
        "--seed",
        "3",
        "--state-file",
        str(tmp_path / "s.json"),
    )
    state = requests.get(f"{url}/_emulator/state", timeout=10).json()
    assert (state["stepSeconds"], state["seed"], state["acceptedApiKeys"]) == (0.01, 3, 1)
    assert "cli-key" not in json.dumps(state)
    assert Api(url, headers={"x-goog-api-key": "cli-key"}).get("/v1beta/models", params={"pageSize": 1})[
        "models"
    ]
    assert (
        Api(url, headers={"x-goog-api-key": "other"}).error("GET", "/v1beta/models", 400)["status"]
        == "INVALID_ARGUMENT"
    )
    Api(url, headers={"Authorization": "Bearer cli-token"}).request(
        "GET", "/v1beta/models/text-bison-001", expect=429
    )
    process.send_signal(stop_signal)
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "stopped" in out


def test_cli_rejects_bad_arguments() -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning_api_emulator",
            "--port",
            "0",
            "--faults",
            '{"rules": [{"nope": 1}]}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert bad.returncode == 2
    assert "invalid --faults" in bad.stderr


def test_the_emulator_imports_no_airflow() -> None:
    """It starts fast and standalone: importing and starting it loads no Airflow module."""
    code = (
        "import sys\n"
        "from tuning_api_emulator import Emulator\n"
        "emu = Emulator(step_seconds=0.1); emu.start(); emu.stop()\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _post_raw(api: Api, path: str, text: str, status: int, **params: str) -> dict[str, Any]:
    """POST a JSON text as is (``\\ud800`` escapes survive) and return the error or the answer."""
    response = api.request(
        "POST",
        path,
        expect=status,
        data=text.encode(),
        headers={"Content-Type": "application/json"},
        params=params,
    )
    return dict(response.json())


def test_a_lone_surrogate_is_refused_before_the_state_changes(
    make_emulator: Callable[..., Emulator], tmp_path: pathlib.Path
) -> None:
    state = tmp_path / "state.json"
    emulator = make_emulator(state_file=state)
    api = Api(emulator.url)
    body = json.dumps(tuned_model_body(display_name="bad \ud800 name"))  # ASCII text: "\ud800"
    assert "\\ud800" in body
    error = _post_raw(api, "/v1beta/tunedModels", body, 400, tunedModelId="bad")["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "lone surrogate \\ud800" in error["message"]
    patch = json.dumps({"description": "\udfff"})
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "good"})
    assert (
        api.request(
            "PATCH",
            "/v1beta/tunedModels/good",
            expect=400,
            data=patch.encode(),
            headers={"Content-Type": "application/json"},
            params={"updateMask": "description"},
        ).json()["error"]["status"]
        == "INVALID_ARGUMENT"
    )
    with pytest.raises(Exception, match="lone surrogate"):
        emulator.fail_model("good", message="\ud800")
    # every later change is still saved
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "after"})
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert sorted(m["id"] for m in saved["tunedModels"]) == ["after", "good"]
    assert [m["description"] for m in saved["tunedModels"]] == ["", ""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert sorted(m["name"] for m in api.get("/v1beta/tunedModels")["tunedModels"]) == [
        "tunedModels/after",
        "tunedModels/good",
    ]


def test_the_state_file_is_replaced_atomically(
    make_emulator: Callable[..., Emulator], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.json"
    calls: list[tuple[str, Any]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: Any, dst: Any) -> None:
        calls.append(("replace", (pathlib.Path(src), pathlib.Path(dst))))
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        calls.append(("fsync", fd))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    api = Api(make_emulator(state_file=state).url)
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "atomic"})
    kinds = [kind for kind, _ in calls]
    assert kinds[:2] == ["fsync", "replace"]  # the temporary file is synced before it replaces
    src, dst = next(arg for kind, arg in calls if kind == "replace")
    assert (src.parent, dst) == (state.parent, state)
    assert json.loads(state.read_text())["tunedModels"][0]["id"] == "atomic"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_non_loopback_host_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tuning_api_emulator")
    with Emulator(host="0.0.0.0", port=0) as emulator:
        assert requests.get(f"{emulator.url}/_emulator/state", timeout=10).status_code == 200
    (warning,) = _warnings(caplog)
    assert "listens on 0.0.0.0, which is not a loopback address" in warning
    assert "credentials of no value" in warning
    assert "no TLS" in warning
    caplog.clear()
    with pytest.raises(OSError, match=r"192\.0\.2\.10"):  # warned before it even tries to bind
        Emulator(host="192.0.2.10", port=0).start()
    assert len(_warnings(caplog)) == 1
    caplog.clear()
    with Emulator(host="127.0.0.1", port=0), Emulator(host="localhost", port=0):
        pass
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("emulator.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_cli_warns_when_bound_beyond_loopback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning_api_emulator", "--port", "0", "--host", "0.0.0.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert "not a loopback address" in lines[0]
    assert "serving on http://0.0.0.0:" in lines[1]
