"""TuningOperationTrigger with backend="vertex": the same trigger and wait policy on a
google_cloud_platform connection, polling a Vertex AI TuningJob (a scripted loopback API that also
serves the OAuth token endpoint)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tuning_loopback import ScriptedApi, error, set_connection

from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger
from tests.unit.hooks.glapi_loopback import service_account_info

JOB = "projects/123456789012/locations/europe-west4/tuningJobs/42"
PATH = f"/v1/{JOB}"
TOKEN = "ya29.vertex-loopback-token"
FAST = {"poll_interval": 0.01, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}


def job(state: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": JOB,
        "state": state,
        "tuningDataStats": {"supervisedTuningDataStats": {"tuningStepCount": "100"}},
    }
    body.update(fields)
    return body


@pytest.fixture
def vertex_conn(api: ScriptedApi, monkeypatch: pytest.MonkeyPatch) -> str:
    api.script("/token", {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}, method="POST")
    info = service_account_info(f"{api.url}/token")
    conn = {
        "conn_type": "google_cloud_platform",
        "host": api.url,
        "extra": json.dumps({"keyfile_dict": json.dumps(info), "project": "my-project-1"}),
    }
    set_connection(monkeypatch, "vertex_loopback", json.dumps(conn))
    return "vertex_loopback"


async def run(trigger: TuningOperationTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), 20)


async def test_a_vertex_job_is_polled_to_success(api: ScriptedApi, vertex_conn: str):
    api.script(
        PATH,
        job("JOB_STATE_PENDING"),
        job(
            "JOB_STATE_RUNNING",
            tuningJobState="TUNING_JOB_STATE_TUNING",
            tuningJobMetadata={"completedStepCount": "40"},
        ),
        job("JOB_STATE_SUCCEEDED", tunedModel={"endpoint": "projects/1/locations/europe-west4/endpoints/9"}),
    )
    trigger = TuningOperationTrigger(conn_id=vertex_conn, name=JOB, backend="vertex", **FAST)
    [event] = await run(trigger)
    assert event["status"] == "success"
    assert event["tuned_model"] == JOB
    assert (event["summary"]["state"], event["summary"]["completed_steps"]) == ("ACTIVE", 100)
    polls = api.seen(PATH)
    assert len(polls) == 3
    assert all(p.headers["Authorization"] == f"Bearer {TOKEN}" for p in polls)
    assert all(p.query.startswith("fields=") for p in polls)
    _, kwargs = trigger.serialize()
    assert kwargs["backend"] == "vertex"
    assert TuningOperationTrigger(**kwargs).serialize()[1] == kwargs


@pytest.mark.parametrize(
    ("state", "error_body", "expected"),
    [
        (
            "JOB_STATE_FAILED",
            {"code": 3, "message": "Line 7 of gs://b/t.jsonl is not valid JSON."},
            ("FAILED", 3, "Line 7 of gs://b/t.jsonl is not valid JSON."),
        ),
        ("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"}, ("CANCELLED", 1, "CANCELED")),
        ("JOB_STATE_EXPIRED", None, ("FAILED", None, "the tuning job expired before it finished")),
    ],
)
async def test_an_ended_job_that_did_not_succeed_fails(api, vertex_conn, state, error_body, expected):
    api.script(PATH, job(state, **({"error": error_body} if error_body else {})))
    [event] = await run(TuningOperationTrigger(conn_id=vertex_conn, name=JOB, backend="vertex", **FAST))
    assert event["status"] == "failed"
    assert (event["state"], event["code"], event["message"]) == expected


async def test_queued_cancelling_and_paused_keep_waiting(api, vertex_conn):
    api.script(
        PATH,
        job("JOB_STATE_QUEUED"),
        job("JOB_STATE_PAUSED"),
        job("JOB_STATE_CANCELLING"),
        job("JOB_STATE_SUCCEEDED"),
    )
    [event] = await run(TuningOperationTrigger(conn_id=vertex_conn, name=JOB, backend="vertex", **FAST))
    assert event["status"] == "success"
    assert len(api.seen(PATH)) == 4


async def test_transient_errors_follow_the_same_wait_policy(api, vertex_conn):
    api.script(PATH, error(503, "UNAVAILABLE", "Try again."))
    trigger = TuningOperationTrigger(
        conn_id=vertex_conn, name=JOB, backend="vertex", max_consecutive_failures=3, **FAST
    )
    [event] = await run(trigger)
    assert (event["status"], event["failures"], event["http_status"]) == ("error", 3, 503)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "tunedModels/x"}, "tuningJobs/<id>"),
        ({"api_version": "v1beta"}, "api_version must be one of v1, v1beta1"),
    ],
)
def test_bad_vertex_arguments(kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(")):
        TuningOperationTrigger(**{"conn_id": "c", "name": JOB, "backend": "vertex", **kwargs})


async def test_a_user_kill_cancels_the_job_when_asked(api, vertex_conn):
    api.script(f"{PATH}:cancel", {}, method="POST")
    trigger = TuningOperationTrigger(conn_id=vertex_conn, name=JOB, backend="vertex", cancel_on_kill=True)
    await trigger.on_kill()
    (cancel,) = api.seen(f"{PATH}:cancel", method="POST")
    assert cancel.headers["Authorization"] == f"Bearer {TOKEN}"
    assert trigger.serialize()[1]["cancel_on_kill"] is True


async def test_without_cancel_on_kill_a_kill_leaves_the_job(api, vertex_conn):
    await TuningOperationTrigger(conn_id=vertex_conn, name=JOB, backend="vertex").on_kill()
    assert api.seen(f"{PATH}:cancel", method="POST") == []


async def test_data_stats_are_logged_once_and_then_no_longer_asked_for(api, vertex_conn, capsys):
    stats = {
        "supervisedTuningDataStats": {
            "tuningStepCount": "100",
            "tuningDatasetExampleCount": "1200",
            "totalBillableTokenCount": "345678",
            "totalTruncatedExampleCount": "3",
        }
    }
    api.script(
        PATH,
        job("JOB_STATE_PENDING", tuningDataStats={}),
        job("JOB_STATE_RUNNING", tuningDataStats=stats),
        job("JOB_STATE_RUNNING", tuningJobMetadata={"completedStepCount": "50"}),
        job("JOB_STATE_SUCCEEDED"),
    )
    [event] = await run(TuningOperationTrigger(conn_id=vertex_conn, name=JOB, backend="vertex", **FAST))
    logged = capsys.readouterr().out
    assert logged.count("data stats") == 1
    assert f"{JOB}: data stats: 1,200 examples, 345,678 billable tokens, 3 truncated" in logged
    assert event["summary"]["data_stats"] == {"examples": 1200, "billable_tokens": 345678, "truncated": 3}
    asked = [p.query for p in api.seen(PATH)]
    assert all("totalBillableTokenCount" in q for q in asked[:2])
    assert not any("totalBillableTokenCount" in q for q in asked[2:])
    assert all("tuningStepCount" in q for q in asked)
