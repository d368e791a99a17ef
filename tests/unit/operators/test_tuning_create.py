"""CreateTunedModelOperator against an in-memory fake hook: create, reattach on 409, wait, defer, results.

The fake hook stands in for the HTTP layer so every reattach path can be set up exactly; the same
paths run against the real emulator over HTTP in tests/integration/test_tuning_operators.py.
"""

from __future__ import annotations

import copy
import inspect
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG, Asset
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_tuning.exceptions import (
    AlreadyExistsError,
    ApiConnectionError,
    GenerativeLanguageError,
    InvalidInputError,
    NotFoundError,
    TuningCancelledError,
    TuningFailedError,
    TuningTimeoutError,
)
from airflow_provider_tuning.operators._ids import recreated_tuned_model_id
from airflow_provider_tuning.operators.links import TunedModelLink
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

EXAMPLES = [{"text_input": str(i), "output": str(i + 1)} for i in range(1, 6)]
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
SNAPSHOTS = [
    {"step": 1, "meanLoss": 3.5, "computeTime": "2024-05-01T10:00:01Z"},
    {"step": 2, "epoch": 1, "meanLoss": 1.25, "computeTime": "2024-05-01T10:00:02Z"},
]


class FakeHook:
    """An in-memory GenerativeLanguageHook: create/get/list_operations/get_operation, call log."""

    def __init__(self, *, polls_until_done: int = 1, fail_with: str | None = None, fail_code: int = 3):
        self.models: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[dict[str, Any]] = []
        self.polls_until_done = polls_until_done
        self.fail_with = fail_with
        self.fail_code = fail_code
        self.settings = SimpleNamespace(base_url="http://127.0.0.1:9", api_version="v1beta")

    # seeding helpers
    def seed(
        self,
        model_id: str,
        state: str,
        *,
        base_model: str = "models/gemini-1.5-flash-001-tuning",
        error: str | None = None,
        with_operation: bool = True,
        description: str | None = None,
    ) -> str:
        name = f"tunedModels/{model_id}"
        model = {
            "name": name,
            "baseModel": base_model,
            "description": description,
            "state": state,
            "createTime": "2024-05-01T10:00:00Z",
            "tuningTask": {"startTime": "2024-05-01T10:00:00Z"},
        }
        if state == "ACTIVE":
            model["tuningTask"].update(
                snapshots=copy.deepcopy(SNAPSHOTS), completeTime="2024-05-01T10:00:03Z"
            )
        self.models[name] = model
        if with_operation:
            op: dict[str, Any] = {
                "name": f"{name}/operations/seeded",
                "metadata": {"tunedModel": name, "totalSteps": 2},
            }
            if state != "CREATING":
                op["done"] = True
            if error:
                op["error"] = {"code": self.fail_code, "message": error}
            self.operations[name] = op
        return name

    def _finish(self, name: str) -> None:
        model = self.models[name]
        if self.fail_with:
            model["state"] = "FAILED"
            self.operations[name].update(done=True, error={"code": self.fail_code, "message": self.fail_with})
        else:
            model["state"] = "ACTIVE"
            model["tuningTask"].update(
                snapshots=copy.deepcopy(SNAPSHOTS), completeTime="2024-05-01T10:00:03Z"
            )
            self.operations[name].update(done=True, response={"name": name, "state": "ACTIVE"})

    # the hook API
    def create_tuned_model(self, tuned_model, tuned_model_id=None, *, api_version=None):
        self.calls.append(("create", tuned_model_id))
        self.bodies.append(copy.deepcopy(tuned_model))
        name = f"tunedModels/{tuned_model_id}"
        if name in self.models:
            raise AlreadyExistsError(
                409,
                "ALREADY_EXISTS",
                f"Tuned model {name} already exists.",
                request="POST /v1beta/tunedModels",
            )
        self.models[name] = {
            "name": name,
            "baseModel": tuned_model["baseModel"],
            "displayName": tuned_model.get("displayName"),
            "description": tuned_model.get("description"),
            "state": "CREATING",
            "createTime": "2024-05-01T10:00:00Z",
            "tuningTask": {"startTime": "2024-05-01T10:00:00Z"},
        }
        op = {
            "name": f"{name}/operations/op-{len(self.calls)}",
            "metadata": {"tunedModel": name, "totalSteps": 2},
        }
        self.operations[name] = op
        return copy.deepcopy(op)

    def get_tuned_model(self, name, *, api_version=None):
        self.calls.append(("get", name))
        if name not in self.models:
            raise NotFoundError(404, "NOT_FOUND", f"{name} not found")
        return copy.deepcopy(self.models[name])

    def list_operations(self, tuned_model, *, page_size=None, filter=None, api_version=None):
        self.calls.append(("list_operations", tuned_model))
        op = self.operations.get(tuned_model)
        return iter([copy.deepcopy(op)] if op else [])

    def get_operation(self, name, *, api_version="v1"):
        self.calls.append(("get_operation", name))
        model_name = name.split("/operations/")[0]
        self.polls_until_done -= 1
        if self.polls_until_done <= 0 and self.models[model_name]["state"] == "CREATING":
            self._finish(model_name)
        return copy.deepcopy(self.operations[model_name])

    # what the shared wait sends (an ApiCall), dispatched to the methods above
    def default_api_version(self):
        return self.settings.api_version

    def call(self, api_call, *, retry=None):
        path = api_call.path.split("/", 2)[2]
        if path.endswith("/operations"):
            return {"operations": list(self.list_operations(path.removesuffix("/operations")))}
        if "/operations/" in path:
            return self.get_operation(path)
        return self.get_tuned_model(path)


