"""Fixtures of the Tuning view's tests: a migrated Airflow DB, the real api-server app built
in-process (plugins mounted as the api-server mounts them), JWTs of real users, a seeded emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import airflow_db
from tests.ui.seed import API_KEY, STEP_SECONDS, ManualClock, Seeded, connection_json, seed_gemini
from tuning_api_emulator import Emulator

__all__ = ["airflow_db"]

CONN_ID = "ui_gemini"


@pytest.fixture(scope="module")
def airflow_app(airflow_db: Any) -> Any:
    """Airflow's own api-server app (``create_app("core")``): the plugin mounted under /tuning."""
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    app = create_app("core")
    yield app
    purge_cached_app()


def token(role: str) -> str:
    """A JWT the auth manager issues for a SimpleAuthManager user of ``role`` (same as logging in)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role))


@pytest.fixture(scope="module")
def seeded_emulator() -> Iterator[tuple[Emulator, ManualClock, Seeded]]:
    """An emulator with a finished, a running and a failed tuned model."""
    clock = ManualClock()
    with Emulator(step_seconds=STEP_SECONDS, api_keys=[API_KEY], clock=clock) as emu:
        yield emu, clock, seed_gemini(emu, clock)


@pytest.fixture
def gemini_conn(seeded_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The connection id of a Gemini API connection to the seeded emulator; an empty view cache."""
    from airflow_provider_tuning.ui import source

    emu = seeded_emulator[0]
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emu.url))
    monkeypatch.setenv("AIRFLOW_CONN_UI_NOT_TUNING", '{"conn_type": "http", "host": "example.invalid"}')
    source.CACHE.clear()
    emu.set_faults()
    emu.clear_request_log()
    return CONN_ID
