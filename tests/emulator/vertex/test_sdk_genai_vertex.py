"""google-genai in Vertex AI mode against the emulator: the installed 3.x in process and a 2.x
(what the Google provider's stack installs) in a subprocess, through the same session
(``sdk_flow.py``): tune, poll with ``tunings.get``, ``client.aio.tunings.get``, ``tunings.list``
paging, ``tunings.cancel``, a job made to fail, and ``models.generate_content`` on the tuned
endpoint. Credentials refresh at the emulator's ``/token``; datasets are uploaded with
google-cloud-storage."""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
from collections.abc import Callable

import pytest
from google.cloud import storage

from tests.emulator.vertex import sdk_flow
from tests.emulator.vertex.vertex_support import PROJECT, credentials, jsonl, run_with_sdk2, sft_lines
from tuning_api_emulator import Emulator

pytestmark = [
    pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental"),
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]


@pytest.fixture
def live(make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch) -> tuple[Emulator, str]:
    """An emulator on the real clock (20 ms steps) and a dataset uploaded with google-cloud-storage."""
    import time

    emulator = make_emulator(step_seconds=0.02, clock=time.time)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    client = storage.Client(project=PROJECT, credentials=credentials(emulator.url))
    blob = client.create_bucket("sdk-data").blob("train.jsonl")
    blob.upload_from_string(jsonl(sft_lines(20)), content_type="application/jsonl")
    return emulator, "gs://sdk-data/train.jsonl"


def _sent(emulator: Emulator) -> list[tuple[str, str]]:
    return [
        (r["method"], r["path"].split("/")[1]) for r in emulator.request_log if r["path"].startswith("/v1")
    ]


def test_google_genai_3_in_process(live: tuple[Emulator, str]) -> None:
    emulator, uri = live
    assert importlib.metadata.version("google-genai").startswith("3.")
    seen = sdk_flow.run(emulator.url, uri)
    assert seen["version"].startswith("3.")
    assert {version for _, version in _sent(emulator)} == {"v1beta1"}  # the SDK's default version
    agents = {
        r["headers"].get("x-goog-api-client", "") for r in emulator.request_log if r["path"].startswith("/v1")
    }
    assert all(f"google-genai-sdk/{seen['version']}" in agent for agent in agents)


def test_google_genai_2_in_a_subprocess(live: tuple[Emulator, str], sdk2_path: pathlib.Path) -> None:
    emulator, uri = live
    out = run_with_sdk2(sdk2_path, pathlib.Path(sdk_flow.__file__), emulator.url, uri)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["version"].startswith("2.")
    assert len(seen["jobs"]) == 3
    agents = {
        r["headers"].get("x-goog-api-client", "") for r in emulator.request_log if r["path"].startswith("/v1")
    }
    assert all(f"google-genai-sdk/{seen['version']}" in agent for agent in agents)