class FakeTI:
    def __init__(self, try_number: int = 1, map_index: int = -1, run_id: str = "manual__2024-05-01"):
        self.dag_id, self.task_id, self.run_id = "tune_dag", "tune", run_id
        self.map_index, self.try_number = map_index, try_number
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def make_context(try_number: int = 1, **kw: Any) -> dict[str, Any]:
    ti = FakeTI(try_number, **kw)
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "outlet_events": OutletEventAccessors()}


def make_operator(fake: FakeHook | None, monkeypatch, **kwargs: Any) -> CreateTunedModelOperator:
    kwargs.setdefault("base_model", "models/gemini-1.5-flash-001-tuning")
    kwargs.setdefault("training_data", EXAMPLES)
    kwargs.setdefault("poll_interval", 0.001)
    kwargs.setdefault("deferrable", False)
    with DAG("tune_dag", schedule=None):
        op = CreateTunedModelOperator(task_id="tune", **kwargs)
    if fake is not None:
        monkeypatch.setattr(op, "get_hook", lambda api_version=None: fake)
    return op


def expected_id(context: dict[str, Any]) -> str:
    return CreateTunedModelOperator.default_tuned_model_id(context)


def ours(context: dict[str, Any], **kwargs: Any) -> str:
    """The description (with its provenance marker) that make_operator(**kwargs) sends in ``context``."""
    return make_operator(None, None, **kwargs).build_request(context).body["description"]


# --- create and wait ---------------------------------------------------------------------------------


def test_create_and_wait_returns_plain_json_and_emits_the_asset_event(monkeypatch):
    fake = FakeHook(polls_until_done=2)
    op = make_operator(
        fake,
        monkeypatch,
        display_name="Number generator",
        epoch_count=5,
        batch_size=2,
        learning_rate=0.001,
        temperature=0.5,
    )
    context = make_context()
    result = op.execute(context)

    name = f"tunedModels/{expected_id(context)}"
    assert set(result) == RESULT_KEYS
    assert json.loads(json.dumps(result)) == result
    assert result["tuned_model"] == name
    assert result["state"] == "ACTIVE"
    assert result["base_model"] == "models/gemini-1.5-flash-001-tuning"
    assert result["display_name"] == "Number generator"
    assert result["total_steps"] == 2
    assert result["final_mean_loss"] == 1.25
    assert result["snapshots"] == [
        {"step": 1, "epoch": 0, "mean_loss": 3.5, "compute_time": "2024-05-01T10:00:01Z"},
        {"step": 2, "epoch": 1, "mean_loss": 1.25, "compute_time": "2024-05-01T10:00:02Z"},
    ]
    assert result["operation"] == f"{name}/operations/op-1"
    assert result["api_version"] == "v1beta"
    assert (result["create_time"], result["complete_time"]) == (
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:03Z",
    )

    body = fake.bodies[0]
    assert body["baseModel"] == "models/gemini-1.5-flash-001-tuning"
    assert body["temperature"] == 0.5
    assert body["tuningTask"]["hyperparameters"] == {"epochCount": 5, "batchSize": 2, "learningRate": 0.001}
    assert body["tuningTask"]["trainingData"]["examples"]["examples"][0] == {"textInput": "1", "output": "2"}
    assert [c[0] for c in fake.calls].count("create") == 1
    assert [c[0] for c in fake.calls].count("get_operation") == 2

    event = context["outlet_events"][op.asset]
    assert event.extra == {"tuned_model": name, "base_model": result["base_model"], "final_mean_loss": 1.25}
    assert context["ti"].xcoms[TunedModelLink.key] == f"http://127.0.0.1:9/v1beta/{name}"


