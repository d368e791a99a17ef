"""Get/List/Update/Delete tuned model operators (fake hook), and the operators module's import cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_tuning.exceptions import InvalidInputError, NotFoundError
from airflow_provider_tuning.operators.links import TunedModelLink
from airflow_provider_tuning.operators.tuning import (
    DeleteTunedModelOperator,
    GetTunedModelOperator,
    ListTunedModelsOperator,
    UpdateTunedModelOperator,
)


class FakeHook:
    def __init__(self, models: list[dict[str, Any]] | None = None) -> None:
        self.models = {m["name"]: m for m in models or []}
        self.calls: list[tuple[Any, ...]] = []
        self.settings = SimpleNamespace(base_url="http://127.0.0.1:9", api_version="v1beta")

    def get_tuned_model(self, name, *, api_version=None):
        self.calls.append(("get", name))
        if name not in self.models:
            raise NotFoundError(404, "NOT_FOUND", f"Tuned model {name} does not exist.")
        return dict(self.models[name])

    def list_tuned_models(self, *, page_size=None, filter=None, api_version=None):
        self.calls.append(("list", page_size, filter))
        yield from (dict(m) for m in self.models.values())

    def update_tuned_model(self, name, tuned_model, update_mask=None, *, api_version=None):
        self.calls.append(("update", name, tuned_model, update_mask))
        self.models[name].update(tuned_model)
        return dict(self.models[name])

    def delete_tuned_model(self, name, *, api_version=None):
        self.calls.append(("delete", name))
        if self.models.pop(name, None) is None:
            raise NotFoundError(404, "NOT_FOUND", f"Tuned model {name} does not exist.")
        return {}


class TI:
    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


MODELS = [
    {
        "name": f"tunedModels/m{i}",
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "state": "ACTIVE",
        "displayName": f"model {i}",
    }
    for i in range(5)
]


def use(op: Any, fake: FakeHook, monkeypatch) -> Any:
    monkeypatch.setattr(op, "get_hook", lambda api_version=None: fake)
    return op


def test_get_accepts_a_bare_id_and_returns_the_model(monkeypatch):
    fake = FakeHook(MODELS)
    op = use(GetTunedModelOperator(task_id="get", tuned_model_name="m2"), fake, monkeypatch)
    ti = TI()
    result = op.execute({"ti": ti})
    assert result == MODELS[2]
    assert json.loads(json.dumps(result)) == result
    assert fake.calls == [("get", "tunedModels/m2")]
    assert ti.xcoms[TunedModelLink.key] == "http://127.0.0.1:9/v1beta/tunedModels/m2"


def test_get_of_a_missing_model_raises_not_found(monkeypatch):
    op = use(
        GetTunedModelOperator(task_id="get", tuned_model_name="tunedModels/nope"), FakeHook(), monkeypatch
    )
    with pytest.raises(NotFoundError, match="does not exist"):
        op.execute({"ti": TI()})


def test_list_stops_at_max_results_and_passes_page_size_and_filter(monkeypatch):
    fake = FakeHook(MODELS)
    op = use(
        ListTunedModelsOperator(task_id="list", page_size="2", filter="owner:me", max_results=3),
        fake,
        monkeypatch,
    )
    result = op.execute({"ti": TI()})
    assert [m["name"] for m in result] == ["tunedModels/m0", "tunedModels/m1", "tunedModels/m2"]
    assert fake.calls == [("list", 2, "owner:me")]
    everything = use(ListTunedModelsOperator(task_id="all"), FakeHook(MODELS), monkeypatch).execute({})
    assert len(everything) == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"page_size": 0}, "page_size must be a positive integer"),
        ({"page_size": 1001}, "page_size must be at most 1000"),
        ({"max_results": "many"}, "max_results must be a positive integer"),
        ({"filter": "owner:me", "api_version": "v1beta3"}, "filter exists only in v1beta"),
    ],
)
def test_list_rejects_bad_arguments_before_any_call(monkeypatch, kwargs, match):
    fake = FakeHook(MODELS)
    op = use(ListTunedModelsOperator(task_id="list", **kwargs), fake, monkeypatch)
    with pytest.raises(AirflowFailException, match=match) as info:
        op.execute({})
    assert isinstance(info.value.__cause__, InvalidInputError)
    assert fake.calls == []


def test_update_builds_the_mask_from_the_fields_given(monkeypatch):
    fake = FakeHook(MODELS)
    op = use(
        UpdateTunedModelOperator(
            task_id="up",
            tuned_model_name="m1",
            display_name="renamed",
            temperature="0.3",
            fields={"readerProjectNumbers": ["123"]},
        ),
        fake,
        monkeypatch,
    )
    result = op.execute({"ti": TI()})
    assert result["displayName"] == "renamed"
    assert fake.calls == [
        (
            "update",
            "tunedModels/m1",
            {"displayName": "renamed", "temperature": 0.3, "readerProjectNumbers": ["123"]},
            ["displayName", "temperature", "readerProjectNumbers"],
        )
    ]


def test_update_with_an_explicit_mask(monkeypatch):
    fake = FakeHook(MODELS)
    op = use(
        UpdateTunedModelOperator(
            task_id="up", tuned_model_name="m1", description="d", top_k=5, update_mask="description, topK"
        ),
        fake,
        monkeypatch,
    )
    op.execute({"ti": TI()})
    assert fake.calls[0][3] == ["description", "topK"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "nothing to update"),
        ({"display_name": "z" * 41}, "at most 40 characters"),
        ({"fields": {"baseModel": "models/x"}}, r"fields \['baseModel'\] cannot be updated"),
        ({"fields": {"tuningTask": {}}}, "cannot be updated"),
        ({"temperature": 2}, "temperature must be"),
        ({"description": "d", "update_mask": 5}, "update_mask must be"),
        ({"description": "d", "update_mask": " , "}, "update_mask is empty"),
        ({"tuned_model_name": "tunedModels/a/b"}, "must be 'tunedModels/<id>' or '<id>'"),
    ],
)
def test_update_rejects_bad_arguments_before_any_call(monkeypatch, kwargs, match):
    fake = FakeHook(MODELS)
    kwargs.setdefault("tuned_model_name", "m1")
    op = use(UpdateTunedModelOperator(task_id="up", **kwargs), fake, monkeypatch)
    with pytest.raises(AirflowFailException, match=match):
        op.execute({"ti": TI()})
    assert fake.calls == []


def test_delete_deletes_and_reports_it(monkeypatch):
    fake = FakeHook(MODELS)
    op = use(DeleteTunedModelOperator(task_id="del", tuned_model_name="m0"), fake, monkeypatch)
    assert op.execute({}) == {"tuned_model": "tunedModels/m0", "deleted": True}
    assert "tunedModels/m0" not in fake.models


def test_delete_missing_fails_unless_ignore_missing(monkeypatch, capsys):
    fake = FakeHook()
    strict = use(DeleteTunedModelOperator(task_id="del", tuned_model_name="gone"), fake, monkeypatch)
    with pytest.raises(NotFoundError):
        strict.execute({})
    lenient = use(
        DeleteTunedModelOperator(task_id="del2", tuned_model_name="gone", ignore_missing=True),
        fake,
        monkeypatch,
    )
    assert lenient.execute({}) == {"tuned_model": "tunedModels/gone", "deleted": False}
    assert "tunedModels/gone does not exist; nothing to delete" in capsys.readouterr().out


@pytest.mark.parametrize(
    "cls",
    [GetTunedModelOperator, ListTunedModelsOperator, UpdateTunedModelOperator, DeleteTunedModelOperator],
)
def test_crud_operators_are_templated_and_carry_no_credential(cls):
    assert "api_version" in cls.template_fields
    for field in cls.template_fields:
        assert not any(w in field.lower() for w in ("key", "token", "password", "secret", "credential"))


def test_importing_the_operators_loads_no_http_or_auth_library():
    code = textwrap.dedent(
        """
        import sys
        import airflow.providers.common.compat.sdk as sdk
        sdk.BaseOperator, sdk.Asset, sdk.conf, sdk.BaseOperatorLink, sdk.XCom, sdk.AirflowFailException
        before = set(sys.modules)
        import airflow_provider_tuning.operators.tuning
        new = set(sys.modules) - before
        heavy_roots = {"google", "requests", "aiohttp", "httpx", "urllib3"}
        own_heavy = ("airflow_provider_tuning.hooks", "airflow_provider_tuning.triggers",
                     "tuning_api_emulator")
        heavy = sorted(m for m in new if m.split(".")[0] in heavy_roots or m.startswith(own_heavy))
        print("HEAVY=" + ",".join(heavy))
        print("OWN=" + str(len([m for m in new if m.startswith("airflow_provider_tuning")])))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert lines["HEAVY"] == ""
    assert int(lines["OWN"]) >= 4  # the module and its small helpers were imported for real


