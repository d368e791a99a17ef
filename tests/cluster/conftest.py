"""Fixtures of the cluster tests: one CeleryExecutor cluster (``scripts/cluster.py``) per session.

PostgreSQL, Redis, the emulator (its own process, inspected over ``/_emulator/``), an api-server, a
scheduler, a dag-processor, two Celery workers and two triggerers, all on loopback. The DAGs folder
holds ``tests/cluster/dags/`` and the trigger-form example with the examples' data. The cluster is
stopped as soon as the last test of this folder is done, and in any case at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_tuning.operators._ids import default_tuned_model_id
from scripts import cluster as cluster_script
from tests.e2e.airflow_stack import AirflowStack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: Seconds per emulated tuning step (the example's 38-step tuning takes about 19 s).
STEP_SECONDS = 0.5
RUN_TIMEOUT = 420.0
#: Seconds a REST call may take.
API_TIMEOUT = 90.0


@dataclass
class ClusterDeployment:
    """The running cluster and what the tests ask of it."""

    cluster: cluster_script.Cluster

    @property
    def stack(self) -> AirflowStack:
        assert self.cluster.stack is not None
        return self.cluster.stack

    @property
    def db(self) -> str:
        """The metadata DB's URL, for ``tests/reliability/airflow_db.py``."""
        return self.cluster.dsn

    @property
    def fernet_key(self) -> str:
        return self.cluster.fernet_key

    # --- the emulator, over HTTP -----------------------------------------------------------------

    def emulator(self, method: str, path: str, body: Any = None) -> Any:
        resp = requests.request(
            method, f"{self.cluster.emulator_url}/_emulator/{path}", json=body, timeout=30
        )
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def tuned_models(self) -> list[dict[str, Any]]:
        return list(self.emulator("GET", "state")["tunedModels"])

    def request_log(self) -> list[dict[str, Any]]:
        return list(self.emulator("GET", "requests")["requests"])

    def models_of(self, dag_id: str, task_id: str, run_id: str) -> list[dict[str, Any]]:
        """The tuned models of one task instance: its deterministic id and any ``-r2``... recreation."""
        name = f"tunedModels/{default_tuned_model_id(dag_id, task_id, run_id)}"
        return [m for m in self.tuned_models() if m["name"] == name or m["name"].startswith(f"{name}-r")]

    # --- Airflow ---------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One REST API call (the api-server may pause for seconds while it warms up: wait)."""
        resp = requests.request(method, f"{self.cluster.api_url}{path}", json=body, timeout=API_TIMEOUT)
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    def trigger_many(self, dag_id: str, count: int, conf: dict[str, Any] | None = None) -> list[str]:
        """Unpause ``dag_id`` once it is parsed, trigger ``count`` runs and return their run ids."""

        def parsed() -> bool:
            return requests.get(f"{self.cluster.api_url}/api/v2/dags/{dag_id}", timeout=API_TIMEOUT).ok

        self.stack.wait_for(parsed, 180, f"DAG {dag_id} parsed", 1.0)
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        body = {"logical_date": None, "conf": conf or {}}
        return [
            str(self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]) for _ in range(count)
        ]

    def run_states(self, dag_id: str) -> dict[str, str]:
        body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=1000")
        return {run["dag_run_id"]: run["state"] for run in body["dag_runs"]}

    def wait_runs(self, dag_id: str, run_ids: list[str], timeout: float = RUN_TIMEOUT) -> dict[str, str]:
        """Wait until every run is finished; return their states."""

        def finished() -> dict[str, str] | None:
            states = self.run_states(dag_id)
            mine = {run: states.get(run, "") for run in run_ids}
            return mine if all(state in ("success", "failed") for state in mine.values()) else None

        return dict(self.stack.wait_for(finished, timeout, f"{len(run_ids)} runs of {dag_id} to finish", 2.0))

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task instance (hostname, state, try number)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return list(self.api("GET", path)["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.api("GET", path)["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value

    def triggerer_jobs(self) -> dict[int, str]:
        """The triggerer jobs in the DB: job id -> hostname (``triggerer-1``, ``triggerer-2``)."""
        from tests.reliability.airflow_db import rows

        found = rows(self.db, "SELECT id, hostname FROM job WHERE job_type = 'TriggererJob'")
        return {int(row["id"]): str(row["hostname"]) for row in found}


def _build_dags_folder(target: Path) -> Path:
    target.mkdir(parents=True)
    for source in sorted((HERE / "dags").glob("*.py")):
        shutil.copy2(source, target / source.name)
    shutil.copy2(ROOT / "dags" / "example_tuning_form.py", target / "example_tuning_form.py")
    shutil.copytree(ROOT / "dags" / "data", target / "data")
    return target


#: Stoppers of the running cluster (at most one).
_RUNNING: list[Callable[[], None]] = []


def _stop_running() -> None:
    while _RUNNING:
        _RUNNING.pop()()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterDeployment]:
    """Start the cluster once per session; stop every process by PID afterwards, even on failure.
    Its folder is removed, unless a test failed: then its logs stay for a post-mortem."""
    # PostgreSQL runs as ``nobody`` under root: its folder must be reachable by that user, which
    # pytest's private (0700) temporary folders are not.
    base = Path(tempfile.mkdtemp(prefix="airflow-cluster-"))
    os.chmod(base, 0o755)  # noqa: S103 - a throw-away folder on loopback-only servers
    dags = _build_dags_folder(base / "dags")
    deployment = ClusterDeployment(
        cluster_script.Cluster(base=base / "cluster", dags_folder=dags, step_seconds=STEP_SECONDS)
    )

    def stop() -> None:
        deployment.cluster.down()
        if request.session.testsfailed:
            shutil.rmtree(base / "cluster" / "postgres", ignore_errors=True)
            print(f"\ncluster logs kept in {deployment.cluster.logs}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    _RUNNING.append(stop)
    try:
        cluster_script.ensure_installed()
        deployment.cluster.up()
        yield deployment
    finally:
        _stop_running()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the cluster as soon as the last test of this folder is done."""
    if _RUNNING and (nextitem is None or HERE not in Path(nextitem.path).resolve().parents):
        _stop_running()
