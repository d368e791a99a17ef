"""Shared helpers of the benchmarks: machine facts, an emulator subprocess, tables, statistics.

Every server a benchmark starts binds 127.0.0.1 on a free port and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
CONN_ENV = "AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT"
_URL_RE = re.compile(r"serving on (http://\S+)")


# --- machine and report ----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_header(command: str) -> str:
    """Lines naming the machine, the date and the exact command of a run."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return "\n".join(
        [
            f"machine: nproc={os.cpu_count()}, CPU {cpu_model()}, Python {platform.python_version()}",
            f"date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
            f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            f"command: {command}",
        ]
    )


def command_line() -> str:
    """The command that started this script, as typed from the repository root."""
    script = os.path.relpath(sys.argv[0], ROOT)
    python = sys.executable
    if python.startswith(str(ROOT) + os.sep):
        python = os.path.relpath(python, ROOT)
    return " ".join([python, script, *sys.argv[1:]])


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    return statistics.median(values) if values else float("nan")


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads)."""
    times = os.times()
    return times.user + times.system


def connection_json(url: str, api_key: str = API_KEY, **extra: Any) -> str:
    """The ``AIRFLOW_CONN_...`` JSON of a ``generativelanguage`` connection."""
    conn: dict[str, Any] = {"conn_type": "generativelanguage", "host": url}
    if api_key:
        conn["password"] = api_key
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def isolated_airflow_env() -> dict[str, str]:
    """Environment variables that keep a benchmark's Airflow away from any user's AIRFLOW_HOME."""
    home = ROOT / ".airflow-home" / "bench"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    }


def apply_airflow_env(*, quiet: bool = False) -> None:
    """Set :func:`isolated_airflow_env` in this process unless already set (before importing Airflow).

    :param quiet: log only warnings and errors (Airflow logs to stdout, where the tables go).
    """
    for key, value in isolated_airflow_env().items():
        os.environ.setdefault(key, value)
    if quiet:
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


# --- the emulator as a subprocess ------------------------------------------------------------------


class EmulatorProcess:
    """``python -m tuning_api_emulator`` on 127.0.0.1, a free port, stopped by its PID.

    :param step_seconds: seconds per tuning step (large: the jobs never finish during a benchmark).
    :param faults: a fault configuration (JSON-able), e.g. added latency on one route.
    :param start_timeout: seconds to wait for the "serving on" line.
    :param tokens: bearer tokens the emulator accepts besides the API key (once any credential is
        configured, it accepts only the configured ones).
    :param refresh_tokens: refresh tokens its ``/token`` honours (the tokens it issues are accepted).
    """

    def __init__(
        self,
        *,
        step_seconds: float = 3600.0,
        faults: Any = None,
        start_timeout: float = 60.0,
        tokens: tuple[str, ...] = (),
        refresh_tokens: tuple[str, ...] = (),
    ):
        self.refresh_tokens = refresh_tokens
        self.step_seconds = step_seconds
        self.faults = faults
        self.tokens = tokens
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        cmd = [
            sys.executable,
            "-m",
            "tuning_api_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--step-seconds",
            str(self.step_seconds),
            "--api-key",
            API_KEY,
        ]
        for token in self.tokens:
            cmd += ["--token", token]
        for token in self.refresh_tokens:
            cmd += ["--refresh-token", token]
        if self.faults is not None:
            cmd += ["--faults", json.dumps(self.faults)]
        env = {**os.environ, **isolated_airflow_env()}
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        found: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None
            assert self.proc.stdout is not None
            for line in self.proc.stdout:  # keep draining so the pipe never fills
                match = _URL_RE.search(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True, name="emulator-stdout").start()
        if not ready.wait(self.start_timeout) or not found:
            self.stop()
            raise RuntimeError("the emulator subprocess did not start")
        self.url = found[0]
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the emulator process has used (from /proc)."""
        with open(f"/proc/{self.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL after 15 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tuned_model_body(*, examples: int = 15, epochs: int = 5, batch: int = 4) -> dict[str, Any]:
    """A create body as the seeds send it (snake_case), with ``examples`` number examples."""
    return {
        "display_name": "bench number generator",
        "base_model": "models/gemini-1.0-pro-001",
        "tuning_task": {
            "hyperparameters": {"batch_size": batch, "learning_rate": 0.001, "epoch_count": epochs},
            "training_data": {
                "examples": {
                    "examples": [{"text_input": str(i), "output": str(i + 1)} for i in range(examples)]
                }
            },
        },
    }


def create_tuned_models(url: str, count: int, *, prefix: str = "bench", **body: Any) -> list[str]:
    """Create ``count`` tuned models with plain requests; return their operation names."""
    import requests

    names = []
    with requests.Session() as session:
        session.headers["x-goog-api-key"] = API_KEY
        for i in range(count):
            response = session.post(
                f"{url}/v1beta/tunedModels",
                params={"tunedModelId": f"{prefix}-{i}"},
                json=tuned_model_body(**body),
                timeout=30,
            )
            response.raise_for_status()
            names.append(response.json()["name"])
    return names


def wait_active(url: str, name: str, timeout: float = 60.0) -> None:
    """Poll ``GET /v1beta/<tunedModels/id>`` until ACTIVE (bounded in time)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = requests.get(f"{url}/v1beta/{name}", headers={"x-goog-api-key": API_KEY}, timeout=10).json()
        if model.get("state") == "ACTIVE":
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not become ACTIVE in {timeout} s")


def control(url: str, method: str, path: str, body: Any = None) -> Any:
    """Call an ``/_emulator/`` control path and return its JSON."""
    import requests

    response = requests.request(method, f"{url}/_emulator/{path}", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def run_child(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``python <args>`` (a child mode of a benchmark) and return the JSON of its last stdout line."""
    merged = {**os.environ, **isolated_airflow_env(), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=merged,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"child {' '.join(args)} timed out after {timeout} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"child {' '.join(args)} printed nothing:\n{err[-3000:]}")
    return json.loads(lines[-1])


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)
