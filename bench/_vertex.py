"""Vertex AI material of the benchmarks: a ``google_cloud_platform`` connection whose OAuth user
credentials refresh at the emulator's ``/token``, a staging bucket with a training dataset, and
tuning jobs created with plain requests (slow steps: they do not finish during a benchmark)."""

from __future__ import annotations

import json
from typing import Any

PROJECT = "bench-project"
LOCATION = "us-central1"
BUCKET = "bench-staging"
GCP_CONN_ID = "google_cloud_default"
GCP_CONN_ENV = "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"
REFRESH_TOKEN = "bench-refresh-token"  # noqa: S105 (the emulator's, not a secret)
_USER = {
    "type": "authorized_user",
    "client_id": "bench.apps.googleusercontent.com",
    "client_secret": "bench-client-secret",
    "refresh_token": REFRESH_TOKEN,
}


def gcp_connection_json(url: str) -> str:
    """The ``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` JSON: user credentials refreshed at ``url/token``."""
    keyfile = {**_USER, "token_uri": f"{url}/token"}
    extra = {"project": PROJECT, "keyfile_dict": json.dumps(keyfile)}
    return json.dumps({"conn_type": "google_cloud_platform", "host": url, "extra": json.dumps(extra)})


def _dataset(examples: int) -> bytes:
    lines = []
    for i in range(examples):
        contents = [
            {"role": "user", "parts": [{"text": f"what comes after {i}"}]},
            {"role": "model", "parts": [{"text": str(i + 1)}]},
        ]
        lines.append(json.dumps({"contents": contents}))
    return ("\n".join(lines) + "\n").encode()


def create_tuning_jobs(url: str, count: int, *, examples: int = 20) -> list[str]:
    """Stage a dataset and create ``count`` supervised tuning jobs; return their names.

    :param url: the emulator's URL.
    :param count: how many jobs.
    :param examples: training examples in the dataset.
    """
    import requests

    with requests.Session() as session:
        grant = session.post(f"{url}/token", data={"grant_type": "refresh_token", **_USER}, timeout=30)
        grant.raise_for_status()
        session.headers["Authorization"] = f"Bearer {grant.json()['access_token']}"
        bucket = session.post(
            f"{url}/storage/v1/b", params={"project": PROJECT}, json={"name": BUCKET}, timeout=30
        )
        if bucket.status_code != 409:  # an emulator kept from an earlier call has it already
            bucket.raise_for_status()
        uploaded = session.post(
            f"{url}/upload/storage/v1/b/{BUCKET}/o",
            params={"uploadType": "media", "name": "bench/train.jsonl"},
            data=_dataset(examples),
            headers={"Content-Type": "application/jsonl"},
            timeout=30,
        )
        uploaded.raise_for_status()
        body: dict[str, Any] = {
            "baseModel": "gemini-2.5-flash",
            "supervisedTuningSpec": {"trainingDatasetUri": f"gs://{BUCKET}/bench/train.jsonl"},
        }
        names = []
        for _ in range(count):
            created = session.post(
                f"{url}/v1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs", json=body, timeout=30
            )
            created.raise_for_status()
            names.append(created.json()["name"])
    return names
