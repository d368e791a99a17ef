"""The tuning operators against the real emulator over HTTP (loopback, free port), through the real
hook, connection (``AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT``), in-worker wait and deferrable trigger.

``execute`` runs with a minimal Airflow context: a task instance (ids, try number, ``xcom_push``)
and the task SDK's own ``OutletEventAccessors`` for the asset event.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import pytest
import requests
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.sdk.module_loading import import_string
from airflow.triggers.base import TriggerEvent

from airflow_provider_tuning.exceptions import (
    InvalidInputError,
    NotFoundError,
    TrainingDataError,
    TuningFailedError,
)
from airflow_provider_tuning.operators._ids import recreated_tuned_model_id
from airflow_provider_tuning.operators.links import TunedModelLink
from airflow_provider_tuning.operators.tuning import (
    CreateTunedModelOperator,
    DeleteTunedModelOperator,
    GetTunedModelOperator,
    ListTunedModelsOperator,
    UpdateTunedModelOperator,
)
from tuning_api_emulator import Emulator

API_KEY = "emulator-key-5d1c"
EXAMPLES = [
    {"text_input": "1", "output": "2"},
    {"text_input": "3", "output": "4"},
    {"text_input": "-3", "output": "-2"},
    {"text_input": "twenty two", "output": "twenty three"},
    {"text_input": "two hundred", "output": "two hundred one"},
    {"text_input": "ninety nine", "output": "one hundred"},
]
RESULT_KEYS = {
    "tuned_model",
    "base_model",
    "display_name",
    "state",
    "total_steps",
    "final_mean_loss",
    "snapshots",
    "create_time",
    "start_time",
    "complete_time",
    "operation",
    "api_version",
}


@pytest.fixture(scope="module")
def emulator():
    with Emulator(step_seconds=0.005, api_keys=[API_KEY]) as emu:
        yield emu


@pytest.fixture(autouse=True)
def fresh(emulator, monkeypatch):
    emulator.reset()
    conn = {"conn_type": "generativelanguage", "host": emulator.url, "password": API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT", json.dumps(conn))


class TI:
    """The task instance fields the operators read, and an XCom store."""

    def __init__(self, task_id: str, run_id: str, try_number: int = 1, map_index: int = -1) -> None:
        self.dag_id, self.task_id, self.run_id = "tuning_it", task_id, run_id
        self.try_number, self.map_index = try_number, map_index
        self.xcoms: dict[str, Any] = {}
        self.upstream: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value", **kwargs: Any) -> Any:
        """What upstream tasks returned (``upstream``: task id -> value), as the task SDK pulls it."""
        return self.upstream[task_ids]


def context_for(
    task_id: str = "tune", run_id: str = "manual__2024-05-01", try_number: int = 1
) -> dict[str, Any]:
    ti = TI(task_id, run_id, try_number)
    return {"ti": ti, "task_instance": ti, "run_id": run_id, "outlet_events": OutletEventAccessors()}


def create_operator(task_id: str = "tune", **kwargs: Any) -> CreateTunedModelOperator:
    kwargs.setdefault("base_model", "models/gemini-1.5-flash-001-tuning")
    kwargs.setdefault("training_data", EXAMPLES)
    kwargs.setdefault("epoch_count", 2)
    kwargs.setdefault("batch_size", 2)
    kwargs.setdefault("poll_interval", 0.01)
    kwargs.setdefault("deferrable", False)
    with DAG("tuning_it", schedule=None):
        return CreateTunedModelOperator(task_id=task_id, **kwargs)


def rpcs(emulator) -> list[str]:
    return [entry.get("rpc") or f"{entry['method']} {entry['path']}" for entry in emulator.request_log]


def tuned_models(emulator) -> list[dict[str, Any]]:
    return emulator.state()["tunedModels"]


def run_trigger(trigger) -> dict[str, Any]:
    """Round-trip the trigger through serialize() as the triggerer does, and run it to its one event."""
    path, kwargs = trigger.serialize()
    rebuilt = import_string(path)(**kwargs)

    async def first_event() -> TriggerEvent:
        async for event in rebuilt.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first_event(), timeout=60)).payload


# --- create and wait -----------------------------------------------------------------------------------


def test_create_and_wait_in_the_worker(emulator):
    op = create_operator(display_name="number generator", description="adds one")
    context = context_for()
    result = op.execute(context)

    assert set(result) == RESULT_KEYS
    assert json.loads(json.dumps(result)) == result
    assert result["tuned_model"] == f"tunedModels/{op.default_tuned_model_id(context)}"
    assert result["state"] == "ACTIVE"
    assert result["base_model"] == "models/gemini-1.5-flash-001-tuning"
    assert result["display_name"] == "number generator"
    assert result["total_steps"] == math.ceil(len(EXAMPLES) * 2 / 2)
    assert [s["step"] for s in result["snapshots"]] == list(range(1, result["total_steps"] + 1))
    assert result["final_mean_loss"] == result["snapshots"][-1]["mean_loss"] > 0
    assert result["operation"].startswith(f"{result['tuned_model']}/operations/")
    assert result["api_version"] == "v1beta"
    assert all(result[key] for key in ("create_time", "start_time", "complete_time"))

    assert rpcs(emulator).count("CreateTunedModel") == 1
    assert len(tuned_models(emulator)) == 1
    extra = context["outlet_events"][op.asset].extra
    assert extra == {
        "tuned_model": result["tuned_model"],
        "base_model": result["base_model"],
        "final_mean_loss": result["final_mean_loss"],
    }
    link = context["ti"].xcoms[TunedModelLink.key]
    assert link == f"{emulator.url}/v1beta/{result['tuned_model']}"
    # the key only ever travelled in the header
    assert API_KEY not in json.dumps([result, link, [e["path"] + e["query"] for e in emulator.request_log]])
    assert all(e["headers"].get("x-goog-api-key") != API_KEY for e in emulator.request_log)


def test_palm_text_bison_tunes_in_v1beta3(emulator):
    op = create_operator(base_model="text-bison-001", learning_rate=0.001)
    result = op.execute(context_for())
    assert result["api_version"] == "v1beta3"
    assert result["state"] == "ACTIVE"
    assert result["base_model"] == "models/text-bison-001"
    creates = [e for e in emulator.request_log if e.get("rpc") == "CreateTunedModel"]
    assert [e["path"] for e in creates] == ["/v1beta3/tunedModels"]


def test_deferrable_create_then_trigger_then_execute_complete(emulator):
    op = create_operator(deferrable=True, timeout=600)
    context = context_for()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    _, trigger_kwargs = deferred.trigger.serialize()
    assert API_KEY not in json.dumps(trigger_kwargs)
    assert "GetOperation" not in rpcs(emulator)  # the worker created, the trigger polls

    event = run_trigger(deferred.trigger)
    assert event["status"] == "success"
    resumed = create_operator(deferrable=True)  # a fresh worker process resumes the task
    result = resumed.execute_complete(context, event, **deferred.kwargs)
    assert result["state"] == "ACTIVE"
    assert result["total_steps"] == 6
    assert result["operation"] == trigger_kwargs["name"]
    assert context["outlet_events"][resumed.asset].extra["tuned_model"] == result["tuned_model"]
    assert len(tuned_models(emulator)) == 1


# --- never a duplicate -----------------------------------------------------------------------------------


def test_worker_crash_after_create_reattaches_and_the_emulator_holds_one_model(emulator):
    context = context_for(try_number=1)
    first = create_operator(deferrable=True)
    with pytest.raises(TaskDeferred):
        first.execute(context)  # the model is created; then the worker "dies" before the trigger runs

    retry = create_operator()  # try 2 of the same (dag, task, run), waiting in the worker
    result = retry.execute(context_for(try_number=2))
    assert result["state"] == "ACTIVE"
    assert str(result["operation"]).startswith(f"{result['tuned_model']}/operations/")
    assert len(tuned_models(emulator)) == 1
    assert rpcs(emulator).count("CreateTunedModel") == 2
    statuses = [e["status"] for e in emulator.request_log if e.get("rpc") == "CreateTunedModel"]
    assert statuses == [200, 409]

    # a third run after success: 409 -> ACTIVE -> done, no wait, still one model
    emulator.clear_request_log()
    again = create_operator().execute(context_for(try_number=3))
    assert again["tuned_model"] == result["tuned_model"]
    assert again["final_mean_loss"] == result["final_mean_loss"]
    assert "GetOperation" not in rpcs(emulator)
    assert len(tuned_models(emulator)) == 1


def test_different_runs_and_tasks_get_different_models(emulator):
    a = create_operator(wait_for_completion=False).execute(context_for(run_id="run-a"))
    b = create_operator(wait_for_completion=False).execute(context_for(run_id="run-b"))
    c = create_operator("tune_other", wait_for_completion=False).execute(context_for("tune_other", "run-a"))
    assert len({a["tuned_model"], b["tuned_model"], c["tuned_model"]}) == 3
    assert len(tuned_models(emulator)) == 3
    assert a["state"] == "CREATING"
    assert a["operation"].startswith(a["tuned_model"])


# --- templating: inline data is sent as it is, a path is rendered -----------------------------------

#: Examples whose text looks like Jinja: ``{{ ds }}`` would be rewritten, ``{% for %}`` would not parse.
JINJA_LOOKALIKES = [
    {"text_input": "Say {{ ds }} back", "output": "{{ ds }}"},
    {"text_input": "{% for x in y %}{{ x }}{% endfor %}", "output": "a loop, in Jinja"},
    {"text_input": "{# not a comment #}", "output": "{{"},
    *EXAMPLES,
]
SENT_LOOKALIKES = [{"textInput": e["text_input"], "output": e["output"]} for e in JINJA_LOOKALIKES]


def render_and_run(emulator, op: CreateTunedModelOperator, **upstream: Any) -> dict[str, Any]:
    """Render ``op``'s template fields as the task runner does (Airflow's own rendering, with a context
    holding ``ds`` and a task instance), run it, and return the create request the emulator received."""
    context = context_for()
    context.update(ds="2024-05-01", ds_nodash="20240501", ts="2024-05-01T00:00:00+00:00")
    context["ti"].upstream.update(upstream)
    op.render_template_fields(context)
    op.execute(context)
    create = next(e for e in emulator.request_log if e.get("rpc") == "CreateTunedModel")
    return json.loads(create["body"])


def sent_examples(body: dict[str, Any]) -> list[dict[str, str]]:
    return body["tuningTask"]["trainingData"]["examples"]["examples"]


@pytest.mark.parametrize(
    "training_data",
    [JINJA_LOOKALIKES, tuple(JINJA_LOOKALIKES), json.dumps(JINJA_LOOKALIKES), {"examples": JINJA_LOOKALIKES}],
    ids=["list", "tuple", "json-string", "object"],
)
def test_inline_training_data_reaches_the_api_byte_for_byte(emulator, training_data):
    op = create_operator(
        training_data=training_data, description="run of {{ ds }}", wait_for_completion=False
    )
    body = render_and_run(emulator, op)
    assert sent_examples(body) == SENT_LOOKALIKES
    assert body["description"].startswith("run of 2024-05-01 [airflow ti=")  # other fields still render


def test_a_training_data_path_is_still_rendered(emulator, tmp_path):
    (tmp_path / "2024-05-01.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in JINJA_LOOKALIKES), encoding="utf-8"
    )
    op = create_operator(training_data=f"{tmp_path}/{{{{ ds }}}}.jsonl", wait_for_completion=False)
    body = render_and_run(emulator, op)
    assert op.training_data == f"{tmp_path}/2024-05-01.jsonl"
    assert sent_examples(body) == SENT_LOOKALIKES  # the file's own text is data, never a template


def test_an_xcom_arg_still_resolves_and_its_value_is_not_rendered(emulator):
    with DAG("tuning_it", schedule=None):
        prepare = CreateTunedModelOperator(task_id="prepare", base_model="m-1", training_data=EXAMPLES)
        op = CreateTunedModelOperator(
            task_id="tune",
            base_model="models/gemini-1.5-flash-001-tuning",
            training_data=prepare.output,
            wait_for_completion=False,
            deferrable=False,
        )
    body = render_and_run(emulator, op, prepare=JINJA_LOOKALIKES)
    assert sent_examples(body) == SENT_LOOKALIKES


# --- an explicit tuned_model_id: reattach only to this task instance's model of this request ------------


def create_outside_airflow(emulator, model_id: str) -> None:
    """Create ``tunedModels/<model_id>`` straight through the REST API, as another tool would."""
    body = {
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "description": "made by hand",
        "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "a", "output": "b"}]}}},
    }
    response = requests.post(
        f"{emulator.url}/v1beta/tunedModels",
        params={"tunedModelId": model_id},
        json=body,
        headers={"x-goog-api-key": API_KEY},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def refused(emulator, op: CreateTunedModelOperator, context: dict[str, Any]) -> str:
    """Run ``op``; it must fail without retry on a taken id, create nothing, and not push the taken
    model's name to XCom (a teardown would delete somebody else's model)."""
    before = sorted(m["name"] for m in tuned_models(emulator))
    with pytest.raises(AirflowFailException) as info:
        op.execute(context)
    assert isinstance(info.value.__cause__, InvalidInputError)
    assert sorted(m["name"] for m in tuned_models(emulator)) == before
    taken = re.match(r"tuned model id '([a-z0-9-]+)' is taken", str(info.value.__cause__))
    assert taken, info.value.__cause__
    assert context["ti"].xcoms.get("tuned_model") != f"tunedModels/{taken.group(1)}"
    return str(info.value.__cause__)


def test_the_description_sent_keeps_the_users_text_and_ends_with_the_provenance_marker(emulator):
    op = create_operator(description="adds one", wait_for_completion=False)
    result = op.execute(context_for())
    url = f"{emulator.url}/v1beta/{result['tuned_model']}"
    model = requests.get(url, headers={"x-goog-api-key": API_KEY}, timeout=10).json()
    assert re.fullmatch(r"adds one \[airflow ti=[0-9a-f]{12} req=[0-9a-f]{12}\]", model["description"])


def test_a_retry_of_the_same_task_instance_with_an_explicit_id_reattaches(emulator):
    first = create_operator(tuned_model_id="weekly-model", wait_for_completion=False)
    first.execute(context_for(try_number=1))
    result = create_operator(tuned_model_id="weekly-model").execute(context_for(try_number=2))
    assert result["tuned_model"] == "tunedModels/weekly-model"
    assert result["state"] == "ACTIVE"
    assert len(tuned_models(emulator)) == 1


def test_a_new_run_reusing_an_explicit_id_is_an_error_not_the_first_runs_model(emulator):
    create_operator(tuned_model_id="weekly-model").execute(context_for(run_id="run-monday"))
    other_data = [*EXAMPLES, {"text_input": "seven", "output": "eight"}]
    message = refused(
        emulator,
        create_operator(tuned_model_id="weekly-model", training_data=other_data),
        context_for(run_id="run-tuesday"),
    )
    assert message.startswith("tuned model id 'weekly-model' is taken: tunedModels/weekly-model ")
    assert "was created by another task instance (another DAG run, task or map index)" in message
    # the same data does not make it the same task instance either
    assert "another task instance" in refused(
        emulator, create_operator(tuned_model_id="weekly-model"), context_for(run_id="run-tuesday")
    )


def test_the_same_task_instance_with_other_training_data_is_an_error(emulator):
    create_operator(tuned_model_id="weekly-model", wait_for_completion=False).execute(context_for())
    message = refused(
        emulator,
        create_operator(tuned_model_id="weekly-model", training_data=EXAMPLES[:4]),
        context_for(try_number=2),
    )
    assert "was created by this task instance from another request" in message
    assert "training data" in message


def test_a_model_created_outside_airflow_under_the_id_is_an_error(emulator):
    create_outside_airflow(emulator, "weekly-model")
    message = refused(emulator, create_operator(tuned_model_id="weekly-model"), context_for())
    assert "tunedModels/weekly-model was not created by this operator" in message
    assert "delete tunedModels/weekly-model" in message


def test_recreate_on_failure_checks_every_generation(emulator):
    # this task instance's first model fails; its next id was taken by somebody else meanwhile
    with pytest.raises(AirflowFailException):
        create_operator(tuned_model_id="weekly-model", description="emulator:fail-at=0").execute(
            context_for()
        )
    create_outside_airflow(emulator, "weekly-model-r2")
    message = refused(
        emulator,
        create_operator(tuned_model_id="weekly-model", recreate_on_failure=True),
        context_for(try_number=2),
    )
    assert message.startswith("tuned model id 'weekly-model-r2' is taken")
    assert "not created by this operator" in message

    # another run with recreate_on_failure neither reattaches to nor recreates past the FAILED model
    message = refused(
        emulator,
        create_operator(tuned_model_id="weekly-model", recreate_on_failure=True),
        context_for(run_id="another-run"),
    )
    assert message.startswith("tuned model id 'weekly-model' is taken")
    assert "another task instance" in message


# --- a failing job ------------------------------------------------------------------------------------------


def api_error_of(emulator, tuned_model: str) -> dict[str, Any]:
    """The ``error`` of the model's operation, read straight from the emulator."""
    url = f"{emulator.url}/v1/{tuned_model}/operations"
    response = requests.get(url, headers={"x-goog-api-key": API_KEY}, timeout=10)
    (operation,) = response.json()["operations"]
    return operation["error"]


