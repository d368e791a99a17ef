"""The command line's Vertex AI flags: ``--refresh-token`` and ``--service-account`` configure
what ``POST /token`` honours, and the CLI's emulator serves the Vertex and Storage routes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import google.auth.transport.requests
import pytest
import requests
from google.auth.exceptions import RefreshError

from tests.emulator.vertex.vertex_support import REFRESH_TOKEN, VertexApi, credentials


def test_cli_configures_token_grants() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuning_api_emulator",
            "--port",
            "0",
            "--step-seconds",
            "0.01",
            "--token",
            "cli-token",
            "--refresh-token",
            REFRESH_TOKEN,
            "--service-account",
            "sa@p.iam.gserviceaccount.com",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
        assert found
        url = found.group(0)
        api = VertexApi(url)  # refreshes with the configured refresh token
        assert api.get(f"{api.parent()}/tuningJobs") == {}
        with pytest.raises(RefreshError):
            credentials(url, refresh_token="other").refresh(google.auth.transport.requests.Request())
        assert requests.get(f"{url}/storage/v1/b/none", timeout=10).status_code == 401  # anonymous
        state = requests.get(f"{url}/_emulator/state", timeout=10).json()
        assert state["tuningJobs"] == []
        assert REFRESH_TOKEN not in str(state)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "stopped" in out
