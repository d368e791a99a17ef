"""One google-genai Vertex AI session against the emulator, for any installed SDK version.

``test_sdk_genai_vertex.py`` runs :func:`run` in process with the installed google-genai (3.x)
and as a script (``python sdk_flow.py URL GS_URI``) in a subprocess whose ``PYTHONPATH`` holds
google-genai 2.x. It asserts as it goes and returns what it saw as JSON. The emulator runs on the
real clock with short steps, so the polling below is the SDK's real usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

PROJECT = "tuning-project"
LOCATION = "us-central1"


def _client(url: str) -> genai.Client:
    creds = Credentials(
        token=None,
        refresh_token="refresh-token-for-tests",
        client_id="client-id.apps.googleusercontent.com",
        client_secret="client-secret",
        token_uri=f"{url}/token",
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    return genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION, credentials=creds, http_options={"base_url": url}
    )


def _wait(client: genai.Client, name: str, deadline: float = 30.0) -> types.TuningJob:
    end = time.monotonic() + deadline
    while True:
        job = client.tunings.get(name=name)
        if job.has_ended:
            return job
        assert time.monotonic() < end, f"{name} did not end in {deadline} s: {job.state}"
        time.sleep(0.05)


def run(url: str, train_uri: str) -> dict[str, Any]:
    """Tune, poll, list, cancel, read asynchronously and infer through google-genai."""
    client = _client(url)
    config = types.CreateTuningJobConfig(
        tuned_model_display_name="sdk-run",
        epoch_count=2,
        learning_rate_multiplier=1.0,
        adapter_size="ADAPTER_SIZE_FOUR",
        labels={"suite": "sdk"},
    )
    dataset = types.TuningDataset(gcs_uri=train_uri)
    job = client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=dataset, config=config)
    assert job.state == types.JobState.JOB_STATE_PENDING, job.state
    assert job.name is not None
    number = job.name.split("/")[1]
    assert number.isdigit(), job.name  # the service names the project by number
    assert job.supervised_tuning_spec is not None
    assert job.supervised_tuning_spec.hyper_parameters is not None
    assert job.supervised_tuning_spec.hyper_parameters.epoch_count == 2  # "2" on the wire

    done = _wait(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED, done.error
    assert done.tuned_model is not None
    assert done.tuned_model.endpoint is not None
    assert done.tuned_model.checkpoints
    assert done.tuning_data_stats is not None

    fetched = asyncio.run(client.aio.tunings.get(name=job.name))
    assert fetched.state == types.JobState.JOB_STATE_SUCCEEDED

    answer = client.models.generate_content(model=done.tuned_model.endpoint, contents="question 3")
    assert answer.text == "answer 3", answer.text

    failing = client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=dataset,
        config=types.CreateTuningJobConfig(tuned_model_display_name="emulator:fail", epoch_count=2),
    )
    assert failing.name is not None
    failed = _wait(client, failing.name)
    assert failed.state == types.JobState.JOB_STATE_FAILED
    assert failed.error is not None
    assert failed.error.code == 13

    cancelled = client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=dataset)
    assert cancelled.name is not None
    client.tunings.cancel(name=cancelled.name)
    ended = client.tunings.get(name=cancelled.name)
    assert ended.state == types.JobState.JOB_STATE_CANCELLED
    assert ended.error is not None
    assert ended.error.code == 1

    listed = [j.name for j in client.tunings.list(config={"page_size": 1})]
    assert listed == [job.name, failing.name, cancelled.name], listed

    missing: errors.ClientError | None = None
    try:
        client.tunings.get(name=f"projects/{number}/locations/{LOCATION}/tuningJobs/1")
    except errors.ClientError as err:
        missing = err
    assert missing is not None, "an unknown job must be a 404"
    assert missing.code == 404
    return {"version": genai.__version__, "jobs": listed, "endpoint": done.tuned_model.endpoint}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
