"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_tuning import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: connection type, hooks, operators, sensors, triggers, config."""
    return {
        "package-name": "airflow-provider-tuning",
        "name": "Generative Language Tuning",
        "description": "Tune, wait for and run Google's tuned models (Generative Language API), "
        "with a local emulator.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Generative Language API (tuning)",
                "external-doc-url": "https://ai.google.dev/api/tuning",
                "tags": ["gcp"],
            }
        ],
        "hooks": [],
        "operators": [],
        "sensors": [],
        "triggers": [],
        "connection-types": [],
        "extra-links": [],
        "config": {},
    }
