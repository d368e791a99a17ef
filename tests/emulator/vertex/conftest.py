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

from tests.emulator.vertex.vertex_support import VertexApi, jsonl, put_object, sft_lines
from tuning_api_emulator import Emulator


@pytest.fixture
def vertex(emulator: Emulator) -> VertexApi:
    return VertexApi(emulator.url)


@pytest.fixture
def train_uri(emulator: Emulator) -> str:
    """``gs://tuning-data/sft/train.jsonl``: 20 supervised examples."""
    return put_object(emulator.url, "sft/train.jsonl", jsonl(sft_lines(20)))


#: The google-genai 2.x that the Google provider's stack installs, and the newest
#: google-cloud-aiplatform (its types are the strict-parse reference; its releases from 1.92 pin
#: google-genai<3, so it cannot share the test environment with google-genai 3.x).
SDK2_REQUIREMENTS = ("google-genai==2.34.0", "google-cloud-aiplatform==2.7.0")


@pytest.fixture(scope="session")
def sdk2_path() -> pathlib.Path:
    """A folder (cached in the virtualenv) holding SDK2_REQUIREMENTS, for a subprocess's PYTHONPATH.

    Installed with ``pip install --no-deps --target``: their dependencies are the environment's.
    """
    key = hashlib.sha256(" ".join(SDK2_REQUIREMENTS).encode()).hexdigest()[:12]
    target = pathlib.Path(sys.prefix) / "vertex-test-sdks" / key
    if not (target / ".complete").exists():
        staging = pathlib.Path(
            tempfile.mkdtemp(prefix="sdk2-", dir=target.parent if target.parent.exists() else None)
        )
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
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, target)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return target


def run_with_sdk2(sdk2_path: pathlib.Path, script: pathlib.Path, *args: str, stdin: str = "") -> str:
    """Run ``script`` with google-genai 2.x and google-cloud-aiplatform 2.x first on the path."""
    env = {**os.environ, "PYTHONPATH": str(sdk2_path), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
