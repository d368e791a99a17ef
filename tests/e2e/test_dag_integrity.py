"""Every file in ``dags/`` parses cleanly, cheaply and follows the house rules of an example DAG."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from airflow_provider_tuning.exceptions import (
    InvalidArgumentError,
    ServerError,
    TuningCancelledError,
    TuningFailedError,
)
from tests.e2e.conftest import DAGS

DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAG_IDS = {
    "example_gemini_tuning",
    "example_palm_tuning",
    "example_weekly_tuning_pipeline",
    "example_tuning_form",
    "example_vertex_tuning",
}
#: Modules a DAG file must not import when it is parsed (the DAG processor parses every file often).
HEAVY_MODULES = (
    "requests",
    "google.auth",
    "aiohttp",
    "airflow_provider_tuning.hooks.generative_language",
    "airflow_provider_tuning.hooks.credentials",
    "airflow_provider_tuning.hooks._http",
    "airflow_provider_tuning.triggers.tuning",
    "airflow_provider_tuning.hooks.vertex",
    "airflow_provider_tuning.vertex_datasets",
    "tuning_api_emulator",
    # Loaded by the operators and the sensor only when they run: the DAG processor imports the
    # provider again for every parse of every DAG file (BENCHMARKS.md, section 3).
    "airflow_provider_tuning.datasets",
    "airflow_provider_tuning.tuning_status",
    "airflow_provider_tuning.hooks.connection",
)
#: The snippets the docs quote (``# [START name]`` ... ``# [END name]``).
HOWTO_MARKERS = (
    "howto_operator_create_tuned_model",
    "howto_operator_generate_content",
    "howto_operator_generate_text",
    "howto_operator_delete_tuned_model",
    "howto_operator_list_tuned_models",
    "howto_sensor_tuned_model",
    "howto_trigger_form_params",
    "howto_operator_create_vertex_tuning_job",
    "howto_operator_generate_content_vertex",
    "howto_operator_delete_vertex_tuned_model",
)


def parse(path: Path) -> tuple[Any, list[warnings.WarningMessage]]:
    """Parse one file as the DAG processor does; return the DagBag and every warning raised."""
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(path), known_pools={"default_pool"})
    return bag, list(caught)


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    """Every DAG of every file, parsed one file at a time."""
    dags: dict[str, Any] = {}
    for path in DAG_FILES:
        bag, _ = parse(path)
        dags.update(bag.dags)
    return dags


def test_the_dags_folder_holds_the_five_examples(parsed):
    assert {p.name for p in DAG_FILES} == {f"{dag_id}.py" for dag_id in EXPECTED_DAG_IDS}
    assert set(parsed) == EXPECTED_DAG_IDS


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_each_file_parses_without_import_error_or_warning(path):
    bag, caught = parse(path)
    assert bag.import_errors == {}
    assert [str(w.message) for w in caught] == []
    assert bag.captured_warnings == {}
    assert bag.dag_warnings == set()
    assert len(bag.dags) == 1
    (dag,) = bag.dags.values()
    assert Path(dag.fileloc).resolve() == path.resolve()
    assert dag.dag_id == path.stem


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_each_dag_has_tags_docs_a_fixed_start_and_no_catchup(parsed, dag_id):
    dag = parsed[dag_id]
    assert "example" in dag.tags
    assert {"generative-language", "vertex-ai"} & set(dag.tags)
    assert len(dag.doc_md or "") > 200
    assert dag.description
    assert dag.catchup is False
    assert getattr(dag.start_date, "year", None) == 2025
    assert dag.start_date == parsed_again(dag_id).start_date  # fixed, not computed from "now"


def parsed_again(dag_id: str) -> Any:
    bag, _ = parse(DAGS / f"{dag_id}.py")
    return bag.dags[dag_id]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_each_task_retries_but_never_a_failed_job_or_a_refusal(parsed, dag_id):
    from airflow.sdk import RetryAction

    for task in parsed[dag_id].tasks:
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
        policy = task.retry_policy
        assert policy is not None, f"{dag_id}.{task.task_id} has no retry policy"

        def action(err: BaseException, policy: Any = policy, tries: int = task.retries + 1) -> RetryAction:
            return policy.evaluate(err, try_number=1, max_tries=tries).action

        assert action(TuningFailedError("tunedModels/m", "diverged")) is RetryAction.FAIL
        assert action(TuningCancelledError("tunedModels/m", "cancelled")) is RetryAction.FAIL
        assert action(InvalidArgumentError(400, "INVALID_ARGUMENT", "bad")) is RetryAction.FAIL
        assert action(ServerError(503, "UNAVAILABLE", "busy")) is RetryAction.DEFAULT


def test_data_files_are_absolute_and_exist_even_when_parsed_through_a_relative_path(monkeypatch):
    monkeypatch.chdir(DAGS.parent)
    seen = 0
    for path in DAG_FILES:
        bag, _ = parse(Path(DAGS.name) / path.name)
        assert bag.import_errors == {}
        for dag in bag.dags.values():
            values = [getattr(t, field, None) for t in dag.tasks for field in ("training_data", "prompts")]
            values += list(dag.params.dump().values())
            for value in values:
                if not isinstance(value, str) or "{{" in value or not value.endswith((".jsonl", ".csv")):
                    continue
                local = unquote(urlsplit(value).path) if value.startswith("file://") else value
                assert os.path.isabs(local), f"{dag.dag_id}: {value!r} is relative to the working directory"
                assert Path(local).is_file(), f"{dag.dag_id}: {value!r} does not exist"
                seen += 1
    assert seen >= 5  # the shipped JSONL files of all four DAGs


def test_the_weekly_pipeline_is_weekly_and_the_others_are_manual(parsed):
    assert parsed["example_weekly_tuning_pipeline"].schedule == "@weekly"
    for dag_id in EXPECTED_DAG_IDS - {"example_weekly_tuning_pipeline"}:
        assert parsed[dag_id].schedule is None, dag_id


def test_templates_use_run_id_never_the_logical_date():
    for path in DAG_FILES:
        text = path.read_text()
        assert not re.search(r"\{\{[^}]*\b(ds|ds_nodash|ts|logical_date|execution_date)\b", text), path.name


def test_the_howto_snippets_exist_once_and_are_balanced():
    found: dict[str, list[str]] = {}
    for path in DAG_FILES:
        lines = path.read_text().splitlines()
        starts = [m.group(1) for line in lines if (m := re.match(r"\s*# \[START (\w+)\]$", line))]
        ends = [m.group(1) for line in lines if (m := re.match(r"\s*# \[END (\w+)\]$", line))]
        assert starts == ends, f"{path.name}: unbalanced START/END markers {starts} {ends}"
        for name in starts:
            found.setdefault(name, []).append(path.name)
    assert {name: len(files) for name, files in found.items()} == dict.fromkeys(HOWTO_MARKERS, 1)


def test_no_secret_or_credential_in_any_dag_file():
    pattern = re.compile(
        r"AIza[0-9A-Za-z_\-]{20,}|ya29\.|BEGIN (RSA )?PRIVATE KEY|client_secret|refresh_token"
        r"|password\s*=|api_key\s*=|x-goog-api-key|Authorization",
        re.IGNORECASE,
    )
    for path in DAG_FILES:
        assert not pattern.search(path.read_text()), path.name


_PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
heavy = json.loads(sys.argv[2])
before = [m for m in heavy if m in sys.modules]
report = {"before": before, "files": {}}
for path in json.loads(sys.argv[1]):
    bag = DagBag(dag_folder=path)
    report["files"][path] = {
        "dags": sorted(bag.dags),
        "errors": bag.import_errors,
        "heavy": [m for m in heavy if m in sys.modules],
    }
print(json.dumps(report))
"""


def test_parsing_the_dag_files_imports_no_hook_http_or_auth_library():
    env = dict(os.environ)
    env.pop("AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([str(p) for p in DAG_FILES]), json.dumps(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] == []
    for path, result in report["files"].items():
        assert result["errors"] == {}, path
        assert result["dags"], path
        assert result["heavy"] == [], f"parsing {path} imported {result['heavy']}"
