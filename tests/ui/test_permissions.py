"""The Tuning view refuses a user who may read no DAG, through Airflow's app with an auth manager
that scopes DAG access per user (``tests/ui/auth_manager.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ui.auth_manager import ONLY_DAG


@pytest.fixture(scope="module")
def client(airflow_db: Any) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import create_app, purge_cached_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.ui.auth_manager.DagScopedAuthManager")
        purge_cached_app()
        try:
            yield TestClient(create_app("core"))
        finally:
            purge_cached_app()


def bearer(name: str, role: str = "op") -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role=role))
    return {"Authorization": f"Bearer {jwt}"}


@pytest.mark.parametrize(
    "path", ["/tuning/", "/tuning/job", "/tuning/api/connections", "/tuning/api/jobs?conn_id=x"]
)
def test_a_user_who_may_read_no_dag_gets_403(client: TestClient, path: str) -> None:
    answer = client.get(path, headers=bearer("nodags"))
    assert answer.status_code == 403
    assert "may not read DAGs" in answer.json()["detail"]


def test_a_user_who_may_read_one_dag_gets_the_page(client: TestClient) -> None:
    assert client.get("/tuning/", headers=bearer("onedag")).status_code == 200
    assert client.get("/tuning/api/connections", headers=bearer("onedag")).status_code == 200


def test_the_task_route_checks_that_dag(client: TestClient) -> None:
    params = {"run_id": "r", "task_id": "t"}
    other = client.get(
        "/tuning/api/task", params={"dag_id": "another_dag", **params}, headers=bearer("onedag")
    )
    assert other.status_code == 403
    mine = client.get("/tuning/api/task", params={"dag_id": ONLY_DAG, **params}, headers=bearer("onedag"))
    assert mine.status_code == 200
    assert mine.json()["name"] is None
