"""Every example DAG end to end with ``dag.test()`` against the emulator, over real HTTP.

The DAG files run unchanged: the connection ``generative_language_default`` (an environment
variable) points at an in-process emulator, and the provider's ``poll_interval`` is set to 0.05 s
through its Airflow config option before the files are parsed. Results are checked in three
places: the run's task states, the XComs in the metadata DB, and the emulator itself (its models
and its request log).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_tuning.datasets import load_examples, load_prompts
from airflow_provider_tuning.operators._ids import default_tuned_model_id
from tests.e2e.conftest import DAGS, E2E_API_KEY, POLL_SECONDS, connection_json, load_dags
from tuning_api_emulator import Emulator
from tuning_api_emulator.inference import ranked_outputs

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

HEADERS = {"x-goog-api-key": E2E_API_KEY}
NUMBERS = DAGS / "data" / "number_generator.jsonl"
WEEKLY_TRAIN = DAGS / "data" / "weekly_train.jsonl"
WEEKLY_HOLDOUT = DAGS / "data" / "weekly_holdout.jsonl"
PROMOTED_VARIABLE = "tuned_model_promoted"
PROMOTED_ASSET = "weekly_number_model_promoted"
WEEKLY_PREFIX = "Weekly number model of example_weekly_tuning_pipeline"


# --- helpers -------------------------------------------------------------------------------------------


@pytest.fixture
def run_dag() -> Any:
    """``run_dag(dag_id, **dag_test_kwargs)``: parse ``dags/`` afresh, run ``dag.test()``, return the run.

    Each run gets a freshly parsed DAG: ``dag.test()`` resolves a run's ``conf`` into the DAG's own
    ``Param`` objects, so a second run of the same DAG object in one process would inherit the
    first run's values. (A scheduler runs each task in a new process and is not affected.)
    The environment (connection, poll interval) is whatever the test set before calling it.
    """

    def run(dag_id: str, **kwargs: Any) -> Any:
        return load_dags()[dag_id].test(**kwargs)

    return run


def states(dag_run: Any) -> dict[str, Any]:
    """Task id -> state (a list of states, by map index, for mapped tasks)."""
    out: dict[str, Any] = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        state = None if ti.state is None else str(getattr(ti.state, "value", ti.state))
        if ti.map_index >= 0:
            out.setdefault(ti.task_id, []).append(state)
        else:
            out[ti.task_id] = state
    return out


def try_numbers(dag_run: Any) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances() if ti.map_index < 0}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """An XCom value of the run, read from the metadata DB (``None`` when absent)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        key=key, run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, map_indexes=map_index
    )
    with create_session() as session:
        row = session.execute(query.with_only_columns(XComModel.value)).first()
        return None if row is None else XComModel.deserialize_value(row)


def variable(key: str) -> Any:
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None, deserialize_json=True)


def delete_variable(key: str) -> None:
    from airflow.models.variable import Variable

    Variable.delete(key)


def asset_events(name: str, run_id: str) -> list[dict[str, Any]]:
    """The extras of the events on asset ``name`` emitted by run ``run_id``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == name, AssetEvent.source_run_id == run_id)
        ).all()
        return [dict(row.extra or {}) for row in rows]


def model_name(dag_run: Any, task_id: str) -> str:
    """The deterministic ``tunedModels/<id>`` a create task of this run uses."""
    return f"tunedModels/{default_tuned_model_id(dag_run.dag_id, task_id, dag_run.run_id)}"


def models(emu: Emulator) -> dict[str, str]:
    """The emulator's tuned models: name -> state."""
    return {m["name"]: m["state"] for m in emu.state()["tunedModels"]}


def calls(emu: Emulator, method: str, path_end: str) -> list[dict[str, Any]]:
    return [r for r in emu.request_log if r["method"] == method and r["path"].endswith(path_end)]


