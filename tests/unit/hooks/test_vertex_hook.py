"""VertexTuningHook's requests, as a loopback server records them: routes, bodies, auth, no repeat of
a create, paging, the version dropped on model delete, and uploads on the same credentials."""

from __future__ import annotations

import json

import pytest

from airflow_provider_tuning.exceptions import ApiConnectionError, InvalidInputError
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.vertex import (
    VertexTuningHook,
    content_addressed_name,
    split_gcs_uri,
)
from tests.unit.hooks.glapi_loopback import DROP, Reply, service_account_info

PARENT = "projects/my-project-1/locations/europe-west4"
JOB = "projects/123456789012/locations/europe-west4/tuningJobs/42"


@pytest.fixture
def hook(monkeypatch, api_server, token_endpoint):
    conn = {
        "conn_type": "google_cloud_platform",
        "host": api_server.url,
        "extra": json.dumps(
            {
                "keyfile_dict": json.dumps(service_account_info(token_endpoint.token_uri)),
                "project": "my-project-1",
            }
        ),
    }
    monkeypatch.setenv("AIRFLOW_CONN_VERTEX_TEST", json.dumps(conn))
    made = VertexTuningHook(
        "vertex_test", location="europe-west4", retry=RetryPolicy(max_attempts=3, initial_delay=0.01)
    )
    made._sleep = lambda seconds: None
    yield made
    made.close()


def test_create_posts_the_job_under_the_parent_with_a_bearer_token(hook, api_server, token_endpoint):
    api_server.replies.append(Reply(200, {"name": JOB, "state": "JOB_STATE_PENDING"}))
    body = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}
    assert hook.create_tuning_job(body)["name"] == JOB
    (request,) = api_server.requests
    assert (request.method, request.path) == ("POST", f"/v1/{PARENT}/tuningJobs")
    assert request.json == body
    assert request.headers["authorization"] == f"Bearer {token_endpoint.issued[0]}"
    assert "x-goog-api-key" not in request.headers


def test_a_create_whose_answer_is_lost_is_never_repeated(hook, api_server):
    """No client-chosen id: a repeat could start a second paid job (the operator looks it up)."""
    api_server.replies.append(DROP)
    with pytest.raises(ApiConnectionError, match="a retry could create a duplicate"):
        hook.create_tuning_job({"baseModel": "gemini-2.5-flash"})
    assert len(api_server.requests) == 1


def test_get_list_cancel(hook, api_server):
    api_server.replies.extend(
        [
            Reply(200, {"name": JOB, "state": "JOB_STATE_RUNNING"}),
            Reply(200, {"tuningJobs": [{"name": JOB}], "nextPageToken": "t2"}),
            Reply(200, {"tuningJobs": [{"name": JOB + "3"}]}),
            Reply(200, {}),
        ]
    )
    assert hook.get_tuning_job(JOB)["state"] == "JOB_STATE_RUNNING"
    jobs = list(hook.list_tuning_jobs(filter='labels.airflow-ti="abc"', page_size=50))
    assert [j["name"] for j in jobs] == [JOB, JOB + "3"]
    assert hook.cancel_tuning_job(JOB) == {}
    get, page1, page2, cancel = api_server.requests
    assert get.path == f"/v1/{JOB}"
    assert page1.query == {"filter": ['labels.airflow-ti="abc"'], "pageSize": ["50"]}
    assert page2.query["pageToken"] == ["t2"]
    assert (cancel.method, cancel.path, cancel.json) == ("POST", f"/v1/{JOB}:cancel", {})


def test_teardown_and_inference_routes(hook, api_server):
    model = "projects/123456789012/locations/europe-west4/models/77@3"
    endpoint = "projects/123456789012/locations/europe-west4/endpoints/88"
    api_server.replies.extend([Reply(200, {"name": "op"})] * 4)
    hook.delete_model(model)
    hook.undeploy_model(endpoint, "dm-1")
    hook.delete_endpoint(endpoint)
    hook.generate_content(endpoint, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    paths = [(r.method, r.path) for r in api_server.requests]
    assert paths == [
        ("DELETE", "/v1/projects/123456789012/locations/europe-west4/models/77"),  # every version goes
        ("POST", f"/v1/{endpoint}:undeployModel"),
        ("DELETE", f"/v1/{endpoint}"),
        ("POST", f"/v1/{endpoint}:generateContent"),
    ]


def test_uploads_go_to_storage_on_the_same_credentials(hook, api_server, token_endpoint):
    api_server.replies.append(Reply(200, {"bucket": "b", "name": "tuning/x.jsonl"}))
    hook.upload_object("b", "tuning/x.jsonl", b'{"contents": []}\n', content_type="application/jsonl")
    (request,) = api_server.requests
    assert (request.method, request.path) == ("POST", "/upload/storage/v1/b/b/o")
    assert request.query == {"uploadType": ["media"], "name": ["tuning/x.jsonl"]}
    assert request.body == b'{"contents": []}\n'
    assert request.headers["content-type"] == "application/jsonl"
    assert request.headers["authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda h: h.get_tuning_job("tunedModels/x"), "tuningJobs/<id>"),
        (lambda h: h.cancel_tuning_job(f"{JOB}/../other"), "tuningJobs/<id>"),
        (lambda h: h.delete_model("projects/p1234/locations/l/endpoints/1"), "models/<id>"),
        (lambda h: h.generate_content("projects/p1234/locations/l/models/1", {}), "endpoints/<id>"),
        (lambda h: h.create_tuning_job(["not a dict"]), "tuning_job must be a dict"),
    ],
)
def test_bad_names_fail_before_any_request(hook, api_server, call, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(")):
        call(hook)
    assert api_server.requests == []


def test_gcs_helpers():
    assert split_gcs_uri("gs://my-bucket/a/b.jsonl") == ("my-bucket", "a/b.jsonl")
    for bad in ("s3://b/k", "gs://B/k", "gs://x/k", None):
        with pytest.raises(InvalidInputError):
            split_gcs_uri(bad)
    first = content_addressed_name("tuning/", b"data")
    assert first == content_addressed_name("/tuning", b"data")  # a retry uploads the same object
    assert first != content_addressed_name("tuning", b"other data")
    assert first.startswith("tuning/")
    assert first.endswith(".jsonl")


def test_an_unknown_api_version_is_refused():
    with pytest.raises(InvalidInputError, match="api_version must be one of v1, v1beta1"):
        VertexTuningHook(api_version="v1beta")
