"""What a newcomer meets in the Airflow UI, through a real api-server's routes (the ones the UI calls).

One deployment (api-server and dag-processor; the DAGs folder filled by the examples command) and one
emulator serve every test here:

* the connection form's metadata (``/ui/connections/hook_meta``) carries the provider's labels and
  placeholders, the extra fields' as ``examples`` (what Airflow 3.3's form shows for an extra field);
* the connection list's Test button, i.e. ``POST /api/v2/connections/test`` with the body Airflow
  3.3's UI builds from the listed connection (masked password, ``port: Number(port)``), makes a
  real call to the emulator: success for a good key, a clear failure for a bad one, never the key;
* a trigger with ``conf`` the operator would refuse is refused by the trigger route (400, naming
  the field), and no run is created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_tuning.examples import copy_examples
from airflow_provider_tuning.get_provider_info import CONN_FIELDS, PLACEHOLDERS
from tests.e2e.airflow_stack import AirflowStack
from tuning_api_emulator import Emulator

pytestmark = pytest.mark.e2e

GOOD_KEY = "newcomer-good-key-5d1c"
BAD_KEY = "newcomer-bad-key-9e2f"
CONN_TYPES = ("generativelanguage", "generative_language")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(step_seconds=0.01, api_keys=[GOOD_KEY]) as emu:
        yield emu


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    root = tmp_path_factory.mktemp("newcomer")
    dags_folder = root / "dags"
    dags_folder.mkdir()
    copy_examples(dags_folder)
    deployment = AirflowStack(
        root / "airflow-home", dags_folder, extra_env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    )
    deployment.migrate()
    try:
        deployment.start("api-server")
        deployment.start("dag-processor")
        deployment.wait_for(
            lambda: deployment._get("/api/v2/monitor/health") is not None, 90, "api-server up"
        )
        yield deployment
    finally:
        deployment.stop_all()


def post(stack: AirflowStack, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{stack.api}{path}", json=body, timeout=60)


def save_connection(stack: AirflowStack, conn_id: str, **fields: Any) -> None:
    """Create (or replace) a connection as the UI's form does on Save."""
    requests.delete(f"{stack.api}/api/v2/connections/{conn_id}", timeout=10)
    resp = post(stack, "/api/v2/connections", {"connection_id": conn_id, **fields})
    assert resp.status_code == 201, resp.text


def ui_test_body(stack: AirflowStack, conn_id: str) -> dict[str, Any]:
    """The body Airflow 3.3's TestConnectionButton posts for a connection of the list."""
    listed = requests.get(f"{stack.api}/api/v2/connections/{conn_id}", timeout=10).json()
    return {
        "conn_type": listed["conn_type"],
        "connection_id": listed["connection_id"],
        "description": listed["description"] or "",
        "extra": listed["extra"] or "{}",
        "host": listed["host"] or "",
        "login": listed["login"] or "",
        "password": listed["password"] or "",
        "port": listed["port"] or 0,  # Number(null) is 0
        "schema": listed["schema"] or "",
    }


def emulator_host_and_port(emulator: Emulator) -> tuple[str, int]:
    parts = urlsplit(emulator.url)
    assert parts.port is not None
    return f"{parts.scheme}://{parts.hostname}", parts.port


# --- the connection form -------------------------------------------------------------------------


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_the_form_shows_the_providers_labels_and_placeholders(stack, conn_type):
    resp = requests.get(f"{stack.api}/ui/connections/hook_meta", timeout=30)
    assert resp.status_code == 200, resp.text
    (meta,) = [m for m in resp.json() if m["connection_type"] == conn_type]
    standard = meta["standard_fields"]
    assert standard["host"] == {"hidden": False, "title": "Base URL", "placeholder": PLACEHOLDERS["host"]}
    assert standard["password"]["title"] == "API key"
    assert standard["password"]["placeholder"] == PLACEHOLDERS["password"]
    assert standard["port"] == {"hidden": False, "title": None, "placeholder": PLACEHOLDERS["port"]}
    assert standard["login"]["hidden"] is True
    assert standard["url_schema"]["hidden"] is True

    extra = meta["extra_fields"]
    assert set(extra) == set(CONN_FIELDS)
    with_examples = {name for name, spec in extra.items() if "examples" in spec["schema"]}
    assert with_examples == {"key_path", "scopes", "impersonation_chain", "quota_project_id"}
    for name in with_examples:
        assert extra[name]["schema"]["examples"] == [PLACEHOLDERS[name]]
        assert extra[name]["schema"]["title"] == CONN_FIELDS[name]["label"]
        assert extra[name]["description"] == CONN_FIELDS[name]["description"]
    assert extra["keyfile_dict"]["schema"]["format"] == "password"
    assert "external_account" in extra["auth_type"]["schema"]["enum"]