def failed_job(info: pytest.ExceptionInfo[AirflowFailException]) -> TuningFailedError:
    """The TuningFailedError behind an AirflowFailException (a failed job fails without retry)."""
    cause = info.value.__cause__
    assert isinstance(cause, TuningFailedError), repr(cause)
    assert str(info.value) == f"{type(cause).__name__}: {cause}"
    return cause


def test_a_failing_job_fails_the_task_without_retry_with_the_api_message(emulator):
    op = create_operator(description="emulator:fail-at=2")
    with pytest.raises(AirflowFailException) as info:
        op.execute(context_for())
    failed = failed_job(info)
    name = failed.tuned_model
    error = api_error_of(emulator, name)
    assert re.fullmatch(r"Tuning job failed at step \d of 6 \(emulated failure\)\.", error["message"])
    assert failed.api_message == error["message"]
    assert failed.code == error["code"] == 13
    assert str(failed) == f"tuning of {name} failed: {error['message']}"

    # a manual rerun reattaches to the FAILED model and fails with the same API message, creating nothing
    with pytest.raises(AirflowFailException) as again:
        create_operator(description="emulator:fail-at=2").execute(context_for(try_number=2))
    assert failed_job(again).tuned_model == name
    assert failed_job(again).api_message == error["message"]
    assert len(tuned_models(emulator)) == 1