def test_default_asset_is_declared_as_outlet_and_a_custom_one_replaces_it(monkeypatch):
    op = make_operator(None, monkeypatch)
    assert op.asset == Asset(
        name="tuned_model/tune_dag/tune", uri="generative-language://tunedModels/tune_dag.tune"
    )
    assert op.outlets == [op.asset]
    custom = Asset(name="my-model-ready", uri="s3://bucket/models/ready")
    with DAG("other_dag", schedule=None):
        op2 = CreateTunedModelOperator(
            task_id="t", base_model="text-bison-001", training_data=EXAMPLES, asset=custom
        )
    assert op2.outlets == [custom]
    with DAG("nowait_dag", schedule=None):
        op3 = CreateTunedModelOperator(
            task_id="t", base_model="x-1", training_data=EXAMPLES, wait_for_completion=False
        )
    assert op3.outlets == []


def test_palm_base_model_defaults_to_v1beta3_and_bare_ids_are_accepted(monkeypatch):
    fake = FakeHook()
    op = make_operator(fake, monkeypatch, base_model="text-bison-001", learning_rate="0.02", epoch_count="3")
    result = op.execute(make_context())
    assert result["api_version"] == "v1beta3"
    assert fake.bodies[0]["baseModel"] == "models/text-bison-001"
    # rendered templates are strings: numeric strings are converted
    assert fake.bodies[0]["tuningTask"]["hyperparameters"] == {"epochCount": 3, "learningRate": 0.02}


def test_wait_for_completion_false_returns_right_after_create_with_the_operation(monkeypatch):
    fake = FakeHook()
    op = make_operator(fake, monkeypatch, wait_for_completion=False)
    context = make_context()
    result = op.execute(context)
    assert result["state"] == "CREATING"
    assert result["operation"].endswith("/operations/op-1")
    assert result["total_steps"] == 2
    assert not any(c[0] == "get_operation" for c in fake.calls)
    assert list(context["outlet_events"]) == []  # no asset event for an unfinished model


def test_a_failed_job_fails_without_retry_with_the_api_message(monkeypatch):
    fake = FakeHook(fail_with="Training data has fewer than 4 examples.")
    op = make_operator(fake, monkeypatch)
    with pytest.raises(AirflowFailException, match="fewer than 4 examples") as info:
        op.execute(make_context())
    cause = info.value.__cause__
    assert isinstance(cause, TuningFailedError)
    assert cause.api_message == "Training data has fewer than 4 examples."
    assert cause.code == 3


def test_a_failed_job_is_retried_when_a_retry_may_recreate_it(monkeypatch):
    fake = FakeHook(fail_with="Training data has fewer than 4 examples.")
    op = make_operator(fake, monkeypatch, recreate_on_failure=True)
    with pytest.raises(TuningFailedError, match="fewer than 4 examples"):
        op.execute(make_context())


# --- the 409 reattach paths ----------------------------------------------------------------------------


def test_retry_after_a_crash_reattaches_to_the_creating_model_and_never_duplicates(monkeypatch):
    fake = FakeHook(polls_until_done=10**6)
    op = make_operator(fake, monkeypatch, wait_for_completion=False)
    op.execute(make_context(try_number=1))  # "crash" right after create
    fake.polls_until_done = 1
    op_wait = make_operator(fake, monkeypatch)
    result = op_wait.execute(make_context(try_number=2))
    assert len(fake.models) == 1
    assert result["state"] == "ACTIVE"
    assert [c for c in fake.calls if c[0] == "create"] == [
        ("create", result["tuned_model"].split("/")[1])
    ] * 2
    # it waited on the operation it found with list_operations
    assert ("get_operation", f"{result['tuned_model']}/operations/op-1") in fake.calls
    assert result["operation"] == f"{result['tuned_model']}/operations/op-1"