# --- the Test button ----------------------------------------------------------------------------


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_the_test_button_succeeds_with_a_good_key(stack, emulator, conn_type):
    host, port = emulator_host_and_port(emulator)
    conn_id = f"newcomer_good_{conn_type}"
    save_connection(stack, conn_id, conn_type=conn_type, host=host, port=port, password=GOOD_KEY)
    emulator.clear_request_log()

    body = ui_test_body(stack, conn_id)
    assert body["password"] == "***"  # what the list shows and the button sends back
    resp = post(stack, "/api/v2/connections/test", body)

    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["status"] is True, result
    assert result["message"].startswith(f"Connection to {host}:{port} (v1beta, api_key) works")
    assert GOOD_KEY not in resp.text
    (call,) = [r for r in emulator.request_log if r["path"] == "/v1beta/models"]
    assert call["method"] == "GET"


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_the_test_button_explains_a_bad_key_without_showing_it(stack, emulator, conn_type):
    host, port = emulator_host_and_port(emulator)
    conn_id = f"newcomer_bad_{conn_type}"
    save_connection(stack, conn_id, conn_type=conn_type, host=host, port=port, password=BAD_KEY)

    resp = post(stack, "/api/v2/connections/test", ui_test_body(stack, conn_id))

    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["status"] is False
    assert "API key not valid" in result["message"], result["message"]
    assert BAD_KEY not in resp.text
    assert BAD_KEY[:8] not in resp.text


def test_without_a_stored_port_airflow_refuses_the_buttons_port_0(stack, emulator):
    """Airflow 3.3's own refusal, which docs/connection.md describes: the provider cannot avoid it
    for a connection saved without a port (it fails before any hook runs)."""
    conn_id = "newcomer_no_port"
    save_connection(stack, conn_id, conn_type="generativelanguage", host=emulator.url, password=GOOD_KEY)

    body = ui_test_body(stack, conn_id)
    assert body["port"] == 0
    resp = post(stack, "/api/v2/connections/test", body)

    assert resp.status_code == 400
    assert "The host or port to test differs from the stored connection" in resp.json()["detail"]
    # The same connection tested without the port (the CLI, or a REST call leaving port out) works.
    del body["port"]
    resp = post(stack, "/api/v2/connections/test", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] is True, resp.json()


def test_an_unsaved_connection_with_port_0_is_tested_with_its_own_key(stack, emulator):
    body = {
        "connection_id": "newcomer_unsaved",
        "conn_type": "generativelanguage",
        "host": emulator.url,
        "port": 0,
        "password": GOOD_KEY,
        "extra": "{}",
    }
    resp = post(stack, "/api/v2/connections/test", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] is True, resp.json()
    assert GOOD_KEY not in resp.text


# --- the trigger form ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def form_dag(stack: AirflowStack) -> str:
    dag_id = "example_tuning_form"
    stack.wait_for(lambda: stack._get(f"/api/v2/dags/{dag_id}"), 120, f"DAG {dag_id} parsed")
    return dag_id


def _runs(stack: AirflowStack, dag_id: str) -> int:
    body = requests.get(f"{stack.api}/api/v2/dags/{dag_id}/dagRuns", timeout=10).json()
    return int(body["total_entries"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", 0),
        ("learning_rate", -0.5),
        ("epoch_count", 0),
        ("batch_size", 0),
        ("display_name", "x" * 41),
        ("display_name", "   "),
        ("base_model", "tunedModels/mine"),
    ],
)
def test_a_trigger_the_operator_would_refuse_is_refused_naming_the_field(stack, form_dag, field, value):
    before = _runs(stack, form_dag)
    resp = post(stack, f"/api/v2/dags/{form_dag}/dagRuns", {"logical_date": None, "conf": {field: value}})
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert f"Invalid input for param {field}" in json.dumps(detail), detail
    assert _runs(stack, form_dag) == before


def test_a_trigger_with_valid_values_is_accepted(stack, form_dag):
    conf = {"learning_rate": 0.01, "epoch_count": 3, "batch_size": 2, "display_name": "ok"}
    resp = post(stack, f"/api/v2/dags/{form_dag}/dagRuns", {"logical_date": None, "conf": conf})
    assert resp.status_code == 200, resp.text
    assert resp.json()["conf"] == conf


def test_the_vertex_form_refuses_a_base_model_path(stack):
    dag_id = "example_vertex_tuning"
    stack.wait_for(lambda: stack._get(f"/api/v2/dags/{dag_id}"), 120, f"DAG {dag_id} parsed")
    conf = {"base_model": "projects/p/models/x"}
    resp = post(stack, f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    assert resp.status_code == 400, resp.text
    assert "Invalid input for param base_model" in json.dumps(resp.json()["detail"])


def test_the_examples_command_filled_the_dags_folder(stack):
    folder = Path(stack.env["AIRFLOW__CORE__DAGS_FOLDER"]) / "airflow_provider_tuning_examples"
    assert (folder / "example_tuning_form.py").is_file()
    assert (folder / "data" / "number_generator.jsonl").is_file()
