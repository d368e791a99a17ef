"""Fixtures of the reliability tests: one real Airflow deployment (api-server, scheduler,
dag-processor, triggerer; sqlite + LocalExecutor) talking to an in-process emulator.

The deployment is shared by the tests that need real processes (triggerer restart, worker crash,
the secret-leak run through a real triggerer). Its connection carries a recognisable API key so
every run there is also material for the leak scan. Nothing here is autouse.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_tuning.operators._ids import default_tuned_model_id
from tests.e2e.airflow_stack import AirflowStack
from tests.reliability import dagtest
from tests.reliability.leakscan import make_secret
from tuning_api_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
RELIABILITY_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = ROOT / "dags"
#: Seconds per emulated tuning step in the shared deployment.
STACK_STEP_SECONDS = 0.5
RUN_TIMEOUT = 240.0


def build_dags_folder(target: Path, *, examples: bool = True, reliability: bool = True) -> Path:
    """Copy the reliability test DAGs and/or the example DAGs (with their data) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    sources = []
    if reliability:
        sources += sorted(RELIABILITY_DAGS.glob("*.py"))
    if examples:
        sources += sorted(EXAMPLE_DAGS.glob("*.py"))
        if (EXAMPLE_DAGS / "data").is_dir():
            shutil.copytree(EXAMPLE_DAGS / "data", target / "data", dirs_exist_ok=True)
    for source in sources:
        shutil.copy2(source, target / source.name)
    return target


def example_dag_ids() -> list[str]:
    """The ids of the example DAGs: one per ``dags/example_*.py`` file, named like the file."""
    return sorted(path.stem for path in EXAMPLE_DAGS.glob("example_*.py"))


@dataclass
class Deployment:
    """The shared deployment: Airflow processes, the emulator they call and what the tests need."""

    stack: AirflowStack
    emulator: Emulator
    home: Path
    dags_folder: Path
    fernet_key: str
    api_key: str
    #: The ``google_cloud_platform`` connection's OAuth secrets: ``client_secret``, ``refresh_token``.
    oauth_secrets: dict[str, str]

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

    def wait_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
        """Wait until the run is finished; return its state."""
        return str(
            self.stack.wait_for(
                lambda: (
                    (self.stack.run_state(dag_id, run_id) or "") in ("success", "failed")
                    and self.stack.run_state(dag_id, run_id)
                ),
                timeout,
                f"{dag_id} {run_id} to finish",
                interval=1.0,
            )
        )

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = RUN_TIMEOUT
    ) -> None:
        """Wait until one task instance is in ``state``."""
        self.stack.wait_for(
            lambda: self.stack.task_states(dag_id, run_id).get(task_id) == state,
            timeout,
            f"{dag_id}.{task_id} to be {state}",
            interval=0.5,
        )

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The REST API's view of one task instance."""
        return dict(
            self.stack.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        )

    def models_of(self, dag_id: str, task_id: str, run_id: str) -> list[dict[str, Any]]:
        """The emulator's tuned models of one task instance: its deterministic id and any
        recreation of it (``<id>-r2``...)."""
        name = f"tunedModels/{default_tuned_model_id(dag_id, task_id, run_id)}"
        return [
            m
            for m in self.emulator.state()["tunedModels"]
            if m["name"] == name or m["name"].startswith(f"{name}-r")
        ]

    def models_created_by(self, dag_id: str) -> list[dict[str, Any]]:
        """Every tuned model on the emulator whose id starts like ``dag_id``'s default ids."""
        prefix = "tunedModels/" + dag_id.replace("_", "-")[:20]
        return [m for m in self.emulator.state()["tunedModels"] if m["name"].startswith(prefix)]


#: The project and bucket of the Vertex AI example (its ``staging_uri`` param's default bucket).
VERTEX_PROJECT = "reliability-project"
VERTEX_BUCKET = "airflow-tuning-staging"


