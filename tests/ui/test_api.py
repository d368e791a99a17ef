"""The Tuning view's server API, through Airflow's own api-server app (FastAPI test client):
authentication, permissions, listing, filters, paging, the job page's data, API faults."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ui.conftest import token
from tests.ui.seed import API_KEY, Seeded
from tuning_api_emulator import Emulator


@pytest.fixture(scope="module")
def client(airflow_app: Any) -> TestClient:
    return TestClient(airflow_app)


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('admin')}"}


def viewer() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('viewer')}"}


def jobs(client: TestClient, conn_id: str, **params: Any) -> Any:
    answer = client.get("/tuning/api/jobs", params={"conn_id": conn_id, **params}, headers=admin())
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(
    "path",
    [
        "/tuning/",
        "/tuning/job",
        "/tuning/ti",
        "/tuning/static/tuning.css",
        "/tuning/api/jobs?conn_id=ui_gemini",
    ],
)
def test_every_route_refuses_an_unauthenticated_request(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)


def test_the_pages_and_assets_are_served_to_a_logged_in_user(client: TestClient) -> None:
    page = client.get("/tuning/", headers=admin())
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "static/tuning.css" in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert client.get("/tuning/static/tuning.js", headers=admin()).status_code == 200


def test_the_browser_cookie_authenticates_like_the_airflow_ui(client: TestClient, gemini_conn: str) -> None:
    client.cookies.set("_token", token("admin"))
    try:
        answer = client.get("/tuning/api/jobs", params={"conn_id": gemini_conn})
    finally:
        client.cookies.clear()
    assert answer.status_code == 200, answer.text


def test_a_user_who_may_not_read_the_connection_gets_403(client: TestClient, gemini_conn: str) -> None:
    answer = client.get("/tuning/api/jobs", params={"conn_id": gemini_conn}, headers=viewer())
    assert answer.status_code == 403
    assert gemini_conn in answer.json()["detail"]
    answer = client.get(
        "/tuning/api/job", params={"conn_id": gemini_conn, "name": "tunedModels/x"}, headers=viewer()
    )
    assert answer.status_code == 403


def test_the_list_shows_each_job_with_its_state_and_final_loss(
    client: TestClient, gemini_conn: str, seeded_emulator: tuple[Emulator, Any, Seeded]
) -> None:
    seeded = seeded_emulator[2]
    body = jobs(client, gemini_conn)
    assert body["backend"] == "gemini"
    assert body["total"] == 3
    assert body["counts"] == {"pending": 0, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 0}
    rows = {row["name"]: row for row in body["jobs"]}
    assert rows[seeded.finished]["status"] == "succeeded"
    assert rows[seeded.finished]["progress"] == 1.0
    assert rows[seeded.finished]["display_name"] == "Finished model"
    assert rows[seeded.finished]["base_model"] == "models/gemini-1.5-flash-001-tuning"
    assert rows[seeded.finished]["finished"]
    assert rows[seeded.running]["status"] == "running"
    assert rows[seeded.running]["finished"] is None
    assert rows[seeded.failed]["status"] == "failed"
    for name, count in seeded.snapshots.items():
        assert rows[name]["steps"] == count
        assert isinstance(rows[name]["final_loss"], float)
    assert API_KEY not in str(body)


def test_filter_sort_and_page(client: TestClient, gemini_conn: str, seeded_emulator: Any) -> None:
    seeded = seeded_emulator[2]
    assert [r["name"] for r in jobs(client, gemini_conn, status="failed")["jobs"]] == [seeded.failed]
    found = jobs(client, gemini_conn, q="RUNNING mod")
    assert found["matched"] == 1
    assert found["jobs"][0]["name"] == seeded.running
    by_name = [r["name"] for r in jobs(client, gemini_conn, sort="name", order="asc")["jobs"]]
    assert by_name == sorted(by_name)
    first = jobs(client, gemini_conn, sort="name", order="asc", limit=2)
    second = jobs(client, gemini_conn, sort="name", order="asc", limit=2, offset=2)
    assert [r["name"] for r in first["jobs"] + second["jobs"]] == by_name
    by_loss = [r["final_loss"] for r in jobs(client, gemini_conn, sort="final_loss", order="asc")["jobs"]]
    assert by_loss == sorted(by_loss)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"sort": "password"}, "sort must be one of"),
        ({"order": "up"}, "order must be"),
    ],
)
def test_bad_query_parameters_are_named(
    client: TestClient, gemini_conn: str, params: dict[str, str], needle: str
) -> None:
    answer = client.get("/tuning/api/jobs", params={"conn_id": gemini_conn, **params}, headers=admin())
    assert answer.status_code == 400
    assert needle in answer.json()["detail"]


def test_an_unknown_or_non_tuning_connection_is_a_clear_error(client: TestClient, gemini_conn: str) -> None:
    missing = client.get("/tuning/api/jobs", params={"conn_id": "no_such_conn"}, headers=admin())
    assert missing.status_code == 404
    assert "'no_such_conn' is not defined" in missing.json()["detail"]
    other = client.get("/tuning/api/jobs", params={"conn_id": "ui_not_tuning"}, headers=admin())
    assert other.status_code == 400
    assert "not a tuning connection" in other.json()["detail"]


def test_the_job_page_data_has_the_whole_curve_and_the_hyperparameters(
    client: TestClient, gemini_conn: str, seeded_emulator: Any
) -> None:
    seeded = seeded_emulator[2]
    answer = client.get(
        "/tuning/api/job", params={"conn_id": gemini_conn, "name": seeded.finished}, headers=admin()
    )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert len(job["curve"]) == seeded.snapshots[seeded.finished]
    assert [p["step"] for p in job["curve"]] == list(range(1, len(job["curve"]) + 1))
    assert {p["epoch"] for p in job["curve"]} == {0, 1, 2}  # 8 steps, 2 epochs: the last is marked 2
    assert job["hyperparameters"] == {"epochCount": 2, "batchSize": 2, "learningRate": 0.001}
    assert job["outputs"] == {"tuned_model": seeded.finished}
    assert job["error"] is None
    assert job["final_loss"] == job["curve"][-1]["loss"]


def test_a_running_job_reports_its_progress_and_a_failed_one_its_error(
    client: TestClient, gemini_conn: str, seeded_emulator: Any
) -> None:
    seeded = seeded_emulator[2]
    running = client.get(
        "/tuning/api/job", params={"conn_id": gemini_conn, "name": seeded.running}, headers=admin()
    ).json()
    assert running["progress"] == pytest.approx(seeded.snapshots[seeded.running] / 40)
    assert running["data_stats"] == {"total_steps": 40}
    failed = client.get(
        "/tuning/api/job", params={"conn_id": gemini_conn, "name": seeded.failed}, headers=admin()
    ).json()
    assert failed["error"]["message"] == "training diverged: loss is NaN"
    assert len(failed["curve"]) == seeded.snapshots[seeded.failed]
    assert API_KEY not in str(failed)


def test_an_unknown_job_is_404(client: TestClient, gemini_conn: str) -> None:
    answer = client.get(
        "/tuning/api/job", params={"conn_id": gemini_conn, "name": "tunedModels/nope"}, headers=admin()
    )
    assert answer.status_code == 404
    assert "not found" in answer.json()["detail"]


def test_reads_are_cached_briefly(client: TestClient, gemini_conn: str, seeded_emulator: Any) -> None:
    emu = seeded_emulator[0]
    for _ in range(3):
        jobs(client, gemini_conn)
    lists = [r for r in emu.request_log if r["path"].endswith("/tunedModels")]
    assert len(lists) == 1


def test_a_slow_api_gets_a_clear_message_instead_of_hanging(
    client: TestClient, gemini_conn: str, seeded_emulator: Any
) -> None:
    emu = seeded_emulator[0]
    emu.set_faults(match="ListTunedModels", latency=9.0)
    started = time.monotonic()
    answer = client.get("/tuning/api/jobs", params={"conn_id": gemini_conn}, headers=admin())
    elapsed = time.monotonic() - started
    assert answer.status_code == 504
    assert "did not answer within 5 s" in answer.json()["detail"]
    assert elapsed < 8.0


def test_a_failing_api_gets_its_error_in_the_message(
    client: TestClient, gemini_conn: str, seeded_emulator: Any
) -> None:
    emu = seeded_emulator[0]
    emu.set_faults(match="ListTunedModels", error_503=1.0, retry_after=0)
    answer = client.get("/tuning/api/jobs", params={"conn_id": gemini_conn}, headers=admin())
    assert answer.status_code == 502
    detail = answer.json()["detail"]
    assert "answered with an error" in detail
    assert "503" in detail
    assert len([r for r in emu.request_log if r["path"].endswith("/tunedModels")]) == 1  # no retry
