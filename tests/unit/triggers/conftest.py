"""Fixtures of the trigger tests: a scripted loopback API and a connection pointing at it."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

# The loopback server helper sits next to this file (shared with the sensor and wait tests).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from tuning_loopback import API_KEY, ScriptedApi, api_key_connection, set_connection

CONN_ID = "tuning_loopback"


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    with ScriptedApi() as server:
        yield server


@pytest.fixture
def conn_id(api: ScriptedApi, monkeypatch: pytest.MonkeyPatch) -> str:
    set_connection(monkeypatch, CONN_ID, api_key_connection(CONN_ID, api.url, API_KEY))
    return CONN_ID