def get_model(emu: Emulator, name: str, version: str = "v1beta") -> dict[str, Any]:
    resp = requests.get(f"{emu.url}/{version}/{name}", headers=HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ask_gemini(emu: Emulator, name: str, prompt: str) -> str:
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    resp = requests.post(f"{emu.url}/v1beta/{name}:generateContent", json=body, headers=HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    return "".join(p["text"] for p in resp.json()["candidates"][0]["content"]["parts"])


def ask_palm(emu: Emulator, name: str, prompt: str) -> str:
    body = {"prompt": {"text": prompt}}
    resp = requests.post(f"{emu.url}/v1beta3/{name}:generateText", json=body, headers=HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["candidates"][0].get("output", ""))


def normalized(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".!?")


def emulator_answers(path: Path, prompts: list[str], *, input_field: str, output_field: str) -> list[str]:
    """What the emulator answers (its documented rule: the output of the most similar example)."""
    examples = load_examples(str(path), input_field=input_field, output_field=output_field)
    return [ranked_outputs(prompt, examples)[0] for prompt in prompts]


def seed_model(emu: Emulator, model_id: str, description: str) -> str:
    """Create an ACTIVE tuned model directly through the API (as an earlier run would have)."""
    examples = load_examples(str(WEEKLY_TRAIN), input_field="question", output_field="answer")
    body = {
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "displayName": "weekly number model",
        "description": description,
        "tuningTask": {"trainingData": {"examples": {"examples": examples}}},
    }
    resp = requests.post(
        f"{emu.url}/v1beta/tunedModels",
        params={"tunedModelId": model_id},
        json=body,
        headers=HEADERS,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    name = f"tunedModels/{model_id}"
    deadline = time.monotonic() + 30
    while get_model(emu, name)["state"] != "ACTIVE":
        assert time.monotonic() < deadline, f"{name} never became ACTIVE"
        time.sleep(0.02)
    return name


# --- example_gemini_tuning ------------------------------------------------------------------------------


def test_gemini_example_tunes_answers_and_its_teardown_deletes_the_model(run_dag, use_emulator):
    emu = use_emulator
    dag_run = run_dag("example_gemini_tuning")

    assert str(dag_run.state) == "success", states(dag_run)
    assert states(dag_run) == {
        "tune_model": "success",
        "generate": "success",
        "log_answers": "success",
        "delete_model": "success",
    }
    name = model_name(dag_run, "tune_model")
    tuned = xcom(dag_run, "tune_model")
    assert tuned["tuned_model"] == name == xcom(dag_run, "tune_model", key="tuned_model")
    assert tuned["state"] == "ACTIVE"
    assert tuned["base_model"] == "models/gemini-1.0-pro-001"
    assert tuned["total_steps"] == 38  # ceil(15 examples * 5 epochs / batch 2), as in the seed
    assert tuned["snapshots"][-1]["step"] == 38

    # One create, with the seed's request: 15 examples, batch 2, learning rate 0.001, 5 epochs.
    (create,) = calls(emu, "POST", "/v1beta/tunedModels")
    body = json.loads(create["body"])
    assert body["displayName"] == "number generator model"
    assert body["baseModel"] == "models/gemini-1.0-pro-001"
    assert body["tuningTask"]["hyperparameters"] == {"batchSize": 2, "learningRate": 0.001, "epochCount": 5}
    assert len(body["tuningTask"]["trainingData"]["examples"]["examples"]) == 15
    # The wait was deferred: the trigger polled the v1 operation route until the job was done.
    (operation,) = {r["path"] for r in emu.request_log if r["path"].startswith(f"/v1/{name}/operations/")}
    assert all(r["status"] == 200 for r in calls(emu, "GET", operation))

    # The answers in XCom are the emulator's answers to the seed's two prompts.
    generated = xcom(dag_run, "generate")
    assert generated["model"] == name
    assert [r["prompt"] for r in generated["results"]] == ["LXIII", "六"]
    expected = emulator_answers(NUMBERS, ["LXIII", "六"], input_field="text_input", output_field="output")
    assert [r["text"] for r in generated["results"]] == expected
    assert xcom(dag_run, "log_answers") == [
        {"prompt": "LXIII", "answer": expected[0]},
        {"prompt": "六", "answer": expected[1]},
    ]
    assert len(calls(emu, "POST", f"{name}:generateContent")) == 2

    # The teardown deleted the model: the emulator holds none of this run's models.
    assert xcom(dag_run, "delete_model") == {"tuned_model": name, "deleted": True}
    assert [r["status"] for r in calls(emu, "DELETE", name)] == [200]
    assert name not in models(emu)


@pytest.fixture
def slow_emulator(monkeypatch) -> Iterator[Emulator]:
    """An emulator whose 38-step job lasts ~1.9 s: long enough to fail it from outside."""
    with Emulator(step_seconds=0.05, api_keys=[E2E_API_KEY]) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT", connection_json(emu.url))
        monkeypatch.setenv("AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL", POLL_SECONDS)
        yield emu


def test_a_failed_tuning_job_fails_the_run_without_retry_and_the_teardown_still_deletes_the_model(
    run_dag, slow_emulator
):
    emu = slow_emulator
    failed: list[str] = []
    stop = threading.Event()

    def fail_the_job_once_it_runs() -> None:
        while not stop.is_set():
            for model in emu.state()["tunedModels"]:
                if model["state"] == "CREATING":
                    emu.fail_model(model["name"], message="Injected failure: the loss diverged.")
                    failed.append(model["name"])
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=fail_the_job_once_it_runs, daemon=True)
    watcher.start()
    try:
        dag_run = run_dag("example_gemini_tuning")
    finally:
        stop.set()
        watcher.join(timeout=10)

    name = model_name(dag_run, "tune_model")
    assert failed == [name]
    assert str(dag_run.state) == "failed"
    assert states(dag_run) == {
        "tune_model": "failed",
        "generate": "upstream_failed",
        "log_answers": "upstream_failed",
        "delete_model": "success",
    }
    # The retry policy failed the task at once (retries=2 would otherwise wait 1 minute per try).
    assert try_numbers(dag_run)["tune_model"] == 1
    assert xcom(dag_run, "tune_model") is None
    # The name was in XCom before the failure, and the teardown deleted the FAILED model.
    assert xcom(dag_run, "tune_model", key="tuned_model") == name
    assert xcom(dag_run, "delete_model") == {"tuned_model": name, "deleted": True}
    assert len(calls(emu, "POST", "/v1beta/tunedModels")) == 1
    assert models(emu) == {}


# --- example_palm_tuning --------------------------------------------------------------------------------


def test_palm_example_tunes_in_v1beta3_generates_two_candidates_and_deletes_the_model(run_dag, use_emulator):
    emu = use_emulator
    dag_run = run_dag("example_palm_tuning")

    assert str(dag_run.state) == "success", states(dag_run)
    name = model_name(dag_run, "tune_model")
    tuned = xcom(dag_run, "tune_model")
    assert (tuned["tuned_model"], tuned["state"], tuned["api_version"]) == (name, "ACTIVE", "v1beta3")
    assert tuned["total_steps"] == 23  # ceil(15 * 3 / 2)

    (create,) = calls(emu, "POST", "/v1beta3/tunedModels")
    body = json.loads(create["body"])
    assert body["baseModel"] == "models/text-bison-001"
    assert body["tuningTask"]["hyperparameters"] == {"batchSize": 2, "learningRate": 0.001, "epochCount": 3}

    (generate,) = calls(emu, "POST", f"/v1beta3/{name}:generateText")
    request = json.loads(generate["body"])
    assert request["prompt"] == {"text": "4"}
    assert request["temperature"] == 1.0
    assert request["candidateCount"] == 2

    examples = load_examples(str(NUMBERS), input_field="text_input", output_field="output")
    (answer,) = xcom(dag_run, "log_answers")
    assert answer == {"prompt": "4", "candidates": ranked_outputs("4", examples)[:2]}

    assert xcom(dag_run, "delete_model") == {"tuned_model": name, "deleted": True}
    assert [r["status"] for r in calls(emu, "DELETE", f"/v1beta3/{name}")] == [200]
    assert name not in models(emu)


# --- example_weekly_tuning_pipeline --------------------------------------------------------------------


@pytest.fixture
def fresh_weekly_state(use_emulator) -> Iterator[Emulator]:
    """No promoted model and no tuned model before the pipeline's runs; clean up afterwards."""
    use_emulator.reset()
    delete_variable(PROMOTED_VARIABLE)
    yield use_emulator
    delete_variable(PROMOTED_VARIABLE)
    use_emulator.reset()


def holdout_score(emu: Emulator, name: str, holdout: Path) -> float:
    """The normalized match rate of the model's answers, asked directly of the emulator."""
    items = load_prompts(str(holdout), prompt_field="question", expected_field="answer")
    matches = [normalized(ask_gemini(emu, name, i.prompt)) == normalized(str(i.expected)) for i in items]
    return sum(matches) / len(matches)


def test_weekly_pipeline_promotes_only_above_the_threshold_and_cleans_up_superseded_models(
    run_dag, fresh_weekly_state, tmp_path
):
    emu = fresh_weekly_state
    dag = "example_weekly_tuning_pipeline"
    older = seed_model(emu, "weekly-older-candidate", f"{WEEKLY_PREFIX}, run scheduled__2025-01-06")
    unrelated = seed_model(emu, "someone-elses-model", "A model this pipeline does not own")
    emu.clear_request_log()
    # Half of this holdout set is in the training data (the emulator answers those right), half not.
    mixed = tmp_path / "mixed_holdout.jsonl"
    mixed.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                {"question": "5", "answer": "6"},
                {"question": "nine", "answer": "ten"},
                {"question": "1000", "answer": "1001"},
                {"question": "seventy", "answer": "seventy one"},
            )
        )
        + "\n"
    )

    # Week 1: the shipped holdout set; the candidate beats the default threshold 0.75.
    week1 = run_dag(dag)
    assert str(week1.state) == "success", states(week1)
    first = model_name(week1, "tune_candidate")
    assert states(week1) == {
        "tune_candidate": "success",
        "wait_for_candidate": "success",
        "evaluate": "success",
        "decide": "success",
        "promote": "success",
        "list_tuned_models": "success",
        "select_superseded": "success",
        "delete_superseded": ["success"],
        "discard_candidate": "skipped",
    }
    (create,) = calls(emu, "POST", "/v1beta/tunedModels")
    body = json.loads(create["body"])
    # the user's description, then the provenance marker of the task instance and request
    marker = r" \[airflow ti=[0-9a-f]{12} req=[0-9a-f]{12}\]"
    assert re.fullmatch(re.escape(f"{WEEKLY_PREFIX}, run {week1.run_id}") + marker, body["description"])
    assert body["tuningTask"]["trainingData"]["examples"]["examples"][0] == {"textInput": "2", "output": "3"}
    assert xcom(week1, "wait_for_candidate")["state"] == "ACTIVE"
    evaluation = xcom(week1, "evaluate")["evaluation"]
    assert evaluation["total"] == 4
    assert evaluation["normalized"] == holdout_score(emu, first, WEEKLY_HOLDOUT)
    promoted = variable(PROMOTED_VARIABLE)
    assert promoted["tuned_model"] == first
    assert (promoted["score"], promoted["threshold"], promoted["run_id"]) == (
        evaluation["normalized"],
        0.75,
        week1.run_id,
    )
    assert asset_events(PROMOTED_ASSET, week1.run_id) == [xcom(week1, "promote")]
    # The older model of this pipeline is superseded and deleted; the others stay.
    assert xcom(week1, "select_superseded") == [older]
    assert models(emu) == {first: "ACTIVE", unrelated: "ACTIVE"}

    # Week 2: the mixed holdout set scores 0.5, which does not beat 0.5: the candidate is discarded.
    week2 = run_dag(dag, run_conf={"holdout_uri": str(mixed), "promotion_threshold": 0.5})
    assert str(week2.state) == "success", states(week2)
    second = model_name(week2, "tune_candidate")
    assert states(week2)["promote"] == "skipped"
    assert states(week2)["discard_candidate"] == "success"
    assert states(week2)["delete_superseded"] == "skipped"
    assert xcom(week2, "evaluate")["evaluation"]["normalized"] == 0.5
    assert xcom(week2, "discard_candidate") == {"tuned_model": second, "deleted": True}
    assert variable(PROMOTED_VARIABLE)["tuned_model"] == first
    assert asset_events(PROMOTED_ASSET, week2.run_id) == []
    assert models(emu) == {first: "ACTIVE", unrelated: "ACTIVE"}

    # Week 3: the same holdout set with threshold 0.4: promoted, and week 1's model is superseded.
    week3 = run_dag(dag, run_conf={"holdout_uri": str(mixed), "promotion_threshold": 0.4})
    assert str(week3.state) == "success", states(week3)
    third = model_name(week3, "tune_candidate")
    score = xcom(week3, "evaluate")["evaluation"]["normalized"]
    assert score == holdout_score(emu, third, mixed) == 0.5
    assert variable(PROMOTED_VARIABLE)["tuned_model"] == third
    assert variable(PROMOTED_VARIABLE)["threshold"] == 0.4
    assert len(asset_events(PROMOTED_ASSET, week3.run_id)) == 1
    assert xcom(week3, "select_superseded") == [first]
    assert xcom(week3, "delete_superseded", map_index=0) == {"tuned_model": first, "deleted": True}
    assert models(emu) == {third: "ACTIVE", unrelated: "ACTIVE"}


