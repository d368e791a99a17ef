"""Fixtures for the hook tests: loopback servers, generated key material, connections, a network guard."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
from airflow_provider_tuning.hooks.retry import RetryPolicy
from tests.unit.hooks.glapi_loopback import LoopbackServer, TokenEndpoint


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection to a non-loopback host, and keep google-auth from starting its
    background Regional Access Boundary lookup (a call to iamcredentials.googleapis.com)."""
    import urllib3.util.connection as u3conn
    from google.auth import credentials as auth_credentials

    real = u3conn.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(address[0]):
            raise OSError(f"test network guard: refusing to connect to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(u3conn, "create_connection", guarded)
    monkeypatch.setattr(
        auth_credentials.CredentialsWithRegionalAccessBoundary,
        "_maybe_start_regional_access_boundary_refresh",
        lambda self, request, url: None,
    )


@pytest.fixture
def api_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    with endpoint.server:
        yield endpoint


@pytest.fixture
def api_key() -> str:
    return f"AIzaSy{secrets.token_urlsafe(27)}"


FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=1.0, max_delay=8.0, multiplier=2.0, jitter=0.5)


@pytest.fixture
def make_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., GenerativeLanguageHook]]:
    """Factory: ``make_hook(host=..., password=..., extra={...}, **hook_kwargs)`` -> a hook whose
    connection lives in an ``AIRFLOW_CONN_*`` variable; sleeps are recorded in ``hook.sleeps``."""
    counter = iter(range(1_000_000))
    hooks: list[GenerativeLanguageHook] = []

    def factory(
        host: str | None = None,
        password: str | None = None,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> GenerativeLanguageHook:
        conn_id = f"glapi_test_{next(counter)}"
        conn: dict[str, Any] = {"conn_type": "generativelanguage"}
        if host is not None:
            conn["host"] = host
        if password is not None:
            conn["password"] = password
        if extra:
            conn["extra"] = json.dumps(extra)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        kwargs.setdefault("retry", FAST_RETRY)
        hook = GenerativeLanguageHook(conn_id, **kwargs)
        sleeps: list[float] = []
        hook._sleep = sleeps.append
        hook.sleeps = sleeps  # type: ignore[attr-defined]
        hooks.append(hook)
        return hook

    yield factory
    for hook in hooks:
        hook.close()