def test_dag_serialization_keeps_the_outlet_the_link_and_the_template_fields():
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_provider_tuning.datasets import ExampleLimits
    from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

    with DAG("ser_dag", schedule=None) as dag:
        create = CreateTunedModelOperator(
            task_id="tune",
            base_model="text-bison-001",
            training_data=[{"text_input": "a", "output": "b"}],
            example_limits=ExampleLimits(max_examples=3),
        )
        GetTunedModelOperator(task_id="get", tuned_model_name=create.output["tuned_model"])
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    task = restored.task_dict["tune"]
    assert [(a.name, a.uri) for a in task.outlets] == [
        ("tuned_model/ser_dag/tune", "generative-language://tunedModels/ser_dag.tune")
    ]
    assert [(link.name, link.xcom_key) for link in task.operator_extra_links] == [
        ("Tuned model", "_link_TunedModelLink")
    ]
    assert "training_data" in task.template_fields
    assert restored.task_dict["get"].upstream_task_ids == {"tune"}


def test_the_link_reads_the_url_the_operator_pushed(monkeypatch):
    from airflow_provider_tuning.operators import links

    stored: dict[tuple[str, str], Any] = {("tune", TunedModelLink.key): "http://h/v1beta/tunedModels/m"}
    monkeypatch.setattr(
        links.XCom, "get_value", classmethod(lambda cls, *, key, ti_key: stored.get((ti_key.task_id, key)))
    )
    link = TunedModelLink()
    operator = SimpleNamespace(conn_id="my_conn")
    assert (
        link.get_link(operator, ti_key=SimpleNamespace(task_id="tune"))
        == "/tuning/job?conn_id=my_conn&name=tunedModels%2Fm"
    )
    key = SimpleNamespace(dag_id="d", run_id="manual__1+2", task_id="tune", map_index=3)
    expected = "/tuning/job?dag_id=d&run_id=manual__1%2B2&task_id=tune&map_index=3"
    assert link.get_link(None, ti_key=key) == expected
    assert link.get_link(operator, ti_key=SimpleNamespace(task_id="other")) == ""
    ti = TI()
    url = TunedModelLink.persist(
        {"ti": ti}, base_url="http://h:1/", api_version="v1beta3", tuned_model="tunedModels/x"
    )
    assert url == ti.xcoms[TunedModelLink.key] == "http://h:1/v1beta3/tunedModels/x"
