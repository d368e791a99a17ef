"""A real Airflow deployment for end-to-end tests: api-server, scheduler, dag-processor, triggerer.

sqlite + LocalExecutor with small parallelism, every process in its own process group on
loopback, stopped by PID (SIGTERM to the group, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowStack:
    """Start and stop the Airflow processes of one throw-away deployment.

    :param home: AIRFLOW_HOME to create.
    :param dags_folder: the folder the dag-processor parses.
    :param extra_env: more environment (connections, ...).
    """

    COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

    def __init__(self, home: Path, dags_folder: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-only-jwt-secret-0123456789abcdef",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = home / "process-logs"

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        with (self.logs / "db-migrate.log").open("wb") as out:
            subprocess.run(
                [str(BIN / "airflow"), "db", "migrate"], env=self.env, check=True, stdout=out, stderr=out
            )

    def start(self, component: str) -> subprocess.Popen[bytes]:
        args = [str(BIN / "airflow"), component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        log = (self.logs / f"{component}.log").open("ab")
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, start_new_session=True)
        self.procs[component] = proc
        return proc

    def start_all(self) -> None:
        for component in self.COMPONENTS:
            self.start(component)
        self.wait_for(lambda: self._get("/api/v2/monitor/health") is not None, 90, "api-server up")

    def stop(self, component: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(component, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for component in list(self.procs):
            self.stop(component)

    def log_text(self, component: str) -> str:
        path = self.logs / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- REST API ------------------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        try:
            resp = requests.get(f"{self.api}{path}", timeout=5)
        except requests.RequestException:
            return None
        return resp.json() if resp.status_code == 200 else None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, f"{self.api}{path}", json=body, timeout=10)
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; logs in {self.logs}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.wait_for(lambda: self._get(f"/api/v2/dags/{dag_id}"), 120, f"DAG {dag_id} parsed")
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        run = self._get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return run["state"] if run else None

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        body = self._get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        if not body:
            return {}
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        body = self._get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        if not body:
            return None
        value = body["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
