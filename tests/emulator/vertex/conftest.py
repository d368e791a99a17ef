"""Fixtures for the Vertex AI and Cloud Storage tests: the emulator on a fake clock (1 s per step,
from tests/emulator/conftest.py), a checking client holding a token from ``/token``, and a
training dataset in the emulator's Cloud Storage."""

from __future__ import annotations

import pytest

from tests.emulator.vertex.vertex_support import VertexApi, jsonl, put_object, sft_lines
from tuning_api_emulator import Emulator


@pytest.fixture
def vertex(emulator: Emulator) -> VertexApi:
    return VertexApi(emulator.url)


@pytest.fixture
def train_uri(emulator: Emulator) -> str:
    """``gs://tuning-data/sft/train.jsonl``: 20 supervised examples."""
    return put_object(emulator.url, "sft/train.jsonl", jsonl(sft_lines(20)))