def test_reattach_to_a_creating_model_without_listed_operation_polls_the_model(monkeypatch):
    fake = FakeHook()
    context = make_context()
    name = fake.seed(expected_id(context), "CREATING", with_operation=False, description=ours(context))
    op = make_operator(fake, monkeypatch, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["name"] == name  # the model itself, polled at GET /{api_version}/{name}
    assert info.value.kwargs["operation"] is None


def test_reattach_to_an_active_model_is_done_without_waiting(monkeypatch):
    fake = FakeHook()
    context = make_context(try_number=3)
    name = fake.seed(expected_id(context), "ACTIVE", description=ours(context))
    op = make_operator(fake, monkeypatch, deferrable=True)  # would defer if it waited
    result = op.execute(context)
    assert result["tuned_model"] == name
    assert result["state"] == "ACTIVE"
    assert result["total_steps"] == 2  # last snapshot of an ACTIVE model
    assert result["final_mean_loss"] == 1.25
    assert len(fake.models) == 1
    assert context["outlet_events"][op.asset].extra["tuned_model"] == name


def test_reattach_to_a_failed_model_fails_with_the_operation_error(monkeypatch):
    fake = FakeHook(fail_code=9)
    context = make_context(try_number=2)
    name = fake.seed(
        expected_id(context), "FAILED", error="Tuning job ran out of quota.", description=ours(context)
    )
    op = make_operator(fake, monkeypatch)
    with pytest.raises(AirflowFailException, match="ran out of quota") as info:
        op.execute(context)
    assert isinstance(info.value.__cause__, TuningFailedError)
    assert info.value.__cause__.tuned_model == name
    assert info.value.__cause__.code == 9
    assert len(fake.models) == 1


def test_recreate_on_failure_creates_under_the_next_deterministic_id(monkeypatch, caplog, capsys):
    fake = FakeHook()
    context = make_context(try_number=2)
    base = expected_id(context)
    fake.seed(base, "FAILED", error="boom", description=ours(context))
    r2, r3 = recreated_tuned_model_id(base, 2), recreated_tuned_model_id(base, 3)
    fake.seed(r2, "FAILED", error="boom again", description=ours(context))
    op = make_operator(fake, monkeypatch, recreate_on_failure=True)
    result = op.execute(context)
    assert result["tuned_model"] == f"tunedModels/{r3}"
    assert result["state"] == "ACTIVE"
    assert [c[1] for c in fake.calls if c[0] == "create"] == [base, r2, r3]
    logged = caplog.text + capsys.readouterr().out  # the task SDK logs through structlog to stdout
    assert (
        f"ended FAILED (boom). recreate_on_failure=True: creating a new model as tunedModels/{r2}" in logged
    )
    # a second run of the same task instance reattaches to -r3 (ACTIVE): nothing new is created
    again = op.execute(make_context(try_number=3))
    assert again["tuned_model"] == result["tuned_model"]
    assert len(fake.models) == 3


def test_an_id_taken_by_another_base_model_is_an_input_error(monkeypatch):
    fake = FakeHook()
    fake.seed("my-model", "ACTIVE", base_model="models/text-bison-001")
    op = make_operator(fake, monkeypatch, tuned_model_id="my-model")
    with pytest.raises(
        AirflowFailException, match="it is a model of models/text-bison-001, not models/gemini"
    ) as info:
        op.execute(make_context())
    assert isinstance(info.value.__cause__, InvalidInputError)


# --- deferral and execute_complete ------------------------------------------------------------------------


def test_deferrable_defers_with_an_absolute_deadline_and_no_secret(monkeypatch):
    fake = FakeHook()
    op = make_operator(fake, monkeypatch, deferrable=True, timeout=3600, max_consecutive_failures=7)
    context = make_context()
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    path, kwargs = deferred.trigger.serialize()
    assert path == "airflow_provider_tuning.triggers.tuning.TuningOperationTrigger"
    name = f"tunedModels/{expected_id(context)}"
    assert kwargs["name"] == f"{name}/operations/op-1"
    assert kwargs["conn_id"] == "generative_language_default"
    assert kwargs["api_version"] == "v1beta"
    assert kwargs["max_consecutive_failures"] == 7
    assert before + 3600 <= kwargs["deadline"] <= time.time() + 3600
    assert deferred.kwargs == {
        "tuned_model": name,
        "api_version": "v1beta",
        "operation": f"{name}/operations/op-1",
        "total_steps": 2,
    }
    assert "key" not in json.dumps([kwargs, deferred.kwargs]).lower()
    assert not any(c[0] == "get_operation" for c in fake.calls)


def _success_event(name: str) -> dict[str, Any]:
    return {
        "status": "success",
        "tuned_model": name,
        "state": "ACTIVE",
        "operation": {
            "name": f"{name}/operations/op-1",
            "done": True,
            "metadata": {"tunedModel": name, "totalSteps": 4},
            "response": {"name": name, "state": "ACTIVE"},
        },
    }


def test_execute_complete_success_fetches_the_model_and_emits_the_asset(monkeypatch):
    fake = FakeHook()
    name = fake.seed("done-model", "ACTIVE")
    op = make_operator(fake, monkeypatch, deferrable=True)
    context = make_context()
    result = op.execute_complete(
        context,
        _success_event(name),
        tuned_model=name,
        api_version="v1beta",
        operation=f"{name}/operations/op-1",
        total_steps=2,
    )
    assert result["state"] == "ACTIVE"
    assert result["total_steps"] == 4  # the event's operation metadata wins
    assert result["operation"] == f"{name}/operations/op-1"
    assert json.loads(json.dumps(result)) == result
    assert context["outlet_events"][op.asset].extra["final_mean_loss"] == 1.25
    assert fake.calls == [("get", name)]


@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        (
            {"status": "failed", "tuned_model": "tunedModels/m", "message": "Loss diverged.", "code": 13},
            TuningFailedError,
            "Loss diverged",
        ),
        (
            {
                "status": "failed",
                "tuned_model": "tunedModels/m",
                "message": "Operation cancelled.",
                "code": 1,
            },
            TuningCancelledError,
            "cancelled",
        ),
        (
            {
                "status": "timeout",
                "tuned_model": "tunedModels/m",
                "message": "did not finish before its deadline",
            },
            TuningTimeoutError,
            "deadline",
        ),
        (
            {"status": "error", "tuned_model": "tunedModels/m", "message": "5 consecutive failures polling"},
            ApiConnectionError,
            "5 consecutive failures",
        ),
        ({"status": "bogus"}, GenerativeLanguageError, "unexpected trigger event"),
        (None, GenerativeLanguageError, "unexpected trigger event"),
    ],
)
def test_execute_complete_raises_the_outcome(monkeypatch, event, error, match):
    fake = FakeHook()
    op = make_operator(fake, monkeypatch, deferrable=True)
    context = make_context()
    # A failed job fails without retry (a retry would meet the same FAILED model); the rest is retried.
    raised = AirflowFailException if issubclass(error, TuningFailedError) else error
    with pytest.raises(raised, match=match) as info:
        op.execute_complete(context, event, tuned_model="tunedModels/m", api_version="v1beta")
    assert type(info.value.__cause__ if raised is AirflowFailException else info.value) is error
    assert fake.calls == []
    assert list(context["outlet_events"]) == []