def test_with_recreate_on_failure_a_failing_job_is_retried_and_the_retry_recreates(emulator):
    op = create_operator(description="emulator:fail-at=1", recreate_on_failure=True)
    with pytest.raises(TuningFailedError) as info:  # its own class: Airflow retries it
        op.execute(context_for())
    retry = create_operator(description="fixed", recreate_on_failure=True).execute(context_for(try_number=2))
    assert retry["state"] == "ACTIVE"
    assert retry["tuned_model"] == f"{info.value.tuned_model}-r2"


def test_a_failing_job_fails_through_the_trigger_too(emulator):
    op = create_operator(description="emulator:fail", deferrable=True)
    context = context_for()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    event = run_trigger(info.value.trigger)
    assert event["status"] == "failed"
    with pytest.raises(AirflowFailException) as raised:
        op.execute_complete(context, event, **info.value.kwargs)
    failed = failed_job(raised)
    assert failed.api_message == api_error_of(emulator, failed.tuned_model)["message"]
    assert "(emulated failure)" in failed.api_message
    assert list(context["outlet_events"]) == []

    # with recreate_on_failure the same event keeps its class, so that Airflow's retry recreates
    recreating = create_operator(description="emulator:fail", deferrable=True, recreate_on_failure=True)
    with pytest.raises(TuningFailedError):
        recreating.execute_complete(context, event, **info.value.kwargs)


