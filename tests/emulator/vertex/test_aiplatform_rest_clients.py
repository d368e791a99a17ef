"""google-cloud-aiplatform's own REST clients (GAPIC, ``transport="rest"``) against the emulator:
tuning jobs, inference on the tuned endpoint, and a teardown whose long-running operations the
clients poll to their result. These clients ask for ``$alt=json;enum-encoding=int`` and send
enums as numbers, which the emulator honours."""

from __future__ import annotations

import json

import pytest
import requests
from google.cloud import aiplatform_v1 as aiplatform

from tests.emulator.emulator_support import FakeClock
from tests.emulator.vertex.vertex_support import LOCATION, PROJECT, access_token, credentials
from tuning_api_emulator import Emulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


def test_gapic_rest_clients_tune_infer_and_tear_down(
    emulator: Emulator, clock: FakeClock, train_uri: str
) -> None:
    options = {"api_endpoint": emulator.url}
    creds = credentials(emulator.url)
    tuning = aiplatform.GenAiTuningServiceClient(transport="rest", credentials=creds, client_options=options)
    hyper = aiplatform.SupervisedHyperParameters(
        epoch_count=2, adapter_size=aiplatform.SupervisedHyperParameters.AdapterSize.ADAPTER_SIZE_EIGHT
    )
    job = tuning.create_tuning_job(
        parent=PARENT,
        tuning_job=aiplatform.TuningJob(
            base_model="gemini-2.5-flash",
            supervised_tuning_spec=aiplatform.SupervisedTuningSpec(
                training_dataset_uri=train_uri, hyper_parameters=hyper
            ),
            tuned_model_display_name="gapic",
            labels={"client": "gapic"},
        ),
    )
    assert job.state == aiplatform.JobState.JOB_STATE_PENDING
    assert job.supervised_tuning_spec.hyper_parameters.adapter_size == hyper.adapter_size  # sent as a number
    created = [r for r in emulator.request_log if r["rpc"] == "CreateTuningJob"][-1]
    assert json.loads(created["body"])["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == 3
    clock.advance(100)
    job = tuning.get_tuning_job(name=job.name)
    assert job.state == aiplatform.JobState.JOB_STATE_SUCCEEDED
    listed = tuning.list_tuning_jobs(request={"parent": PARENT, "filter": 'labels.client="gapic"'})
    assert [j.name for j in listed] == [job.name]
    raw = requests.get(
        f"{emulator.url}/v1/{job.name}",
        params={"$alt": "json;enum-encoding=int"},
        headers={"Authorization": f"Bearer {access_token(emulator.url)}"},
        timeout=30,
    ).json()
    assert raw["state"] == 4
    assert raw["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == 3

    prediction = aiplatform.PredictionServiceClient(
        transport="rest", credentials=creds, client_options=options
    )
    answer = prediction.generate_content(
        model=job.tuned_model.endpoint,
        contents=[aiplatform.Content(role="user", parts=[aiplatform.Part(text="question 4")])],
    )
    assert answer.candidates[0].content.parts[0].text == "answer 4"
    assert answer.candidates[0].finish_reason == aiplatform.Candidate.FinishReason.STOP

    endpoints = aiplatform.EndpointServiceClient(transport="rest", credentials=creds, client_options=options)
    models = aiplatform.ModelServiceClient(transport="rest", credentials=creds, client_options=options)
    endpoint = endpoints.get_endpoint(name=job.tuned_model.endpoint)
    assert models.get_model(name=job.tuned_model.model).display_name == "gapic"
    endpoints.undeploy_model(endpoint=endpoint.name, deployed_model_id=endpoint.deployed_models[0].id).result(
        timeout=30
    )
    endpoints.delete_endpoint(name=endpoint.name).result(timeout=30)
    models.delete_model(name=job.tuned_model.model.split("@")[0]).result(timeout=30)
    rpcs = [
        r["rpc"]
        for r in emulator.request_log
        if r["rpc"] in ("UndeployModel", "DeleteEndpoint", "DeleteModel")
    ]
    assert rpcs == ["UndeployModel", "DeleteEndpoint", "DeleteModel"]

    other = tuning.create_tuning_job(
        parent=PARENT,
        tuning_job=aiplatform.TuningJob(
            base_model="gemini-2.5-flash",
            supervised_tuning_spec=aiplatform.SupervisedTuningSpec(training_dataset_uri=train_uri),
        ),
    )
    tuning.cancel_tuning_job(name=other.name)
    cancelled = tuning.get_tuning_job(name=other.name)
    assert cancelled.state == aiplatform.JobState.JOB_STATE_CANCELLED
    assert cancelled.error.code == 1
