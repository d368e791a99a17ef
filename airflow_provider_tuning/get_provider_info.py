"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import copy
from typing import Any

from airflow_provider_tuning import __version__
from airflow_provider_tuning.constants import CONN_TYPE, LEGACY_CONN_TYPE

#: What each field of the form shows while empty. Airflow 3.3's form shows the standard fields'
#: placeholders; for an extra field it shows a schema's ``examples`` (a "Start typing" hint and a
#: list to pick from), so the text fields below carry their placeholder as their example.
PLACEHOLDERS: dict[str, str] = {
    "host": "https://generativelanguage.googleapis.com (http:// only for 127.0.0.1 / localhost)",
    "port": "443, or the emulator's port: needed by the Test button of Airflow 3.3's connection list",
    "password": "API key (leave empty for OAuth, service account or ADC)",
    "api_version": "v1beta",
    "keyfile_dict": '{"type": "authorized_user", "client_id": "...", ...}',
    "key_path": "/path/to/key.json",
    "scopes": "https://www.googleapis.com/auth/cloud-platform,"
    "https://www.googleapis.com/auth/generative-language.tuning",
    "impersonation_chain": "tuner@my-project.iam.gserviceaccount.com",
    "quota_project_id": "my-project",
}

_STRING = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}


def _with_example(field: str) -> dict[str, Any]:
    """A plain text field's schema, with its placeholder as the example the form offers."""
    return {**_STRING, "examples": [PLACEHOLDERS[field]]}


# Extra fields of the ``generativelanguage`` connection (declarative form of Airflow 3.2+).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api_version": {
        "label": "API version",
        "schema": {"type": ["string", "null"], "enum": ["v1beta", "v1beta3", "v1"], "default": "v1beta"},
        "description": "Default API version: v1beta (Gemini tuning), v1beta3 (PaLM tuning) or v1.",
    },
    "auth_type": {
        "label": "Auth type",
        "schema": {
            "type": ["string", "null"],
            # hooks.connection.AUTH_TYPES, written out: this module imports no hook code
            "enum": ["api_key", "authorized_user", "service_account", "external_account", "adc"],
        },
        "description": "Inferred when empty: API key if the password is set, else the key file's type, "
        "else Application Default Credentials (adc).",
    },
    "keyfile_dict": {
        "label": "Key file JSON",
        "schema": dict(_SECRET),
        "description": "An authorized_user JSON (written by `gcloud auth application-default login "
        "--client-id-file ...`) or a service-account key JSON.",
    },
    "key_path": {
        "label": "Key file path",
        "schema": _with_example("key_path"),
        "description": "Path of an authorized_user or service-account JSON file on the workers.",
    },
    "scopes": {
        "label": "Scopes",
        "schema": _with_example("scopes"),
        "description": "Comma-separated OAuth scopes. Default: cloud-platform and "
        "generative-language.tuning.",
    },
    "impersonation_chain": {
        "label": "Impersonation chain",
        "schema": _with_example("impersonation_chain"),
        "description": "Comma-separated service accounts; the last one is impersonated, earlier ones "
        "are delegates.",
    },
    "quota_project_id": {
        "label": "Quota project",
        "schema": _with_example("quota_project_id"),
        "description": "Project billed for quota, sent as x-goog-user-project (OAuth modes only).",
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # The port stays visible: Airflow 3.3's connection list tests a connection with port 0 when the
    # port is empty, which its api-server refuses (400) when the stored port is empty; a port filled
    # in here makes that Test button work (docs/connection.md).
    "hidden-fields": ["schema", "login"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": dict(PLACEHOLDERS),
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: connection type, hooks, operators, sensors, triggers, config."""
    return {
        "package-name": "airflow-provider-tuning",
        "name": "Generative Language Tuning",
        "description": "Tune, wait for and run Google's tuned models (Vertex AI tuning jobs and the "
        "Generative Language API), with a local emulator.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Generative Language API (tuning)",
                "external-doc-url": "https://ai.google.dev/api/tuning",
                "tags": ["gcp"],
            },
            {
                "integration-name": "Vertex AI (tuning)",
                "external-doc-url": "https://cloud.google.com/vertex-ai/generative-ai/docs/models/tune-models",
                "tags": ["gcp"],
            },
        ],
        "hooks": [
            {
                "integration-name": "Generative Language API (tuning)",
                "python-modules": [
                    "airflow_provider_tuning.hooks.generative_language",
                    "airflow_provider_tuning.hooks.async_hook",
                ],
            },
            {
                "integration-name": "Vertex AI (tuning)",
                "python-modules": ["airflow_provider_tuning.hooks.vertex"],
            },
        ],
        "operators": [
            {
                "integration-name": "Generative Language API (tuning)",
                "python-modules": [
                    "airflow_provider_tuning.operators.tuning",
                    "airflow_provider_tuning.operators.generate",
                ],
            },
            {
                "integration-name": "Vertex AI (tuning)",
                "python-modules": [
                    "airflow_provider_tuning.operators.vertex_tuning",
                    "airflow_provider_tuning.operators.vertex_manage",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "Generative Language API (tuning)",
                "python-modules": ["airflow_provider_tuning.sensors.tuning"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Generative Language API (tuning)",
                "python-modules": ["airflow_provider_tuning.triggers.tuning"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_tuning.hooks.generative_language.GenerativeLanguageHook",
                "hook-name": "Generative Language (tuning)",
                "connection-type": CONN_TYPE,
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": copy.deepcopy(UI_FIELD_BEHAVIOUR),
            },
            {
                # Connections created with the earlier type name get a hook, a form and a Test button.
                "hook-class-name": "airflow_provider_tuning.hooks.generative_language."
                "LegacyTypeGenerativeLanguageHook",
                "hook-name": "Generative Language (tuning), earlier type name",
                "connection-type": LEGACY_CONN_TYPE,
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": copy.deepcopy(UI_FIELD_BEHAVIOUR),
            },
        ],
        "extra-links": ["airflow_provider_tuning.operators.links.TunedModelLink"],
        "config": {
            "generative_language": {
                "description": "Defaults of the Generative Language tuning provider.",
                "options": {
                    "poll_interval": {
                        "description": "Seconds between two status polls of a tuning job, by default, "
                        "in CreateTunedModelOperator's wait (in the worker or in its trigger).",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "60",
                        "default": "30",
                    },
                    "default_timeout": {
                        "description": "Default maximum seconds to wait for a tuning job before "
                        "the wait fails with a timeout.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "3600",
                        "default": "86400",
                    },
                    "max_consecutive_failures": {
                        "description": "Consecutive transient polling failures (connection errors, "
                        "429, 5xx) tolerated before a wait gives up.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "10",
                        "default": "5",
                    },
                    "trigger_max_connections": {
                        "description": "Open HTTP connections that the tuning triggers of one triggerer "
                        "share per connection id. Each poll holds one for its round trip, so this "
                        "bounds the polls per second (about this many / the API's latency).",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "512",
                        "default": "256",
                    },
                    "trigger_gc_full_collection_threshold": {
                        "description": "The triggerer process's third garbage-collection threshold "
                        "(Python's default is 10) is raised to this when the first tuning wait starts, "
                        "never lowered. Thousands of waiting triggers keep a few hundred thousand objects "
                        "alive, and each full collection walks them all while the event loop waits "
                        "(about 0.3 s at 5,000 waits); raising it makes those pauses about a hundred "
                        "times rarer. 0 leaves the process's thresholds as they are.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "0",
                        "default": "1000",
                    },
                },
            }
        },
    }
