"""Fixtures for the Vertex AI and Cloud Storage tests: the emulator on a fake clock (1 s per step,
from tests/emulator/conftest.py), a checking client holding a token from ``/token``, and a
training dataset in the emulator's Cloud Storage."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.emulator.vertex.vertex_support import SDK2_REQUIREMENTS, VertexApi, jsonl, put_object, sft_lines
from tuning_api_emulator import Emulator


@pytest.fixture
def vertex(emulator: Emulator) -> VertexApi:
    return VertexApi(emulator.url)


@pytest.fixture
def train_uri(emulator: Emulator) -> str:
    """``gs://tuning-data/sft/train.jsonl``: 20 supervised examples."""
    return put_object(emulator.url, "sft/train.jsonl", jsonl(sft_lines(20)))


@pytest.fixture(scope="session")
def sdk2_path() -> pathlib.Path:
    """A folder (cached in the virtualenv) holding SDK2_REQUIREMENTS, for a subprocess's PYTHONPATH.

    Installed with ``pip install --no-deps --target``: their dependencies are the environment's.
    """
    key = hashlib.sha256(" ".join(SDK2_REQUIREMENTS).encode()).hexdigest()[:12]
    target = pathlib.Path(sys.prefix) / "vertex-test-sdks" / key
    if (target / ".complete").exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix="sdk2-", dir=target.parent))
    except OSError:  # a read-only environment: install into a temporary folder for this run
        staging = pathlib.Path(tempfile.mkdtemp(prefix="sdk2-"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(staging),
            *SDK2_REQUIREMENTS,
        ],
        check=True,
        timeout=900,
    )
    (staging / ".complete").touch()
    try:
        os.replace(staging, target)
    except OSError:  # another run installed it meanwhile, or another file system
        if not (target / ".complete").exists():
            return staging
        shutil.rmtree(staging, ignore_errors=True)
    return target