def test_recreate_on_failure_makes_a_new_model_under_the_next_id(emulator):
    context = context_for()
    with pytest.raises(AirflowFailException):
        create_operator(description="emulator:fail-at=0").execute(context)
    base_id = create_operator().default_tuned_model_id(context)

    fixed = create_operator(description="fixed data", recreate_on_failure=True)
    result = fixed.execute(context_for(try_number=2))
    assert result["tuned_model"] == f"tunedModels/{recreated_tuned_model_id(base_id, 2)}"
    assert result["state"] == "ACTIVE"
    states = sorted((m["name"], m["state"]) for m in tuned_models(emulator))
    assert states == sorted([(f"tunedModels/{base_id}", "FAILED"), (result["tuned_model"], "ACTIVE")])


# --- bad input: a clear message, and no request reaches the emulator ---------------------------------


def _write(tmp_path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


BAD_INPUT = [
    (
        "display name",
        {"display_name": "x" * 41},
        InvalidInputError,
        "display_name must be at most 40 characters",
    ),
    ("both rates", {"learning_rate": 0.1, "learning_rate_multiplier": 1.0}, InvalidInputError, "not both"),
    (
        "multiplier v1beta3",
        {"base_model": "text-bison-001", "learning_rate_multiplier": 1.0},
        InvalidInputError,
        "only in v1beta",
    ),
    ("epochs", {"epoch_count": 0}, InvalidInputError, "epoch_count must be a positive integer"),
    ("id", {"tuned_model_id": "Not-Valid"}, InvalidInputError, "tuned_model_id 'Not-Valid' is invalid"),
    ("empty set", {"training_data": []}, TrainingDataError, "inline: no examples found"),
    (
        "missing field",
        {"training_data": [{"text_input": "1"}]},
        TrainingDataError,
        "inline, item 1, field 'output': missing",
    ),
    (
        "non-string",
        {"training_data": [{"text_input": 1, "output": "2"}]},
        TrainingDataError,
        "item 1, field 'text_input': input must be a string",
    ),
    (
        "empty string",
        {"training_data": [{"text_input": " ", "output": "2"}]},
        TrainingDataError,
        "item 1, field 'text_input': input is whitespace only",
    ),
    (
        "too long",
        {
            "training_data": [{"text_input": "1", "output": "y" * 30}],
            "example_limits": {"max_output_chars": 20},
        },
        TrainingDataError,
        "field 'output': output is 30 characters, over the limit of 20",
    ),
    (
        "lone surrogate in display name",
        {"display_name": "model \ud800"},
        InvalidInputError,
        "display_name contains a lone surrogate ('\\ud800' at character 6)",
    ),
    (
        "lone surrogate in description",
        {"description": "\udfff"},
        InvalidInputError,
        "description contains a lone surrogate",
    ),
    (
        "lone surrogate in data",
        {"training_data": [*EXAMPLES, {"text_input": "\ud800", "output": "2"}]},
        TrainingDataError,
        "inline, item 7, field 'text_input': input contains a lone surrogate",
    ),
    (
        "deeply nested inline JSON",
        {"training_data": "[" * 100_000 + "]" * 100_000},
        TrainingDataError,
        "inline JSON: JSON nested too deeply",
    ),
]


@pytest.mark.parametrize(("case", "kwargs", "error", "match"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_fails_without_any_request(emulator, case, kwargs, error, match):
    with pytest.raises(AirflowFailException) as info:
        create_operator(**kwargs).execute(context_for())
    assert isinstance(info.value.__cause__, error)
    assert match in str(info.value)
    assert emulator.request_log == []


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        (
            "bad.jsonl",
            '{"text_input": "1", "output": "2"}\n{"text_input": "3", "output": \n',
            "line 2: malformed JSON",
        ),
        ("cols.csv", "question,answer\n1,2\n", "the CSV header lacks the column(s) 'text_input', 'output'"),
        ("latin.jsonl", b'{"text_input": "caf\xe9", "output": "x"}\n', "latin.jsonl, line 1: cannot decode"),
    ],
)
def test_bad_training_files_fail_without_any_request(emulator, tmp_path, name, content, match):
    path = _write(tmp_path, name, content)
    with pytest.raises(AirflowFailException) as info:
        create_operator(training_data=path).execute(context_for())
    assert isinstance(info.value.__cause__, TrainingDataError)
    assert match in str(info.value)
    assert emulator.request_log == []


def test_training_data_from_a_csv_file_with_column_mapping(emulator, tmp_path):
    rows = "\n".join(f"{e['text_input']},{e['output']}" for e in EXAMPLES if "," not in e["text_input"])
    path = _write(tmp_path, "numbers.csv", f"question,answer\n{rows}\n")
    result = create_operator(
        training_data=f"file://{path}", input_field="question", output_field="answer"
    ).execute(context_for())
    assert result["state"] == "ACTIVE"
    create = next(e for e in emulator.request_log if e.get("rpc") == "CreateTunedModel")
    sent = json.loads(create["body"])["tuningTask"]["trainingData"]["examples"]["examples"]
    assert sent[0] == {"textInput": "1", "output": "2"}
    assert len(sent) == len(EXAMPLES)


# --- get, list, update, delete --------------------------------------------------------------------


def test_get_list_update_and_delete_with_ignore_missing(emulator):
    created = create_operator(display_name="to update").execute(context_for())
    name = created["tuned_model"]

    got = GetTunedModelOperator(task_id="get", tuned_model_name=name.split("/")[1]).execute(
        {"ti": TI("get", "r")}
    )
    assert got["name"] == name
    assert got["state"] == "ACTIVE"

    listed = ListTunedModelsOperator(task_id="list", page_size=1, max_results=5).execute({})
    assert [m["name"] for m in listed] == [name]
    json.dumps(listed)

    updated = UpdateTunedModelOperator(
        task_id="update", tuned_model_name=name, display_name="renamed", description="new words"
    ).execute({"ti": TI("update", "r")})
    assert (updated["displayName"], updated["description"]) == ("renamed", "new words")
    patch = next(e for e in emulator.request_log if e["method"] == "PATCH")
    assert (
        "updateMask=displayName%2Cdescription" in patch["query"]
        or "updateMask=displayName,description" in patch["query"]
    )

    assert DeleteTunedModelOperator(task_id="delete", tuned_model_name=name).execute({}) == {
        "tuned_model": name,
        "deleted": True,
    }
    assert tuned_models(emulator) == []
    with pytest.raises(NotFoundError):
        DeleteTunedModelOperator(task_id="delete", tuned_model_name=name).execute({})
    assert DeleteTunedModelOperator(task_id="delete", tuned_model_name=name, ignore_missing=True).execute(
        {}
    ) == {
        "tuned_model": name,
        "deleted": False,
    }