# --- example_tuning_form --------------------------------------------------------------------------------


def test_form_dag_tunes_with_non_default_params_and_answers_from_the_tuned_model(
    run_dag, use_emulator, tmp_path
):
    emu = use_emulator
    training = tmp_path / "pairs.csv"
    training.write_text("q,a\n1,2\n3,4\n7,8\nten,eleven\ntwenty,twenty one\n")
    conf = {
        "base_model": "models/text-bison-001",
        "display_name": "form palm model",
        "training_data_uri": training.as_uri(),
        "input_field": "q",
        "output_field": "a",
        "epoch_count": 2,
        "batch_size": 3,
        "learning_rate": 0.02,
        "prompt": "8",
    }
    dag_run = run_dag("example_tuning_form", run_conf=conf)

    assert str(dag_run.state) == "success", states(dag_run)
    assert states(dag_run) == {
        "tune_model": "success",
        "pick_method": "success",
        "generate_text": "success",
        "generate_content": "skipped",
        "log_answer": "success",
    }
    name = model_name(dag_run, "tune_model")
    model = get_model(emu, name, "v1beta3")
    assert model["state"] == "ACTIVE"
    assert model["baseModel"] == "models/text-bison-001"
    assert model["displayName"] == "form palm model"
    assert model["tuningTask"]["hyperparameters"] == {"epochCount": 2, "batchSize": 3, "learningRate": 0.02}
    (create,) = calls(emu, "POST", "/v1beta3/tunedModels")
    examples = json.loads(create["body"])["tuningTask"]["trainingData"]["examples"]["examples"]
    assert examples[3] == {"textInput": "ten", "output": "eleven"}
    assert len(examples) == 5

    answer = xcom(dag_run, "log_answer")
    assert answer == {"model": name, "prompt": "8", "answer": ask_palm(emu, name, "8")}
    requests.delete(f"{emu.url}/v1beta3/{name}", headers=HEADERS, timeout=10).raise_for_status()


