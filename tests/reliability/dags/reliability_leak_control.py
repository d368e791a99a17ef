"""Positive control of the secret-leak scan: a DAG that leaks the connection's API key on purpose.

Run only by the leak test, after its zero-hit scan: the same scan must then find the key in this
run's XCom (returned value) and in its task log (written in two pieces, so Airflow's secrets
masker, which masks the whole key, cannot hide it).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, BaseHook, task

with DAG("reliability_leak_control", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):

    @task
    def leak() -> dict[str, str]:
        """Return the API key (XCom) and print it split in two (task log)."""
        key = BaseHook.get_connection("generative_language_default").password or ""
        print("leaked:", key[:12], "|", key[12:])
        return {"leaked": key}

    leak()
