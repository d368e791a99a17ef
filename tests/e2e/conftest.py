"""Shared fixtures of the end-to-end tests: a migrated Airflow metadata DB, an emulator, the example DAGs.

The Airflow home is the isolated one of ``tests/conftest.py`` (``.airflow-home/tests``, its DAGs
folder is ``dags/``): ``dag.test()`` needs a migrated DB and the DAG files inside the configured DAGs
folder. Only the ``airflow_db`` fixture touches the DB schema (``airflow db migrate`` in a
subprocess, idempotent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tuning_api_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
E2E_API_KEY = "e2e-dag-test-key-7f3a"
#: Seconds per emulated tuning step: a 38-step job lasts ~0.4 s.
STEP_SECONDS = 0.01
#: The provider's poll interval for these tests (read when the DAG files are parsed).
POLL_SECONDS = "0.05"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the metadata DB of the tests' AIRFLOW_HOME (``airflow db migrate`` is idempotent)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(airflow), "db", "migrate"], env=dict(os.environ), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return home


def connection_json(url: str, api_key: str = E2E_API_KEY) -> str:
    """The ``AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT`` value for an emulator at ``url``."""
    return json.dumps({"conn_type": "generativelanguage", "host": url, "password": api_key})


@pytest.fixture(scope="module")
def e2e_emulator() -> Iterator[Emulator]:
    """One emulator per test module (fast steps, one accepted API key)."""
    with Emulator(step_seconds=STEP_SECONDS, api_keys=[E2E_API_KEY]) as emu:
        yield emu


@pytest.fixture
def use_emulator(e2e_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Point ``generative_language_default`` at the emulator and poll fast; empty request log."""
    monkeypatch.setenv("AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT", connection_json(e2e_emulator.url))
    monkeypatch.setenv("AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL", POLL_SECONDS)
    e2e_emulator.clear_request_log()
    return e2e_emulator


def load_dags() -> dict[str, Any]:
    """Parse ``dags/`` as the DAG processor does; fail on any import error."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return dict(bag.dags)