def create_bucket(url: str, user: dict[str, str], bucket: str) -> None:
    """Create ``bucket`` in the emulator's Cloud Storage with a token its ``/token`` issued."""
    import requests

    grant = requests.post(f"{url}/token", data={"grant_type": "refresh_token", **user}, timeout=30)
    grant.raise_for_status()
    created = requests.post(
        f"{url}/storage/v1/b",
        params={"project": VERTEX_PROJECT},
        json={"name": bucket},
        headers={"Authorization": f"Bearer {grant.json()['access_token']}"},
        timeout=30,
    )
    created.raise_for_status()


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Start the shared deployment once per session; stop every process by PID afterwards."""
    base = tmp_path_factory.mktemp("reliability-stack")
    dags = build_dags_folder(base / "dags")
    api_key = make_secret("APIKEY")
    fernet_key = Fernet.generate_key().decode()
    refresh_token = make_secret("REFRESH")
    emulator = Emulator(
        step_seconds=STACK_STEP_SECONDS, api_keys=[api_key], refresh_tokens=[refresh_token], seed=11
    )
    emulator.start()
    conn = {"conn_type": "generativelanguage", "host": emulator.url, "password": api_key}
    # The Vertex AI example: OAuth user credentials that refresh at the emulator, and its staging bucket.
    user = {
        "type": "authorized_user",
        "client_id": "reliability.apps.googleusercontent.com",
        "client_secret": make_secret("CLIENTSECRET"),
        "refresh_token": refresh_token,
        "token_uri": f"{emulator.url}/token",
    }
    gcp_conn = {
        "conn_type": "google_cloud_platform",
        "host": emulator.url,
        "extra": json.dumps({"project": VERTEX_PROJECT, "keyfile_dict": json.dumps(user)}),
    }
    create_bucket(emulator.url, user, VERTEX_BUCKET)
    stack = AirflowStack(
        home=base / "home",
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT": json.dumps(conn),
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(gcp_conn),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            # A killed triggerer's triggers are adopted once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
            "AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL": "1",
        },
    )

    def stop() -> None:
        stack.stop_all()
        emulator.stop()

    _RUNNING.append(stop)
    try:
        stack.migrate()
        stack.start_all()
        oauth_secrets = {"client_secret": user["client_secret"], "refresh_token": refresh_token}
        yield Deployment(stack, emulator, base / "home", dags, fernet_key, api_key, oauth_secrets)
    finally:
        _stop_running()


#: Stoppers of the running shared deployment (at most one).
_RUNNING: list[Callable[[], None]] = []


def _stop_running() -> None:
    while _RUNNING:
        _RUNNING.pop()()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the session-scoped deployment as soon as the last test of this folder is done, instead
    of keeping Airflow running through the rest of the session."""
    here = Path(__file__).resolve().parent
    if _RUNNING and (nextitem is None or here not in Path(nextitem.path).resolve().parents):
        _stop_running()


@dataclass
class DagTestSetup:
    """A migrated Airflow home to copy for each ``airflow dags test`` run, and the DAGs folder."""

    template: Path
    dags_folder: Path
    fernet_key: str
    workdir: Path
    _runs: int = 0

    def new_home(self, label: str) -> Path:
        """A fresh, not yet existing home path for one run."""
        self._runs += 1
        return self.workdir / f"run-{self._runs:02d}-{label}"


@pytest.fixture(scope="session")
def dag_test_setup(tmp_path_factory: pytest.TempPathFactory) -> DagTestSetup:
    """Migrate one Airflow home per session; each ``dags test`` run works on a copy of its DB."""
    base = tmp_path_factory.mktemp("reliability-dagtest")
    dags = build_dags_folder(base / "dags", reliability=False)
    fernet_key = Fernet.generate_key().decode()
    dagtest.migrate(base / "template", dags, fernet_key)
    return DagTestSetup(base / "template", dags, fernet_key, base)
