"""Every Vertex AI success response the tests received (checked against discovery as it arrived)
parses strictly into google-cloud-aiplatform's official protobuf types
(``json_format.Parse(..., ignore_unknown_fields=False)``), with ``Any`` metadata resolved.

The newest google-cloud-aiplatform (2.7.0) pins google-genai<3, so it runs in a subprocess
(``strict_parse_worker.py``). Its protos lag the live surface: the only fields removed before
parsing are the ones the discovery document has and those protos lack (``DISCOVERY_ONLY``).
This module (named to run last) makes its own tour first, so it proves something alone too."""

from __future__ import annotations

import json
import pathlib
from collections import Counter

from tests.emulator.emulator_support import FakeClock
from tests.emulator.vertex.vertex_support import COLLECTED, VertexApi, run_with_sdk2, sft_body

WORKER = pathlib.Path(__file__).with_name("strict_parse_worker.py")
DISCOVERY_ONLY = {
    "v1": ["preferenceOptimizationSpec", "tuningDataStats.preferenceOptimizationDataStats"],
    "v1beta1": [
        "tuningJobState",
        "tuningJobMetadata",
        "preferenceOptimizationSpec",
        "reinforcementTuningSpec",
        "fullFineTuningSpec",
        "distillationSpec",
        "tuningDataStats.preferenceOptimizationDataStats",
        "tuningDataStats.reinforcementTuningDataStats",
        "tuningDataStats.distillationDataStats",
        "usageMetadata.trafficType",
    ],
}


def _tour(vertex: VertexApi, clock: FakeClock, uri: str) -> None:
    jobs = [
        vertex.create(sft_body(uri, labels={"tour": "yes"}), version=v)["name"] for v in ("v1", "v1beta1")
    ]
    cancelled = vertex.create(sft_body(uri, tunedModelDisplayName="emulator:fail"))["name"]
    for _ in range(4):
        clock.advance(5)
        for version in ("v1", "v1beta1"):
            for name in jobs:
                vertex.job(name, version)
            vertex.get(f"{vertex.parent(version)}/tuningJobs")
    vertex.job(cancelled)
    tuned = vertex.job(jobs[0])["tunedModel"]
    vertex.post(
        f"/v1/{tuned['endpoint']}:generateContent", {"contents": [{"parts": [{"text": "question 1"}]}]}
    )
    vertex.get(f"/v1/{tuned['model']}")
    deployed = vertex.get(f"/v1/{tuned['endpoint']}")["deployedModels"][0]["id"]
    undeploy = vertex.post(f"/v1/{tuned['endpoint']}:undeployModel", {"deployedModelId": deployed})
    vertex.get(f"/v1/{undeploy['name']}")
    vertex.delete(f"/v1/{tuned['endpoint']}")
    vertex.delete(f"/v1/{tuned['model']}")
    other = vertex.create(sft_body(uri))["name"]
    vertex.request("POST", f"/v1/{other}:cancel")
    vertex.job(other)


def test_every_vertex_response_parses_into_the_official_types(
    vertex: VertexApi, clock: FakeClock, train_uri: str, sdk2_path: pathlib.Path
) -> None:
    _tour(vertex, clock, train_uri)
    rpcs = Counter(item.rpc for item in COLLECTED)
    for rpc in ("CreateTuningJob", "GetTuningJob", "ListTuningJobs", "CancelTuningJob", "GenerateContent"):
        assert rpcs[rpc], rpc
    for rpc in ("GetEndpoint", "GetModel", "UndeployModel", "DeleteEndpoint", "DeleteModel", "GetOperation"):
        assert rpcs[rpc], rpc
    request = {
        "items": [{"rpc": i.rpc, "version": i.version, "text": i.text} for i in COLLECTED],
        "strip": DISCOVERY_ONLY,
    }
    result = json.loads(run_with_sdk2(sdk2_path, WORKER, stdin=json.dumps(request)).strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["parsed"] == len(COLLECTED)
    assert result["stripped"]["v1beta1:tuningJobState"] > 0  # the tour's v1beta1 jobs ran
