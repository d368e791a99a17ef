"""Run one DAG through ``dag.test()`` (the ``airflow dags test`` command) in its own Airflow home.

Each run gets a fresh home: a copy of a DB migrated once per session, its own logs folder, its own
environment (connection, Fernet key), so what a run leaves behind (task logs, XCom, rendered
fields) belongs to that run alone and can be inspected after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability import airflow_db

BIN = Path(sys.executable).parent


def base_env(home: Path, dags_folder: Path, fernet_key: str) -> dict[str, str]:
    """The environment of an Airflow CLI process in ``home`` (no connection yet)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "PYTEST_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__FERNET_KEY=fernet_key,
        PYTHONUNBUFFERED="1",
    )
    return env


def migrate(home: Path, dags_folder: Path, fernet_key: str) -> None:
    """Create ``home`` with a migrated sqlite DB."""
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=base_env(home, dags_folder, fernet_key),
        check=True,
        capture_output=True,
        timeout=300,
    )


@dataclass
class DagTestRun:
    """The outcome of one ``airflow dags test`` run."""

    dag_id: str
    home: Path
    returncode: int
    output: str

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

    def run_id(self) -> str:
        found = airflow_db.rows(self.db, "SELECT run_id FROM dag_run WHERE dag_id = ?", (self.dag_id,))
        assert len(found) == 1, found
        return str(found[0]["run_id"])

    def run_state(self) -> str:
        found = airflow_db.rows(self.db, "SELECT state FROM dag_run WHERE dag_id = ?", (self.dag_id,))
        assert len(found) == 1, found
        return str(found[0]["state"])

    def task_states(self) -> dict[str, str | None]:
        found = airflow_db.rows(
            self.db,
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?",
            (self.dag_id,),
        )
        return {
            row["task_id"] + (f"[{row['map_index']}]" if row["map_index"] >= 0 else ""): row["state"]
            for row in found
        }

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        found = airflow_db.rows(
            self.db,
            'SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND "key" = ? AND map_index = -1',
            (self.dag_id, task_id, key),
        )
        assert len(found) == 1, f"{task_id}/{key}: {found}"
        value = found[0]["value"]
        return json.loads(value) if isinstance(value, (str, bytes)) else value


def run_dag_test(
    dag_id: str,
    *,
    template: Path,
    home: Path,
    dags_folder: Path,
    fernet_key: str,
    connection: dict[str, Any],
    extra_env: dict[str, str] | None = None,
    conf: dict[str, Any] | None = None,
    timeout: float = 300,
    watch: Callable[[], None] | None = None,
) -> DagTestRun:
    """Run ``airflow dags test <dag_id>`` in a fresh copy of the migrated ``template`` home.

    :param dag_id: the DAG to run.
    :param template: a home made by :func:`migrate` (its DB is copied).
    :param home: the new home to create.
    :param dags_folder: the folder holding the DAG file.
    :param fernet_key: the Fernet key of the deployment.
    :param connection: the ``generative_language_default`` connection (as JSON).
    :param extra_env: more environment.
    :param conf: the run's conf.
    :param timeout: seconds before the run is killed (and the test fails).
    :param watch: called about every 0.2 s while the run goes on (e.g. to restart the emulator).
    """
    home.mkdir(parents=True)
    shutil.copy2(template / "airflow.db", home / "airflow.db")
    env = base_env(home, dags_folder, fernet_key)
    env["AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT"] = json.dumps(connection)
    env.update(extra_env or {})
    args = [str(BIN / "airflow"), "dags", "test", dag_id]
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    out_path = home / "dags-test-output.log"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"airflow dags test {dag_id} did not finish in {timeout}s")
                if watch is not None:
                    watch()
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    return DagTestRun(dag_id, home, proc.returncode, out_path.read_text(errors="replace"))
