"""The hook against the project's emulator: a whole tuning flow over real HTTP."""

from __future__ import annotations

import time

import pytest

from airflow_provider_tuning.exceptions import AlreadyExistsError, NotFoundError
from tests.unit.hooks.glapi_loopback import authorized_user_info
from tuning_api_emulator import Emulator

EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(1, 16)]
TUNED_MODEL = {
    "displayName": "number generator model",
    "baseModel": "models/gemini-1.5-flash-001-tuning",
    "tuningTask": {
        "hyperparameters": {"batchSize": 2, "learningRate": 0.001, "epochCount": 5},
        "trainingData": {"examples": {"examples": EXAMPLES}},
    },
}


@pytest.fixture
def emulator():
    with Emulator(step_seconds=0.002, seed=0) as emu:
        yield emu


def _wait_done(hook, name: str) -> dict:
    for _ in range(500):
        operation = hook.get_operation(name)
        if operation.get("done"):
            return operation
        time.sleep(0.01)
    raise AssertionError(f"{name} did not finish")


def test_tuning_flow_with_an_api_key(make_hook, emulator, api_key):
    hook = make_hook(host=emulator.url, password=api_key)
    assert hook.test_connection()[0]
    operation = hook.create_tuned_model(TUNED_MODEL, "num-gen")
    assert operation["name"].startswith("tunedModels/num-gen/operations/")
    assert operation["metadata"]["totalSteps"] == 38  # ceil(15 * 5 / 2), as in the seed transcript
    with pytest.raises(AlreadyExistsError):
        hook.create_tuned_model(TUNED_MODEL, "num-gen")
    done = _wait_done(hook, operation["name"])
    assert "error" not in done
    model = hook.get_tuned_model("num-gen")
    assert model["state"] == "ACTIVE"
    assert "trainingData" not in model["tuningTask"]
    assert [m["name"] for m in hook.list_tuned_models(page_size=1)] == ["tunedModels/num-gen"]
    assert (
        hook.update_tuned_model("num-gen", {"description": "counts"}, "description")["description"]
        == "counts"
    )
    answer = hook.generate_content("tunedModels/num-gen", "7")
    assert answer["candidates"][0]["content"]["parts"][0]["text"]
    permission = hook.create_permission(
        "num-gen", {"granteeType": "USER", "emailAddress": "r@x.com", "role": "READER"}
    )
    assert permission in list(hook.list_permissions("num-gen"))
    assert hook.delete_permission(permission["name"]) == {}
    assert hook.delete_tuned_model("num-gen") == {}
    with pytest.raises(NotFoundError):
        hook.get_tuned_model("num-gen")
    assert any(r for r in emulator.request_log)


def test_bearer_token_auth_against_the_emulator(make_hook, emulator, token_endpoint):
    hook = make_hook(
        host=emulator.url, extra={"keyfile_dict": authorized_user_info(token_endpoint.token_uri)}
    )
    assert list(hook.list_models(page_size=50))
    assert len(token_endpoint.issued) == 1