def test_form_dag_with_its_defaults_tunes_gemini_from_the_shipped_file(run_dag, use_emulator):
    emu = use_emulator
    dag_run = run_dag("example_tuning_form")

    assert str(dag_run.state) == "success", states(dag_run)
    assert states(dag_run)["generate_content"] == "success"
    assert states(dag_run)["generate_text"] == "skipped"
    name = model_name(dag_run, "tune_model")
    model = get_model(emu, name)
    assert (model["state"], model["baseModel"]) == ("ACTIVE", "models/gemini-1.5-flash-001-tuning")
    assert model["tuningTask"]["hyperparameters"] == {"epochCount": 5, "batchSize": 4, "learningRate": 0.001}
    assert xcom(dag_run, "log_answer")["answer"] == ask_gemini(emu, name, "LXIII")
    requests.delete(f"{emu.url}/v1beta/{name}", headers=HEADERS, timeout=10).raise_for_status()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_model", "models/gemini-1.5-pro-001"),  # not tunable: not in the enum
        ("display_name", "x" * 41),
        ("epoch_count", 0),
        ("epoch_count", 101),
        ("batch_size", 65),
        ("learning_rate", 0),
        ("epoch_count", "five"),
    ],
)
def test_form_dag_refuses_out_of_range_params_before_any_task_runs(run_dag, use_emulator, field, value):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=field):
        run_dag("example_tuning_form", run_conf={field: value})
    assert use_emulator.request_log == []
