"""The connection's port field, now shown in the form: 0 means no port (what Airflow 3.3's UI sends
for an empty one), and a port that contradicts the base URL's is refused by name."""

from __future__ import annotations

import pytest
from airflow.sdk import Connection

from airflow_provider_tuning.exceptions import ConnectionConfigError
from airflow_provider_tuning.hooks.connection import DEFAULT_BASE_URL, ConnectionSettings


def parse(host: str | None, port: int | None) -> ConnectionSettings:
    conn = Connection(conn_id="glapi", conn_type="generativelanguage", host=host, port=port, password="k-1")
    return ConnectionSettings.from_connection(conn)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://generativelanguage.googleapis.com", 0, "https://generativelanguage.googleapis.com"),
        ("http://127.0.0.1:8085", 0, "http://127.0.0.1:8085"),
        (None, 0, DEFAULT_BASE_URL),
        ("https://generativelanguage.googleapis.com", 443, "https://generativelanguage.googleapis.com:443"),
        ("http://127.0.0.1", 8085, "http://127.0.0.1:8085"),
        ("http://127.0.0.1:8085", 8085, "http://127.0.0.1:8085"),
    ],
)
def test_port_0_is_no_port_and_a_matching_port_is_kept(host, port, expected):
    assert parse(host, port).base_url == expected


def test_a_port_that_contradicts_the_base_url_is_refused():
    with pytest.raises(ConnectionConfigError) as info:
        parse("http://127.0.0.1:8085", 9000)
    assert str(info.value) == (
        "Connection 'glapi': the port field (9000) differs from the port in the base URL (8085); "
        "set one of them, or the same port in both"
    )
