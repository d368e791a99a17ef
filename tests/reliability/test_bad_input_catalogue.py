"""Every bad input of the catalogue (``scripts/bad_input_catalogue.py``) fails the way it is documented.

The cases run once, in order, against a real emulator and a scripted loopback server on free
loopback ports. Each must raise exactly its exception class with a message naming the problem (the
file and line for data files); a user's mistake must be caught before any request reaches the
emulator; no message may quote a secret; and the table in ``docs/bad-input.md`` must be exactly
what the cases produce now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tuning.exceptions import TrainingDataError
from scripts import bad_input_catalogue as catalogue
from scripts.bad_input_catalogue import API_KEY, CASES, CATEGORIES, Case, CaseEnv, Outcome

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runner() -> Any:
    with catalogue.Catalogue() as running:
        yield running


@pytest.fixture(scope="module")
def outcomes(runner: catalogue.Catalogue) -> dict[str, Outcome]:
    return {outcome.case.name: outcome for outcome in runner.run_all()}


def test_the_catalogue_covers_at_least_30_cases_in_every_category() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    assert {case.category for case in CASES} == set(CATEGORIES)
    for required in (
        "malformed JSON line",
        "UTF-8 byte-order mark",
        "Latin-1 file read as UTF-8",
        "CSV without the columns",
        "empty file",
        "100 MB file (sparse)",
        "negative epoch_count",
        "batch_size 0",
        "learning_rate and learning_rate_multiplier both set",
        "tuned_model_id with capitals and underscores",
        "display_name over 40 characters",
        "http:// base URL to a non-loopback host",
        "service-account JSON missing fields",
        "HTML page instead of JSON (200)",
        "truncated JSON body",
        "200 with an unexpected shape (operation)",
        "deeply nested JSON line",
        "deeply nested inline JSON string",
        "deeply nested prompts file",
        "lone surrogate in a training file",
        "lone surrogate in a prompts file",
        "display_name with a lone surrogate",
        "poll_interval infinite",
        "timeout NaN",
        "explicit tuned_model_id reused by a new DAG run",
        "API key outside Latin-1",
        "base URL with text in the port",
        "deeply nested keyfile_dict",
        "deeply nested extra",
        "Vertex: service account that is not an email",
        "Vertex: KMS key that is not a CryptoKey name",
        "Vertex: keyfile_dict that is not JSON",
        "Vertex: no project in the connection nor the operator",
        "Vertex data: role 'assistant'",
        "Vertex data: malformed JSON on line 3",
        "Vertex preference data: a pair missing its dispreferred completion",
    ):
        assert required in names
    vertex = [case for case in CASES if case.name.startswith("Vertex")]
    assert {case.category for case in vertex} == {
        catalogue.OPERATOR_ARGUMENT,
        catalogue.CONNECTION,
        catalogue.TRAINING_DATA,
    }


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_fails_as_catalogued(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.name]
    if case.expected is None:
        assert outcome.error is None, f"{type(outcome.error).__name__}: {outcome.error}"
    else:
        assert type(outcome.error) is case.expected, f"{type(outcome.error).__name__}: {outcome.error}"
    assert case.fragment in outcome.message

    if isinstance(outcome.error, TrainingDataError):
        # The message starts with the file it is about, and names the line when one is at fault.
        file_name = Path(outcome.error.source).name
        assert outcome.message.startswith(f"{file_name}")
        assert outcome.error.line == case.line
        if case.line is not None:
            assert f"line {case.line}" in outcome.message

    if case.user_mistake:
        assert outcome.emulator_requests == []
        assert outcome.loopback_requests == []
    if case.category == catalogue.API_RESPONSE:
        assert len(outcome.emulator_requests) + len(outcome.loopback_requests) >= 1

    for secret in (*case.secrets, API_KEY):
        assert secret not in outcome.message


@pytest.mark.parametrize(
    "trigger",
    [
        pytest.param(lambda env: catalogue._tune(env), id="create"),
        pytest.param(lambda env: catalogue._generate(env), id="generate"),
        pytest.param(catalogue._list_with(host="<emulator>", password=API_KEY), id="list"),
        pytest.param(catalogue.vertex_good_input, id="vertex-create"),
    ],
)
def test_the_same_paths_with_good_input_do_reach_the_emulator(
    trigger: Any, runner: catalogue.Catalogue
) -> None:
    """Control: an empty request log after a bad input means something only if good input fills it."""
    good = Case("good input", catalogue.OPERATOR_ARGUMENT, trigger, None, "", False)
    outcome = runner.run(good)
    assert outcome.error is None, outcome.error
    assert outcome.emulator_requests


def test_the_table_in_the_doc_is_the_catalogue_output(outcomes: dict[str, Outcome]) -> None:
    table = catalogue.render_table([outcomes[case.name] for case in CASES])
    document = (ROOT / "docs" / "bad-input.md").read_text(encoding="utf-8")
    assert catalogue.table_in(document) == table, "run python scripts/bad_input_catalogue.py --write"


def test_case_env_restores_the_connections_it_defined(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KEEP", "kept")
    monkeypatch.delenv("AIRFLOW_CONN_TEMPORARY", raising=False)
    env = CaseEnv("http://127.0.0.1:1", "http://127.0.0.1:2", tmp_path)
    env.conn("keep", host="https://example.com")
    env.conn("temporary", host="https://example.com")
    env.restore()
    import os

    assert os.environ["AIRFLOW_CONN_KEEP"] == "kept"
    assert "AIRFLOW_CONN_TEMPORARY" not in os.environ
