"""Inference on a tuned endpoint and the teardown routes: get the Model and Endpoint, undeploy,
delete both (in the order the service requires), and read the operations they return."""

from __future__ import annotations

import pytest

from tests.emulator.emulator_support import FakeClock
from tests.emulator.vertex.vertex_support import VertexApi, sft_body


@pytest.fixture
def tuned(vertex: VertexApi, clock: FakeClock, train_uri: str) -> dict[str, str]:
    job = vertex.create(sft_body(train_uri, tunedModelDisplayName="teardown", labels={"team": "nlp"}))
    clock.advance(100)
    return dict(vertex.job(job["name"])["tunedModel"], job=job["name"])


def test_generate_content_on_the_tuned_endpoint(vertex: VertexApi, tuned: dict[str, str]) -> None:
    for version in ("v1", "v1beta1"):
        answer = vertex.post(
            f"/{version}/{tuned['endpoint']}:generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "question 7"}]}]},
        )
        assert answer["candidates"][0]["content"] == {"role": "model", "parts": [{"text": "answer 7"}]}
        assert answer["candidates"][0]["finishReason"] == "STOP"
        assert answer["modelVersion"] == "gemini-2.5-flash"
        assert answer["usageMetadata"]["totalTokenCount"] == 4  # "question 7" + "answer 7"
    cut = vertex.post(
        f"/v1/{tuned['endpoint']}:generateContent",
        {"contents": [{"parts": [{"text": "question 7"}]}], "generation_config": {"max_output_tokens": 1}},
    )
    assert cut["candidates"][0]["finishReason"] == "MAX_TOKENS"
    error = vertex.error("POST", f"/v1/{tuned['endpoint']}:generateContent", 400, json={"contents": []})
    assert "contents is not specified" in error["message"]
    error = vertex.error("POST", f"/v1/{tuned['endpoint']}:generateContent", 400, json={"prompt": "x"})
    assert 'Unknown name "prompt"' in error["message"]
    stream = vertex.request(
        "POST",
        f"/v1beta1/{tuned['endpoint']}:streamGenerateContent",
        params={"alt": "sse"},
        json={"contents": [{"parts": [{"text": "question 2"}]}]},
    )
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert '"answer 2"' in stream.text
    base = vertex.post(
        f"{vertex.parent()}/publishers/google/models/gemini-2.5-flash:generateContent",
        {"contents": [{"parts": [{"text": "hello"}]}]},
    )
    assert base["candidates"][0]["content"]["parts"][0]["text"] == "[gemini-2.5-flash] hello"


def test_endpoints_and_models_exist_only_once_the_job_succeeded(
    vertex: VertexApi, clock: FakeClock, train_uri: str
) -> None:
    name = vertex.create(sft_body(train_uri))["name"]
    clock.advance(100)
    tuned = vertex.job(name)["tunedModel"]
    endpoint_id = tuned["endpoint"].rsplit("/", 1)[1]
    other = vertex.create(sft_body(train_uri))["name"]  # running: its endpoint does not exist yet
    assert vertex.get(f"{vertex.parent()}/endpoints/{endpoint_id}")["name"] == tuned["endpoint"]
    assert other != name
    error = vertex.error("GET", f"{vertex.parent()}/endpoints/123", 404)
    assert error["status"] == "NOT_FOUND"


def test_teardown_undeploys_then_deletes_endpoint_and_model(vertex: VertexApi, tuned: dict[str, str]) -> None:
    endpoint, model = tuned["endpoint"], tuned["model"]
    model_name = model.split("@")[0]
    got = vertex.get(f"/v1/{model}")
    assert got["name"] == model_name
    assert got["versionId"] == "1"
    assert got["displayName"] == "teardown"
    assert got["labels"] == {"team": "nlp"}
    assert vertex.get(f"/v1/{model_name}") == got
    served = vertex.get(f"/v1/{endpoint}")
    deployed = served["deployedModels"][0]
    assert deployed["model"] == model_name
    assert served["trafficSplit"] == {deployed["id"]: 100}
    assert got["deployedModels"] == [{"endpoint": endpoint, "deployedModelId": deployed["id"]}]

    error = vertex.error("DELETE", f"/v1/{model_name}", 400)
    assert error["status"] == "FAILED_PRECONDITION"
    assert f"is deployed or being deployed at the following Endpoint(s): {endpoint}" in error["message"]
    error = vertex.error("DELETE", f"/v1/{endpoint}", 400)
    assert "undeploy them before deleting the endpoint" in error["message"]
    error = vertex.error("POST", f"/v1/{endpoint}:undeployModel", 404, json={"deployedModelId": "42"})
    assert error["status"] == "NOT_FOUND"

    undeploy = vertex.post(f"/v1/{endpoint}:undeployModel", {"deployedModelId": deployed["id"]})
    assert undeploy["done"] is True
    assert undeploy["name"].startswith(f"{endpoint}/operations/")
    assert undeploy["metadata"]["@type"].endswith("aiplatform.v1.UndeployModelOperationMetadata")
    assert vertex.get(f"/v1/{undeploy['name']}") == undeploy
    assert "deployedModels" not in vertex.get(f"/v1/{endpoint}")
    error = vertex.error(
        "POST", f"/v1/{endpoint}:generateContent", 400, json={"contents": [{"parts": [{"text": "q"}]}]}
    )
    assert "has no deployed model" in error["message"]

    deleted = vertex.delete(f"/v1/{endpoint}")
    assert deleted["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    assert vertex.get(f"/v1/{deleted['name']}")["done"] is True
    vertex.error("GET", f"/v1/{endpoint}", 404)
    removed = vertex.delete(f"/v1beta1/{model}")
    assert removed["metadata"]["@type"].endswith("aiplatform.v1beta1.DeleteOperationMetadata")
    vertex.error("GET", f"/v1/{model_name}", 404)
    vertex.error("DELETE", f"/v1/{model_name}", 404)
    # the job still names what it produced
    assert vertex.job(tuned["job"])["tunedModel"]["model"] == model
    vertex.error("GET", f"{vertex.parent()}/operations/999", 404)
