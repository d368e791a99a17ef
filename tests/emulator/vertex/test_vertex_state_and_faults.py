"""The emulator's shared machinery on the new routes: the state file (jobs keep progressing across a
restart, objects and issued tokens survive, a refused request writes nothing), fault injection
(including ``drop_after``), ``fields`` partial responses and the request log."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest
import requests

from tests.emulator.emulator_support import FakeClock
from tests.emulator.vertex.vertex_support import (
    REFRESH_TOKEN,
    VertexApi,
    access_token,
    jsonl,
    put_object,
    sft_body,
    sft_lines,
)
from tuning_api_emulator import Emulator


def test_state_survives_a_restart(
    make_emulator: Callable[..., Emulator], clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    state = tmp_path / "state.json"
    first = make_emulator(state_file=state, tokens=["static"], refresh_tokens=[REFRESH_TOKEN])
    token = access_token(first.url)
    uri = put_object(first.url, "sft/train.jsonl", jsonl(sft_lines(20)), token=token)
    api = VertexApi(first.url, token=token)
    name = api.create(sft_body(uri, labels={"run": "restart"}))["name"]
    clock.advance(5)
    assert api.job(name)["state"] == "JOB_STATE_RUNNING"
    before = state.read_bytes()
    api.error("POST", f"{api.parent()}/tuningJobs", 400, json={"baseModel": "gemini-2.5-flash"})
    assert state.read_bytes() == before  # validation happens before anything changes
    first.stop()

    second = make_emulator(state_file=state, tokens=["static"], refresh_tokens=[REFRESH_TOKEN])
    again = VertexApi(second.url, token=token)  # the issued token is still accepted
    assert again.job(name, "v1beta1")["tuningJobMetadata"]["completedStepCount"] == "3"
    clock.advance(100)
    assert again.job(name)["state"] == "JOB_STATE_SUCCEEDED"
    media = requests.get(
        f"{second.url}/storage/v1/b/tuning-data/o/sft%2Ftrain.jsonl",
        params={"alt": "media"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert media.content == jsonl(sft_lines(20)).encode()
    assert second.state()["tuningJobs"][0]["state"] == "JOB_STATE_SUCCEEDED"
    assert second.state()["buckets"] == ["tuning-data"]


def test_faults_apply_to_vertex_and_storage_routes(
    emulator: Emulator, vertex: VertexApi, train_uri: str
) -> None:
    emulator.set_faults(match="CreateTuningJob", error_503=1.0, retry_after=7)
    response = vertex.request("POST", f"{vertex.parent()}/tuningJobs", expect=503, json=sft_body(train_uri))
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["status"] == "UNAVAILABLE"
    emulator.set_faults(match="storage.objects.get", error_429=1.0)
    limited = requests.get(f"{emulator.url}/storage/v1/b/tuning-data/o/sft%2Ftrain.jsonl", timeout=30)
    assert limited.status_code == 429
    assert limited.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    emulator.set_faults(match="POST /v1beta1/projects/*/tuningJobs", drop_after=1.0)
    with pytest.raises(requests.ConnectionError):
        vertex.request("POST", f"{vertex.parent('v1beta1')}/tuningJobs", json=sft_body(train_uri))
    emulator.set_faults()
    listed = vertex.get(f"{vertex.parent()}/tuningJobs")
    assert len(listed["tuningJobs"]) == 1  # the dropped answer's create committed
    assert [r["status"] for r in emulator.request_log if r["rpc"] == "CreateTuningJob"] == [
        503,
        "dropped_after",
    ]


def test_fields_selects_parts_of_vertex_and_storage_answers(
    emulator: Emulator, vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    name = vertex.create(sft_body(train_uri))["name"]
    clock.advance(4)
    partial = vertex.get(f"/v1beta1/{name}", params={"fields": "state,tuningJobMetadata(completedStepCount)"})
    assert partial == {"state": "JOB_STATE_RUNNING", "tuningJobMetadata": {"completedStepCount": "2"}}
    listing = vertex.get(f"{vertex.parent()}/tuningJobs", params={"fields": "tuningJobs(name)"})
    assert listing == {"tuningJobs": [{"name": name}]}
    error = vertex.error("GET", f"/v1/{name}", 400, params={"fields": "state("})
    assert error["status"] == "INVALID_ARGUMENT"


def test_the_request_log_names_rpcs_and_hides_credentials(
    emulator: Emulator, vertex: VertexApi, train_uri: str
) -> None:
    vertex.create(sft_body(train_uri))
    entries = [r for r in emulator.request_log if r["rpc"] == "CreateTuningJob"]
    assert entries[0]["headers"]["Authorization"] == "<redacted>"
    assert '"trainingDatasetUri": "gs://tuning-data/sft/train.jsonl"' in entries[0]["body"]
    rpcs = {r["rpc"] for r in emulator.request_log}
    assert {"Token", "storage.buckets.get", "storage.buckets.insert", "storage.objects.insert"} <= rpcs