def test_execute_complete_failed_is_exactly_tuning_failed_not_cancelled(monkeypatch):
    op = make_operator(FakeHook(), monkeypatch)
    with pytest.raises(AirflowFailException) as info:
        op.execute_complete(
            make_context(),
            {"status": "failed", "tuned_model": "tunedModels/m", "message": "Loss diverged.", "code": 13},
        )
    assert type(info.value.__cause__) is TuningFailedError
    assert info.value.__cause__.api_message == "Loss diverged."


def test_execute_complete_failed_is_retried_when_a_retry_may_recreate(monkeypatch):
    op = make_operator(FakeHook(), monkeypatch, recreate_on_failure=True)
    with pytest.raises(TuningFailedError, match="Loss diverged"):
        op.execute_complete(
            make_context(),
            {"status": "failed", "tuned_model": "tunedModels/m", "message": "Loss diverged.", "code": 13},
        )


# --- no secrets in arguments or template fields ---------------------------------------------------------


def test_no_credential_is_an_argument_or_a_template_field():
    params = set(inspect.signature(CreateTunedModelOperator.__init__).parameters)
    for word in ("key", "token", "password", "secret", "credential", "keyfile"):
        assert not any(word in p.lower() for p in params), (word, params)
        assert not any(word in f.lower() for f in CreateTunedModelOperator.template_fields)
    assert set(CreateTunedModelOperator.template_fields) >= {
        "display_name",
        "description",
        "base_model",
        "tuned_model_id",
        "training_data",
        "epoch_count",
        "batch_size",
        "learning_rate",
        "learning_rate_multiplier",
        "api_version",
    }
    assert "conn_id" in params
