"""The bad-input catalogue: run every bad-input case against the real code and print what it raises.

Each :class:`Case` triggers one bad input the way a user would meet it (an operator's ``execute``
pointed at a running local emulator, a hook call, a data loader) and names the exception class and
a fragment of the message it must produce. :class:`Catalogue` runs the cases with an
:class:`~tuning_api_emulator.Emulator` and a scripted loopback HTTP server, and
records for each case the exception and how many requests reached the emulator: a case that is
the user's mistake must be caught before any request.

``python scripts/bad_input_catalogue.py`` prints the markdown table of ``docs/bad-input.md``;
``--write`` refreshes it in that file, ``--check`` exits 1 when the file's table is stale.
``tests/reliability/test_bad_input_catalogue.py`` runs the same cases with assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.server
import ipaddress
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad-input.md"
TABLE_START = "<!-- bad-input-table:start -->"
TABLE_END = "<!-- bad-input-table:end -->"

# An isolated Airflow home when run as a script (the tests set their own before importing this).
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-home" / "catalogue"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from airflow_provider_tuning.exceptions import (  # noqa: E402 (after the Airflow environment)
    ApiConnectionError,
    ConnectionConfigError,
    InvalidInputError,
    NotFoundError,
    QuotaExhaustedError,
    ServerError,
    TrainingDataError,
    UnexpectedResponseError,
)

TRAINING_DATA = "training data"
OPERATOR_ARGUMENT = "operator argument"
CONNECTION = "connection"
API_RESPONSE = "API response"
CATEGORIES = (TRAINING_DATA, OPERATOR_ARGUMENT, CONNECTION, API_RESPONSE)

API_KEY = "catalogue-key-7f3a9c"
GEMINI = "models/gemini-1.5-flash-001-tuning"
PALM = "models/text-bison-001"
GOOD_EXAMPLES = [{"text_input": "1", "output": "2"}, {"text_input": "3", "output": "4"}]
#: A private key shaped like a real one, to prove no message quotes key material.
FAKE_KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
FAKE_PRIVATE_KEY = f"-----BEGIN PRIVATE KEY-----\\n{FAKE_KEY_BODY}\\n-----END PRIVATE KEY-----\\n"


@dataclass(frozen=True)
class Case:
    """One bad input.

    :param name: what is wrong, in a few words.
    :param category: one of :data:`CATEGORIES`.
    :param trigger: called with a :class:`CaseEnv`; makes the bad input meet the code.
    :param expected: the exception class it must raise (exactly that class), or ``None`` when the
        input is accepted.
    :param fragment: text the message must contain (the result's text for an accepted input).
    :param user_mistake: the input is the user's to fix and is caught before any request, so no
        request may reach the emulator.
    :param line: the 1-based line (or item) a :class:`TrainingDataError` must report, if any.
    :param secrets: strings that must never appear in the message.
    """

    name: str
    category: str
    trigger: Callable[[CaseEnv], object]
    expected: type[BaseException] | None
    fragment: str
    user_mistake: bool
    line: int | None = None
    secrets: tuple[str, ...] = ()


@dataclass
class CaseEnv:
    """What a case runs against: the emulator, a loopback server and a folder for data files.

    :param emulator_url: base URL of the running emulator (accepts :data:`API_KEY`).
    :param loopback_url: base URL of the scripted loopback server (see :class:`ScriptedServer`).
    :param data_dir: a folder for the case's files.
    """

    emulator_url: str
    loopback_url: str
    data_dir: Path
    _env: dict[str, str | None] = field(default_factory=dict)

    def conn(self, conn_id: str = "catalogue", **fields: Any) -> str:
        """Define the Airflow connection ``conn_id`` (an ``AIRFLOW_CONN_*`` variable) for this case.

        :param conn_id: the connection id.
        :param fields: connection fields (``host``, ``password``, ``extra``, ...).
        """
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        self._env.setdefault(var, os.environ.get(var))
        os.environ[var] = json.dumps({"conn_type": "generativelanguage", **fields})
        return conn_id

    def emulator_conn(self, conn_id: str = "catalogue") -> str:
        """Define ``conn_id`` as the emulator with the accepted API key."""
        return self.conn(conn_id, host=self.emulator_url, password=API_KEY)

    def loopback_conn(self, prefix: str, conn_id: str = "catalogue") -> str:
        """Define ``conn_id`` as the loopback server, answering with the behaviour ``prefix``."""
        return self.conn(conn_id, host=f"{self.loopback_url}/{prefix}", password=API_KEY)

    def write(self, name: str, content: str | bytes) -> str:
        """Write a data file and return its path."""
        path = self.data_dir / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return str(path)

    def restore(self) -> None:
        """Remove the connections this case defined."""
        for var, old in self._env.items():
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old
        self._env.clear()


# --- helpers the cases share ---------------------------------------------------------------------


class _TaskInstance:
    """The task-instance fields the operators read, and an XCom store."""

    dag_id = "bad_input_catalogue"
    run_id = "manual__2024-05-01T00:00:00+00:00"
    map_index = -1
    try_number = 1

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def _context(task_id: str) -> dict[str, Any]:
    ti = _TaskInstance(task_id)
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id}


def _operator(cls: type, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    with DAG(_TaskInstance.dag_id, schedule=None):
        return cls(task_id="task", **kwargs)


def _execute(cls: type, **kwargs: Any) -> Any:
    """Build an operator in a DAG and run its ``execute`` with a minimal context."""
    operator = _operator(cls, **kwargs)
    return operator.execute(_context(operator.task_id))


def _tune(env: CaseEnv, **kwargs: Any) -> Any:
    """Run ``CreateTunedModelOperator.execute`` against the emulator (no wait)."""
    from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

    kwargs.setdefault("base_model", GEMINI)
    kwargs.setdefault("training_data", GOOD_EXAMPLES)
    kwargs.setdefault("wait_for_completion", False)
    kwargs.setdefault("deferrable", False)
    return _execute(CreateTunedModelOperator, conn_id=env.emulator_conn(), **kwargs)


def _tune_file(name: str, content: str | bytes, **kwargs: Any) -> Callable[[CaseEnv], object]:
    def trigger(env: CaseEnv) -> object:
        return _tune(env, training_data=env.write(name, content), **kwargs)

    return trigger


def _tune_args(**kwargs: Any) -> Callable[[CaseEnv], object]:
    return lambda env: _tune(env, **kwargs)


def _generate(env: CaseEnv, text: bool = False, **kwargs: Any) -> Any:
    """Run a generate operator's ``execute`` against the emulator."""
    from airflow_provider_tuning.operators.generate import GenerateContentOperator, GenerateTextOperator

    kwargs.setdefault("model", PALM if text else "models/gemini-1.5-flash-001")
    kwargs.setdefault("prompts", ["What comes after 1?"])
    cls = GenerateTextOperator if text else GenerateContentOperator
    return _execute(cls, conn_id=env.emulator_conn(), **kwargs)


def _generate_args(text: bool = False, **kwargs: Any) -> Callable[[CaseEnv], object]:
    return lambda env: _generate(env, text=text, **kwargs)


def _list_with(**conn: Any) -> Callable[[CaseEnv], object]:
    """List tuned models through a connection with these fields (``host`` defaults to the emulator)."""

    def trigger(env: CaseEnv) -> object:
        from airflow_provider_tuning.operators.tuning import ListTunedModelsOperator

        fields = dict(conn)
        if fields.get("host") == "<emulator>":
            fields["host"] = env.emulator_url
        return _execute(ListTunedModelsOperator, conn_id=env.conn("catalogue", **fields))

    return trigger


def _fast_hook(conn_id: str, attempts: int = 2) -> Any:
    """A hook whose retries do not wait (the emulator's ``Retry-After`` is capped at 0 s)."""
    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
    from airflow_provider_tuning.hooks.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=attempts, initial_delay=0.0, max_delay=0.0)
    return GenerativeLanguageHook(conn_id, retry=policy)


def _loopback_get(prefix: str) -> Callable[[CaseEnv], object]:
    """``GET /v1beta/tunedModels/m`` against the loopback server behaving as ``prefix``."""

    def trigger(env: CaseEnv) -> object:
        with contextlib.closing(_fast_hook(env.loopback_conn(prefix))) as hook:
            return hook.get_tuned_model("tunedModels/m")

    return trigger


def _loopback_wait(prefix: str) -> Callable[[CaseEnv], object]:
    """One status poll of a tuning operation, as the sensor and the in-worker wait make it."""

    def trigger(env: CaseEnv) -> object:
        from airflow_provider_tuning.waiting import check_tuning

        with contextlib.closing(_fast_hook(env.loopback_conn(prefix))) as hook:
            return check_tuning(hook, "tunedModels/m/operations/op")

    return trigger


def _loopback_list(prefix: str) -> Callable[[CaseEnv], object]:
    def trigger(env: CaseEnv) -> object:
        with contextlib.closing(_fast_hook(env.loopback_conn(prefix))) as hook:
            return list(hook.list_tuned_models())

    return trigger


def _emulator_fault(**rule: Any) -> Callable[[CaseEnv], object]:
    """List tuned models on the emulator while a fault rule applies to every request."""

    def trigger(env: CaseEnv) -> object:
        import requests

        config = {"seed": 1, "rules": [{"match": "ListTunedModels", **rule}]}
        requests.put(f"{env.emulator_url}/_emulator/faults", json=config, timeout=10).raise_for_status()
        with contextlib.closing(_fast_hook(env.emulator_conn())) as hook:
            return list(hook.list_tuned_models())

    return trigger


def _load_examples_file(name: str, content: bytes) -> Callable[[CaseEnv], object]:
    def trigger(env: CaseEnv) -> object:
        from airflow_provider_tuning.datasets import load_examples

        examples = load_examples(env.write(name, content))
        count = f"{len(examples)} example" + ("" if len(examples) == 1 else "s")
        return f"accepted: {count}, the first input is {examples[0]['textInput']!r}"

    return trigger


def _sparse_file(env: CaseEnv) -> object:
    path = env.data_dir / "big.jsonl"
    with path.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # sparse: no disk blocks are written
    return _tune(env, training_data=str(path))


def _gzip_file(env: CaseEnv) -> object:
    return _tune(env, training_data=env.write("train.jsonl.gz", b"this is not gzip data\n"))


def _reused_explicit_id(env: CaseEnv) -> object:
    """Last week's run made ``weekly-model``; this week's run asks for the same id with new data."""
    from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

    last_week = _context("task")
    last_week["ti"].run_id = last_week["run_id"] = "scheduled__2024-04-24T00:00:00+00:00"
    _operator(
        CreateTunedModelOperator,
        conn_id=env.emulator_conn(),
        base_model=GEMINI,
        training_data=GOOD_EXAMPLES,
        tuned_model_id="weekly-model",
        wait_for_completion=False,
    ).execute(last_week)
    return _tune(env, tuned_model_id="weekly-model", training_data=[*GOOD_EXAMPLES, ["5", "6"]])


def _sensor_both_names(env: CaseEnv) -> object:
    from airflow_provider_tuning.sensors.tuning import TunedModelSensor

    return _operator(
        TunedModelSensor,
        conn_id=env.emulator_conn(),
        tuned_model_name="tunedModels/m",
        operation_name="tunedModels/m/operations/op",
    )


def _delete_bad_name(env: CaseEnv) -> object:
    from airflow_provider_tuning.operators.tuning import DeleteTunedModelOperator

    return _execute(DeleteTunedModelOperator, conn_id=env.emulator_conn(), tuned_model_name="tunedModels/a/b")


def _update(env: CaseEnv, **kwargs: Any) -> object:
    from airflow_provider_tuning.operators.tuning import UpdateTunedModelOperator

    return _execute(UpdateTunedModelOperator, conn_id=env.emulator_conn(), tuned_model_name="m", **kwargs)


def _list_page_size(env: CaseEnv) -> object:
    from airflow_provider_tuning.operators.tuning import ListTunedModelsOperator

    return _execute(ListTunedModelsOperator, conn_id=env.emulator_conn(), page_size=5000)


def _prompts_without_expected(env: CaseEnv) -> object:
    path = env.write("holdout.jsonl", '{"question": "1", "answer": "2"}\n{"question": "3"}\n')
    return _generate(env, prompts=path, prompt_field="question", expected_field="answer")


def _output_folder(env: CaseEnv) -> object:
    return _generate(env, output_uri="results/")


def _key_path_missing(env: CaseEnv) -> object:
    return _list_with(extra={"key_path": str(env.data_dir / "missing-key.json")})(env)


#: A JSON list nested deeper than Python's parser can go (a RecursionError if not caught).
DEEP_JSON = "[" * 100_000 + "]" * 100_000
#: A service-account key whose JSON nests too deeply after the private key.
_DEEP_KEYFILE = (
    '{"type": "service_account", "private_key": "' + FAKE_PRIVATE_KEY + '", "extra": ' + DEEP_JSON + "}"
)
#: An API key with a character outside Latin-1 (it cannot travel in an HTTP header).
NON_ASCII_KEY = "AIzaSyD-\u4e2d\u6587-key-5c1e"


def _parse_connection(**fields: Any) -> Callable[[CaseEnv], object]:
    """Parse a connection object with these fields as the hook does (an ``AIRFLOW_CONN_*`` variable
    cannot hold JSON this deep: Airflow's own parser would refuse the variable first)."""

    def trigger(env: CaseEnv) -> object:
        from types import SimpleNamespace

        from airflow_provider_tuning.hooks.connection import ConnectionSettings

        conn = SimpleNamespace(conn_id="catalogue", host=env.emulator_url, port=None, password=API_KEY)
        return ConnectionSettings.from_connection(SimpleNamespace(**{**vars(conn), **fields}))

    return trigger


def _generate_file(name: str, content: str, **kwargs: Any) -> Callable[[CaseEnv], object]:
    def trigger(env: CaseEnv) -> object:
        return _generate(env, prompts=env.write(name, content), **kwargs)

    return trigger


_SA_MISSING_FIELDS = {
    "type": "service_account",
    "project_id": "my-project",
    "private_key_id": "0123456789abcdef",
    "private_key": FAKE_PRIVATE_KEY,
}

# --- the cases -----------------------------------------------------------------------------------

CASES: list[Case] = [
    # training-data files, through CreateTunedModelOperator.execute against the emulator
    Case(
        "malformed JSON line",
        TRAINING_DATA,
        _tune_file("train.jsonl", '{"text_input": "1", "output": "2"}\n{"text_input": "3" "output": "4"}\n'),
        TrainingDataError,
        "train.jsonl, line 2: malformed JSON at column 20: Expecting ',' delimiter",
        True,
        line=2,
    ),
    Case(
        "UTF-8 byte-order mark",
        TRAINING_DATA,
        _load_examples_file("bom.jsonl", b'\xef\xbb\xbf{"text_input": "1", "output": "2"}\n'),
        None,
        "accepted: 1 example, the first input is '1'",
        False,
    ),
    Case(
        "Latin-1 file read as UTF-8",
        TRAINING_DATA,
        _tune_file("latin1.jsonl", '{"text_input": "caf\xe9", "output": "x"}\n'.encode("latin-1")),
        TrainingDataError,
        "latin1.jsonl, line 1: cannot decode byte(s) e9 at byte offset 19 as utf-8",
        True,
        line=1,
    ),
    Case(
        "CSV without the columns",
        TRAINING_DATA,
        _tune_file("qa.csv", "question,answer\n1,2\n"),
        TrainingDataError,
        "qa.csv, line 1, field 'text_input': the CSV header lacks the column(s) 'text_input', 'output'",
        True,
        line=1,
    ),
    Case(
        "empty file",
        TRAINING_DATA,
        _tune_file("empty.jsonl", ""),
        TrainingDataError,
        "empty.jsonl: no examples found (the file is empty)",
        True,
    ),
    Case(
        "100 MB file (sparse)",
        TRAINING_DATA,
        _sparse_file,
        TrainingDataError,
        "big.jsonl: file is 104,857,600 bytes, over the limit of 67,108,864 (max_file_bytes)",
        True,
    ),
    Case(
        "missing output field",
        TRAINING_DATA,
        _tune_file("typo.jsonl", '{"text_input": "1", "output": "2"}\n{"text_input": "3", "ouput": "4"}\n'),
        TrainingDataError,
        "typo.jsonl, line 2, field 'output': missing (the record has fields: 'text_input', 'ouput')",
        True,
        line=2,
    ),
    Case(
        "output is a number",
        TRAINING_DATA,
        _tune_file("numbers.jsonl", '{"text_input": "1", "output": 2}\n'),
        TrainingDataError,
        "numbers.jsonl, line 1, field 'output': output must be a string, got number",
        True,
        line=1,
    ),
    Case(
        "whitespace-only output",
        TRAINING_DATA,
        _tune_file("blank.jsonl", '{"text_input": "1", "output": "   "}\n'),
        TrainingDataError,
        "blank.jsonl, line 1, field 'output': output is whitespace only",
        True,
        line=1,
    ),
    Case(
        "output over 5,000 characters",
        TRAINING_DATA,
        _tune_file("long.jsonl", json.dumps({"text_input": "1", "output": "x" * 5001}) + "\n"),
        TrainingDataError,
        "long.jsonl, line 1, field 'output': output is 5,001 characters, over the limit of 5,000",
        True,
        line=1,
    ),
    Case(
        "JSON file that is not a list",
        TRAINING_DATA,
        _tune_file("train.json", '{"rows": []}'),
        TrainingDataError,
        "train.json: expected a list of examples, or an object with a list under 'examples'",
        True,
    ),
    Case(
        "CSV row with a missing value",
        TRAINING_DATA,
        _tune_file("short.csv", "text_input,output\n1,2\n3\n"),
        TrainingDataError,
        "short.csv, line 3: the row has 1 value, the header 2",
        True,
        line=3,
    ),
    Case(
        "unsupported file type",
        TRAINING_DATA,
        _tune_file("train.txt", "1 -> 2\n"),
        TrainingDataError,
        "train.txt: unsupported file type .txt",
        True,
    ),
    Case(
        "file not found",
        TRAINING_DATA,
        lambda env: _tune(env, training_data=str(env.data_dir / "nowhere.jsonl")),
        TrainingDataError,
        "nowhere.jsonl: file not found",
        True,
    ),
    Case(
        ".gz file that is not gzip",
        TRAINING_DATA,
        _gzip_file,
        TrainingDataError,
        "train.jsonl.gz: not a valid gzip file",
        True,
    ),
    Case(
        "more examples than max_examples",
        TRAINING_DATA,
        _tune_file(
            "three.jsonl",
            "".join(json.dumps({"text_input": str(i), "output": str(i + 1)}) + "\n" for i in range(3)),
            example_limits={"max_examples": 2},
        ),
        TrainingDataError,
        "three.jsonl, line 3: more than max_examples=2 examples",
        True,
        line=3,
    ),
    Case(
        "several bad records in one file",
        TRAINING_DATA,
        _tune_file("several.csv", "text_input,output\n1,\n2\n3,\n"),
        TrainingDataError,
        "several.csv: 3 problems:\n- line 2, field 'output': output is empty\n"
        "- line 3: the row has 1 value, the header 2\n- line 4, field 'output': output is empty",
        True,
        line=2,
    ),
    Case(
        "prompt file record without the expected field",
        TRAINING_DATA,
        _prompts_without_expected,
        TrainingDataError,
        "holdout.jsonl, line 2, field 'answer': missing (the record has fields: 'question')",
        True,
        line=2,
    ),
    Case(
        "deeply nested JSON line",
        TRAINING_DATA,
        _tune_file("deep.jsonl", '{"text_input": "1", "output": "2"}\n' + DEEP_JSON + "\n"),
        TrainingDataError,
        "deep.jsonl, line 2: JSON nested too deeply (more levels of lists or objects than can be parsed)",
        True,
        line=2,
    ),
    Case(
        "deeply nested inline JSON string",
        TRAINING_DATA,
        _tune_args(training_data=DEEP_JSON),
        TrainingDataError,
        "inline JSON: JSON nested too deeply",
        True,
    ),
    Case(
        "deeply nested prompts file",
        TRAINING_DATA,
        _generate_file("prompts.json", DEEP_JSON),
        TrainingDataError,
        "prompts.json: JSON nested too deeply",
        True,
    ),
    Case(
        "lone surrogate in a training file",
        TRAINING_DATA,
        _tune_file(
            "halves.jsonl", '{"text_input": "1", "output": "2"}\n{"text_input": "\\ud83d", "output": "x"}\n'
        ),
        TrainingDataError,
        "halves.jsonl, line 2, field 'text_input': input contains a lone surrogate "
        "('\\ud83d' at character 0), which is not valid Unicode text",
        True,
        line=2,
    ),
    Case(
        "lone surrogate in a prompts file",
        TRAINING_DATA,
        _generate_file("prompts.jsonl", '{"prompt": "1"}\n{"prompt": "\\udfff"}\n'),
        TrainingDataError,
        "prompts.jsonl, line 2, field 'prompt': prompt contains a lone surrogate",
        True,
        line=2,
    ),
    Case(
        "gzip of a valid file",
        TRAINING_DATA,
        _load_examples_file("ok.jsonl.gz", gzip.compress(b'{"text_input": "7", "output": "8"}\n', mtime=0)),
        None,
        "accepted: 1 example, the first input is '7'",
        False,
    ),
    # operator arguments
    Case(
        "negative epoch_count",
        OPERATOR_ARGUMENT,
        _tune_args(epoch_count=-1),
        InvalidInputError,
        "epoch_count must be a positive integer, got -1",
        True,
    ),
    Case(
        "batch_size 0",
        OPERATOR_ARGUMENT,
        _tune_args(batch_size=0),
        InvalidInputError,
        "batch_size must be a positive integer, got 0",
        True,
    ),
    Case(
        "learning_rate and learning_rate_multiplier both set",
        OPERATOR_ARGUMENT,
        _tune_args(learning_rate=0.001, learning_rate_multiplier=1.0),
        InvalidInputError,
        "set learning_rate or learning_rate_multiplier, not both",
        True,
    ),
    Case(
        "learning_rate_multiplier on a PaLM model (v1beta3)",
        OPERATOR_ARGUMENT,
        _tune_args(base_model=PALM, learning_rate_multiplier=1.0),
        InvalidInputError,
        "learning_rate_multiplier exists only in v1beta, not in v1beta3",
        True,
    ),
    Case(
        "tuned_model_id with capitals and underscores",
        OPERATOR_ARGUMENT,
        _tune_args(tuned_model_id="My_Model"),
        InvalidInputError,
        "tuned_model_id 'My_Model' is invalid",
        True,
    ),
    Case(
        "tuned_model_id over 40 characters",
        OPERATOR_ARGUMENT,
        _tune_args(tuned_model_id="a" * 41),
        InvalidInputError,
        "is invalid: at most 40 characters",
        True,
    ),
    Case(
        "display_name over 40 characters",
        OPERATOR_ARGUMENT,
        _tune_args(display_name="Number generator, weekly retrain, v2 final"),
        InvalidInputError,
        "display_name must be at most 40 characters, got 42",
        True,
    ),
    Case(
        "display_name with a lone surrogate",
        OPERATOR_ARGUMENT,
        _tune_args(display_name="number model \ud800"),
        InvalidInputError,
        "display_name contains a lone surrogate ('\\ud800' at character 13), which is not valid Unicode text",
        True,
    ),
    Case(
        "description with a lone surrogate",
        OPERATOR_ARGUMENT,
        _tune_args(description="weekly \udc00 run"),
        InvalidInputError,
        "description contains a lone surrogate ('\\udc00' at character 7)",
        True,
    ),
    Case(
        "poll_interval infinite",
        OPERATOR_ARGUMENT,
        _tune_args(poll_interval=float("inf")),
        InvalidInputError,
        "poll_interval must be a finite number, got inf",
        True,
    ),
    Case(
        "timeout NaN",
        OPERATOR_ARGUMENT,
        _tune_args(timeout=float("nan")),
        InvalidInputError,
        "timeout must be a finite number, got nan",
        True,
    ),
    Case(
        "explicit tuned_model_id reused by a new DAG run",
        OPERATOR_ARGUMENT,
        _reused_explicit_id,
        InvalidInputError,
        "tuned model id 'weekly-model' is taken: tunedModels/weekly-model was created by another task "
        "instance (another DAG run, task or map index). It is not reattached",
        False,  # found by the 409 of the create call and a read of the model
    ),
    Case(
        "base_model is a tuned model",
        OPERATOR_ARGUMENT,
        _tune_args(base_model="tunedModels/my-model"),
        InvalidInputError,
        "base_model must be a base model ('models/...'), not a tuned model",
        True,
    ),
    Case(
        "tuning with api_version v1",
        OPERATOR_ARGUMENT,
        _tune_args(api_version="v1"),
        InvalidInputError,
        "api_version must be one of v1beta, v1beta3 for tuning, got 'v1'",
        True,
    ),
    Case(
        "tuned model temperature 1.5",
        OPERATOR_ARGUMENT,
        _tune_args(temperature=1.5),
        InvalidInputError,
        "temperature must be >= 0 and <= 1, got 1.5",
        True,
    ),
    Case(
        "epoch_count that is not a number (rendered template)",
        OPERATOR_ARGUMENT,
        _tune_args(epoch_count="five"),
        InvalidInputError,
        "epoch_count must be a positive integer, got 'five'",
        True,
    ),
    Case(
        "generateContent temperature 2.5",
        OPERATOR_ARGUMENT,
        _generate_args(temperature=2.5),
        InvalidInputError,
        "temperature must be >= 0 and <= 2, got 2.5",
        True,
    ),
    Case(
        "candidate_count 9",
        OPERATOR_ARGUMENT,
        _generate_args(candidate_count=9),
        InvalidInputError,
        "candidate_count must be at most 8, got 9",
        True,
    ),
    Case(
        "six stop_sequences",
        OPERATOR_ARGUMENT,
        _generate_args(stop_sequences=["a", "b", "c", "d", "e", "f"]),
        InvalidInputError,
        "stop_sequences may hold at most 5 sequences, got 6",
        True,
    ),
    Case(
        "PaLM safety category on generateContent",
        OPERATOR_ARGUMENT,
        _generate_args(safety_settings=[{"category": "TOXICITY", "threshold": "BLOCK_NONE"}]),
        InvalidInputError,
        "safety_settings[0].category 'TOXICITY' is not one of",
        True,
    ),
    Case(
        "min_score without expected outputs",
        OPERATOR_ARGUMENT,
        _generate_args(min_score=0.8),
        InvalidInputError,
        "min_score is set but no prompt has an expected output",
        True,
    ),
    Case(
        "system_instruction with api_version v1",
        OPERATOR_ARGUMENT,
        _generate_args(api_version="v1", system_instruction="Answer with a number."),
        InvalidInputError,
        "system_instruction needs api_version 'v1beta'",
        True,
    ),
    Case(
        "generateText with api_version v1",
        OPERATOR_ARGUMENT,
        _generate_args(text=True, api_version="v1"),
        InvalidInputError,
        "GenerateTextOperator calls generateText, which api_version 'v1' does not serve",
        True,
    ),
    Case(
        "concurrency 0",
        OPERATOR_ARGUMENT,
        _generate_args(concurrency=0),
        InvalidInputError,
        "concurrency must be a positive integer, got 0",
        True,
    ),
    Case(
        "output_uri names a folder",
        OPERATOR_ARGUMENT,
        _output_folder,
        InvalidInputError,
        "output_uri 'results/' names a folder; give a file name",
        True,
    ),
    Case(
        "update with nothing to update",
        OPERATOR_ARGUMENT,
        lambda env: _update(env),
        InvalidInputError,
        "nothing to update: give display_name, description, temperature, top_p, top_k or fields",
        True,
    ),
    Case(
        "update of an immutable field",
        OPERATOR_ARGUMENT,
        lambda env: _update(env, fields={"baseModel": GEMINI}),
        InvalidInputError,
        "fields ['baseModel'] cannot be updated (immutable or output only)",
        True,
    ),
    Case(
        "delete with a malformed tuned model name",
        OPERATOR_ARGUMENT,
        _delete_bad_name,
        InvalidInputError,
        "tuned_model_name must be 'tunedModels/<id>' or '<id>', got 'tunedModels/a/b'",
        True,
    ),
    Case(
        "list page_size over 1000",
        OPERATOR_ARGUMENT,
        _list_page_size,
        InvalidInputError,
        "page_size must be at most 1000, got 5000",
        True,
    ),
    Case(
        "sensor given both a model and an operation",
        OPERATOR_ARGUMENT,
        _sensor_both_names,
        InvalidInputError,
        "give exactly one of tuned_model_name or operation_name",
        True,
    ),
    # connection fields
    Case(
        "http:// base URL to a non-loopback host",
        CONNECTION,
        _list_with(host="http://tuning.example.com", password=API_KEY),
        ConnectionConfigError,
        "uses plain http:// for 'tuning.example.com', which is not a loopback host",
        True,
        secrets=(API_KEY,),
    ),
    Case(
        "service-account JSON missing fields",
        CONNECTION,
        _list_with(host="<emulator>", extra={"keyfile_dict": _SA_MISSING_FIELDS}),
        ConnectionConfigError,
        "keyfile_dict (service_account) is missing required field(s): client_email, token_uri",
        True,
        secrets=(FAKE_KEY_BODY,),
    ),
    Case(
        "keyfile_dict that is not JSON",
        CONNECTION,
        _list_with(
            host="<emulator>", extra={"keyfile_dict": '{"type": "authorized_user", "refresh_token": '}
        ),
        ConnectionConfigError,
        "keyfile_dict is not valid JSON (line 1, column 46: Expecting value)",
        True,
    ),
    Case(
        "key file with an unknown type",
        CONNECTION,
        _list_with(host="<emulator>", extra={"keyfile_dict": {"type": "impersonated_service_account"}}),
        ConnectionConfigError,
        "keyfile_dict has type 'impersonated_service_account', which is not supported",
        True,
    ),
    Case(
        "key_path that does not exist",
        CONNECTION,
        _key_path_missing,
        ConnectionConfigError,
        "missing-key.json' cannot be read: No such file or directory",
        True,
    ),
    Case(
        "API key and key file both set",
        CONNECTION,
        _list_with(
            host="<emulator>",
            password=API_KEY,
            extra={
                "keyfile_dict": {
                    "type": "authorized_user",
                    "client_id": "id",
                    "client_secret": "secret-value-1",
                    "refresh_token": "refresh-value-1",
                }
            },
        ),
        ConnectionConfigError,
        "conflicting auth modes: api key (password) and keyfile_dict are both set",
        True,
        secrets=(API_KEY, "secret-value-1", "refresh-value-1"),
    ),
    Case(
        "API key with a space in it",
        CONNECTION,
        _list_with(host="<emulator>", password="AIzaSy abc123"),  # noqa: S106 (a fake key)
        ConnectionConfigError,
        "the API key contains whitespace or control characters",
        True,
        secrets=("AIzaSy abc123",),
    ),
    Case(
        "API key outside Latin-1",
        CONNECTION,
        _list_with(host="<emulator>", password=NON_ASCII_KEY),
        ConnectionConfigError,
        "the API key contains a non-ASCII character",
        True,
        secrets=(NON_ASCII_KEY, "AIzaSyD", "5c1e"),
    ),
    Case(
        "base URL with text in the port",
        CONNECTION,
        _list_with(host="https://generativelanguage.googleapis.com:sk-pasted-4471", password=API_KEY),
        ConnectionConfigError,
        "base URL is not a valid URL: its port must be a number from 0 to 65535",
        True,
        secrets=("sk-pasted-4471",),
    ),
    Case(
        "deeply nested keyfile_dict",
        CONNECTION,
        _list_with(host="<emulator>", extra={"keyfile_dict": _DEEP_KEYFILE}),
        ConnectionConfigError,
        "keyfile_dict is not valid JSON: nested too deeply",
        True,
        secrets=(FAKE_KEY_BODY,),
    ),
    Case(
        "deeply nested extra",
        CONNECTION,
        _parse_connection(extra='{"scopes": ' + DEEP_JSON + "}"),
        ConnectionConfigError,
        "extra is not valid JSON: nested too deeply",
        True,
    ),
    Case(
        "base URL ending in the API version",
        CONNECTION,
        lambda env: _list_with(host=f"{env.emulator_url}/v1beta", password=API_KEY)(env),
        ConnectionConfigError,
        "base URL ends with the API version 'v1beta'; give the host only",
        True,
    ),
    Case(
        "base URL with a user and password",
        CONNECTION,
        _list_with(host="https://admin:hunter2-pass@generativelanguage.googleapis.com", password=API_KEY),
        ConnectionConfigError,
        "base URL must not contain user info",
        True,
        secrets=("hunter2-pass",),
    ),
    Case(
        "quota_project_id with an API key",
        CONNECTION,
        _list_with(host="<emulator>", password=API_KEY, extra={"quota_project_id": "my-project"}),
        ConnectionConfigError,
        "quota_project_id cannot be used with an API key",
        True,
        secrets=(API_KEY,),
    ),
    Case(
        "external_account configuration without its fields",
        CONNECTION,
        _list_with(host="<emulator>", extra={"keyfile_dict": {"type": "external_account", "audience": "a"}}),
        ConnectionConfigError,
        "keyfile_dict (external_account) is missing required field(s): subject_token_type, token_url",
        True,
    ),
    Case(
        "unknown auth_type",
        CONNECTION,
        _list_with(host="<emulator>", password=API_KEY, extra={"auth_type": "oauth"}),
        ConnectionConfigError,
        "unknown auth_type 'oauth'; expected one of api_key, authorized_user, service_account, "
        "external_account, adc",
        True,
    ),
    Case(
        "unknown api_version",
        CONNECTION,
        _list_with(host="<emulator>", password=API_KEY, extra={"api_version": "v2"}),
        ConnectionConfigError,
        "unknown api_version 'v2'; expected one of v1, v1beta, v1beta3",
        True,
    ),
    Case(
        "impersonation_chain entry that is not an email",
        CONNECTION,
        _list_with(host="<emulator>", extra={"auth_type": "adc", "impersonation_chain": "tuner"}),
        ConnectionConfigError,
        "impersonation_chain entry 'tuner' is not a service-account email",
        True,
    ),
    Case(
        "extra that is not JSON",
        CONNECTION,
        _list_with(host="<emulator>", password=API_KEY, extra="{api_version: v1beta}"),
        ConnectionConfigError,
        "extra is not valid JSON (line 1, column 2: Expecting property name enclosed in double quotes)",
        True,
    ),
    # API responses (a scripted loopback server, or the emulator's faults)
    Case(
        "HTML page instead of JSON (200)",
        API_RESPONSE,
        _loopback_get("html"),
        UnexpectedResponseError,
        "GET /v1beta/tunedModels/m: 200: the response is not JSON (text/html; charset=utf-8, 112 bytes)",
        False,
    ),
    Case(
        "HTML error page from a proxy (502)",
        API_RESPONSE,
        _loopback_get("html-502"),
        ServerError,
        "GET /v1beta/tunedModels/m: 502: response is not a google.rpc.Status error body: "
        "'<html><head><title>502 Bad Gateway</title></head>",
        False,
    ),
    Case(
        "truncated JSON body",
        API_RESPONSE,
        _loopback_get("truncated"),
        UnexpectedResponseError,
        "GET /v1beta/tunedModels/m: 200: the response is not JSON "
        "(application/json; charset=UTF-8, 43 bytes)",
        False,
    ),
    Case(
        "body shorter than its Content-Length",
        API_RESPONSE,
        _loopback_get("short"),
        ApiConnectionError,
        "GET /v1beta/tunedModels/m: connection dropped while reading the response (after 2 attempt(s))",
        False,
    ),
    Case(
        "200 with an unexpected shape (operation)",
        API_RESPONSE,
        _loopback_wait("shape"),
        UnexpectedResponseError,
        "GET tunedModels/m/operations/op: 200: unexpected response shape: "
        "Operation.done is not a boolean: str",
        False,
    ),
    Case(
        "200 with an unexpected shape (list field)",
        API_RESPONSE,
        _loopback_list("list-shape"),
        UnexpectedResponseError,
        "GET /v1beta/tunedModels: 200: field 'tunedModels' of the response is not a list",
        False,
    ),
    Case(
        "JSON array instead of an object",
        API_RESPONSE,
        _loopback_get("array"),
        UnexpectedResponseError,
        "GET /v1beta/tunedModels/m: 200: the response is a JSON list, not an object",
        False,
    ),
    Case(
        "redirect (302)",
        API_RESPONSE,
        _loopback_get("redirect"),
        UnexpectedResponseError,
        "GET /v1beta/tunedModels/m: 302: unexpected redirect (HTTP 302); redirects are not followed",
        False,
    ),
    Case(
        "404 with a plain-text body",
        API_RESPONSE,
        _loopback_get("plain-404"),
        NotFoundError,
        "GET /v1beta/tunedModels/m: 404: response is not a google.rpc.Status error body: 'Not Found'",
        False,
    ),
    Case(
        "503 on every attempt (emulator fault)",
        API_RESPONSE,
        _emulator_fault(error_503=1.0, retry_after=0),
        ServerError,
        "GET /v1beta/tunedModels: 503 UNAVAILABLE: The service is currently unavailable.",
        False,
    ),
    Case(
        "429 on every attempt (emulator fault)",
        API_RESPONSE,
        _emulator_fault(error_429=1.0, retry_after=0),
        QuotaExhaustedError,
        "GET /v1beta/tunedModels: 429 RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).",
        False,
    ),
    Case(
        "connection dropped on every attempt (emulator fault)",
        API_RESPONSE,
        _emulator_fault(drop=1.0),
        ApiConnectionError,
        "GET /v1beta/tunedModels: connection error (after 2 attempt(s))",
        False,
    ),
]


# --- Vertex AI: the operators, a google_cloud_platform connection and Vertex-format data --------

VERTEX_PROJECT = "catalogue-project"
VERTEX_BUCKET = "catalogue-staging"
#: The refresh token the emulator's ``/token`` honours for the Vertex AI cases' connection.
VERTEX_REFRESH_TOKEN = "catalogue-refresh-token-2b7e"  # noqa: S105 (the emulator's, not a secret)
ENDPOINT = f"projects/{VERTEX_PROJECT}/locations/us-central1/endpoints/123"
TUNING_JOB = f"projects/{VERTEX_PROJECT}/locations/us-central1/tuningJobs/456"


def _user_credentials(env: CaseEnv) -> dict[str, str]:
    """OAuth user credentials (``authorized_user``) that refresh at the emulator's ``/token``."""
    return {
        "type": "authorized_user",
        "client_id": "catalogue.apps.googleusercontent.com",
        "client_secret": "catalogue-client-secret",
        "refresh_token": VERTEX_REFRESH_TOKEN,
        "token_uri": f"{env.emulator_url}/token",
    }


def _gcp_conn(env: CaseEnv, conn_id: str = "catalogue_gcp", **extra: Any) -> str:
    """Define a ``google_cloud_platform`` connection to the emulator (``None`` values leave a field
    out); by default the project and user credentials refreshed at the emulator."""
    fields: dict[str, Any] = {
        "project": VERTEX_PROJECT,
        "keyfile_dict": json.dumps(_user_credentials(env)),
        **extra,
    }
    fields = {key: value for key, value in fields.items() if value is not None}
    host = fields.pop("<host>", env.emulator_url)
    return env.conn(conn_id, conn_type="google_cloud_platform", host=host, extra=json.dumps(fields))


def _vertex_tune(env: CaseEnv, conn: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Run ``CreateVertexTuningJobOperator.execute`` against the emulator (no wait)."""
    from airflow_provider_tuning.operators.vertex_tuning import CreateVertexTuningJobOperator

    kwargs.setdefault("base_model", "gemini-2.5-flash")
    kwargs.setdefault("training_data", GOOD_EXAMPLES)
    kwargs.setdefault("staging_uri", f"gs://{VERTEX_BUCKET}/tuning")
    kwargs.setdefault("wait_for_completion", False)
    kwargs.setdefault("deferrable", False)
    return _execute(CreateVertexTuningJobOperator, gcp_conn_id=_gcp_conn(env, **(conn or {})), **kwargs)


def vertex_good_input(env: CaseEnv) -> object:
    """Good input through the same path as the Vertex AI cases (the control): the staging bucket
    is made first, so the job is created."""
    import requests

    user = _user_credentials(env)
    grant = requests.post(
        f"{env.emulator_url}/token", data={"grant_type": "refresh_token", **user}, timeout=30
    )
    grant.raise_for_status()
    requests.post(
        f"{env.emulator_url}/storage/v1/b",
        params={"project": VERTEX_PROJECT},
        json={"name": VERTEX_BUCKET},
        headers={"Authorization": f"Bearer {grant.json()['access_token']}"},
        timeout=30,
    ).raise_for_status()
    return _vertex_tune(env)


def _vertex_api_key(env: CaseEnv) -> object:
    """Tune through a ``google_cloud_platform`` connection holding an API key in its password."""
    from airflow_provider_tuning.operators.vertex_tuning import CreateVertexTuningJobOperator

    conn = env.conn(
        "catalogue_gcp",
        conn_type="google_cloud_platform",
        host=env.emulator_url,
        password=API_KEY,
        extra=json.dumps({"project": VERTEX_PROJECT}),
    )
    return _execute(
        CreateVertexTuningJobOperator,
        gcp_conn_id=conn,
        base_model="gemini-2.5-flash",
        training_data=GOOD_EXAMPLES,
        staging_uri=f"gs://{VERTEX_BUCKET}/tuning",
        wait_for_completion=False,
    )


def _vertex_args(**kwargs: Any) -> Callable[[CaseEnv], object]:
    return lambda env: _vertex_tune(env, **kwargs)


def _vertex_conn(**extra: Any) -> Callable[[CaseEnv], object]:
    """Tune through a connection whose extra has these fields (``None`` removes a default one)."""
    return lambda env: _vertex_tune(env, conn=extra)


def _vertex_file(name: str, content: str, **kwargs: Any) -> Callable[[CaseEnv], object]:
    def trigger(env: CaseEnv) -> object:
        return _vertex_tune(env, training_data=env.write(name, content), **kwargs)

    return trigger


def _vertex_operator(cls_name: str, **kwargs: Any) -> Callable[[CaseEnv], object]:
    """Run a Vertex AI management operator (``operators.vertex_manage``) against the emulator."""

    def trigger(env: CaseEnv) -> object:
        from airflow_provider_tuning.operators import vertex_manage

        return _execute(getattr(vertex_manage, cls_name), gcp_conn_id=_gcp_conn(env), **kwargs)

    return trigger


def _vertex_generate(model: str) -> Callable[[CaseEnv], object]:
    def trigger(env: CaseEnv) -> object:
        from airflow_provider_tuning.operators.generate import GenerateContentOperator

        return _execute(
            GenerateContentOperator, model=model, prompts=["What comes after 1?"], gcp_conn_id=_gcp_conn(env)
        )

    return trigger


def _turn(role: str | None, text: Any) -> dict[str, Any]:
    turn: dict[str, Any] = {"parts": [{"text": text}]}
    if role is not None:
        turn["role"] = role
    return turn


def _jsonl(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


GOOD_TURNS = {"contents": [_turn("user", "1"), _turn("model", "2")]}
GOOD_PREFERENCE = {
    "contents": [_turn("user", "1")],
    "completions": [
        {"score": 1, "completion": _turn("model", "2")},
        {"score": 0, "completion": _turn("model", "3")},
    ],
}

VERTEX_CASES: list[Case] = [
    # Vertex AI operator arguments
    Case(
        "Vertex: project id with capitals and spaces",
        OPERATOR_ARGUMENT,
        _vertex_args(project_id="My Project"),
        ConnectionConfigError,
        "project 'My Project' is not a Google Cloud project id or number",
        True,
    ),
    Case(
        "Vertex: location that is not a region",
        OPERATOR_ARGUMENT,
        _vertex_args(location="us central1"),
        ConnectionConfigError,
        "location 'us central1' is not a region such as 'us-central1'",
        True,
    ),
    Case(
        "Vertex: base model given as a resource path",
        OPERATOR_ARGUMENT,
        _vertex_args(base_model="projects/p/locations/us-central1/models/gemini"),
        InvalidInputError,
        "base_model must be a model id such as 'gemini-2.5-flash'",
        True,
    ),
    Case(
        "Vertex: base_model and pre_tuned_model both set",
        OPERATOR_ARGUMENT,
        _vertex_args(pre_tuned_model=f"projects/{VERTEX_PROJECT}/locations/us-central1/models/7"),
        InvalidInputError,
        "give exactly one of base_model or pre_tuned_model",
        True,
    ),
    Case(
        "Vertex: pre_tuned_model that is not a Model name",
        OPERATOR_ARGUMENT,
        _vertex_args(base_model=None, pre_tuned_model="tunedModels/weekly"),
        InvalidInputError,
        "pre_tuned_model must be 'projects/<project>/locations/<location>/models/<id>', got "
        "'tunedModels/weekly'",
        True,
    ),
    Case(
        "Vertex: training data gs:// URI without a bucket",
        OPERATOR_ARGUMENT,
        _vertex_args(training_data="gs:///train.jsonl"),
        InvalidInputError,
        "training_data 'gs:///train.jsonl' does not name a valid bucket",
        True,
    ),
    Case(
        "Vertex: staging_uri that is not gs://",
        OPERATOR_ARGUMENT,
        _vertex_args(staging_uri="s3://bucket/tuning"),
        InvalidInputError,
        "staging_uri must be a gs://<bucket>/<object> URI, got 's3://bucket/tuning'",
        True,
    ),
    Case(
        "Vertex: local data without a staging_uri",
        OPERATOR_ARGUMENT,
        _vertex_args(staging_uri=None),
        InvalidInputError,
        "training_data is not a gs:// URI, so it is uploaded: set staging_uri to gs://<bucket>/<prefix>",
        True,
    ),
    Case(
        "Vertex: epoch_count 0",
        OPERATOR_ARGUMENT,
        _vertex_args(epoch_count=0),
        InvalidInputError,
        "epoch_count must be a positive integer, got 0",
        True,
    ),
    Case(
        "Vertex: negative learning_rate_multiplier",
        OPERATOR_ARGUMENT,
        _vertex_args(learning_rate_multiplier=-0.5),
        InvalidInputError,
        "learning_rate_multiplier must be > 0, got -0.5",
        True,
    ),
    Case(
        "Vertex: adapter_size 3",
        OPERATOR_ARGUMENT,
        _vertex_args(adapter_size=3),
        InvalidInputError,
        "adapter_size must be one of 1, 2, 4, 8, 16, 32, got 3",
        True,
    ),
    Case(
        "Vertex: label key with capitals",
        OPERATOR_ARGUMENT,
        _vertex_args(labels={"Team": "ml"}),
        InvalidInputError,
        "label key 'Team' is invalid",
        True,
    ),
    Case(
        "Vertex: label value with a space",
        OPERATOR_ARGUMENT,
        _vertex_args(labels={"team": "ml platform"}),
        InvalidInputError,
        "label 'team' has an invalid value 'ml platform'",
        True,
    ),
    Case(
        "Vertex: label key the provider reserves",
        OPERATOR_ARGUMENT,
        _vertex_args(labels={"airflow-ti": "x"}),
        InvalidInputError,
        "label key 'airflow-ti' is invalid",
        True,
    ),
    Case(
        "Vertex: service account that is not an email",
        OPERATOR_ARGUMENT,
        _vertex_args(service_account="tuning-sa"),
        InvalidInputError,
        "service_account must be a service account email such as "
        "'tuning@my-project.iam.gserviceaccount.com', got 'tuning-sa'",
        True,
    ),
    Case(
        "Vertex: KMS key that is not a CryptoKey name",
        OPERATOR_ARGUMENT,
        _vertex_args(kms_key_name="my-key"),
        InvalidInputError,
        "kms_key_name must be 'projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>', "
        "got 'my-key'",
        True,
    ),
    Case(
        "Vertex: beta without preference tuning",
        OPERATOR_ARGUMENT,
        _vertex_args(beta=0.1),
        InvalidInputError,
        "beta is a preference-tuning setting; set method='preference'",
        True,
    ),
    Case(
        "Vertex: display name over 128 characters",
        OPERATOR_ARGUMENT,
        _vertex_args(tuned_model_display_name="m" * 129),
        InvalidInputError,
        "tuned_model_display_name must be at most 128 characters, got 129",
        True,
    ),
    Case(
        "Vertex: get with a Gemini API name",
        OPERATOR_ARGUMENT,
        _vertex_operator("GetVertexTuningJobOperator", tuning_job_name="tunedModels/weekly"),
        InvalidInputError,
        "tuning_job_name must be 'projects/<project>/locations/<location>/tuningJobs/<id>', got "
        "'tunedModels/weekly'",
        True,
    ),
    Case(
        "Vertex: cancel with a job id only",
        OPERATOR_ARGUMENT,
        _vertex_operator("CancelVertexTuningJobOperator", tuning_job_name="456"),
        InvalidInputError,
        "tuning_job_name must be 'projects/<project>/locations/<location>/tuningJobs/<id>', got '456'",
        True,
    ),
    Case(
        "Vertex: delete with an endpoint in the model's place",
        OPERATOR_ARGUMENT,
        _vertex_operator("DeleteVertexTunedModelOperator", tuned_model=ENDPOINT),
        InvalidInputError,
        "tuned_model must be 'projects/<project>/locations/<location>/models/<id>', got "
        "'projects/catalogue-project/locations/us-central1/endpoints/123'",
        True,
    ),
    Case(
        "Vertex: delete with nothing to delete",
        OPERATOR_ARGUMENT,
        _vertex_operator("DeleteVertexTunedModelOperator"),
        InvalidInputError,
        "give tuning_job_name, or endpoint and/or tuned_model",
        True,
    ),
    Case(
        "Vertex: GenerateContent on an endpoint name with a path in its id",
        OPERATOR_ARGUMENT,
        _vertex_generate(f"{ENDPOINT}/../456"),
        InvalidInputError,
        "model must be 'projects/<project>/locations/<location>/endpoints/<id>', got "
        "'projects/catalogue-project/locations/us-central1/endpoints/123/../456'",
        True,
    ),
    Case(
        "Vertex: GenerateContent on a tuning job instead of its endpoint",
        OPERATOR_ARGUMENT,
        _vertex_generate(TUNING_JOB),
        InvalidInputError,
        "model must be 'projects/<project>/locations/<location>/endpoints/<id>', got "
        "'projects/catalogue-project/locations/us-central1/tuningJobs/456'",
        True,
    ),
    # google_cloud_platform connection
    Case(
        "Vertex: key_path to a missing file",
        CONNECTION,
        lambda env: _vertex_tune(env, conn={"keyfile_dict": None, "key_path": str(env.data_dir / "sa.json")}),
        ConnectionConfigError,
        "key_path 'sa.json' cannot be read: No such file or directory",
        True,
    ),
    Case(
        "Vertex: keyfile_dict that is not JSON",
        CONNECTION,
        _vertex_conn(keyfile_dict='{"type": "service_account", "private_key": "' + FAKE_KEY_BODY),
        ConnectionConfigError,
        "keyfile_dict is not valid JSON (line 1, column 44",
        True,
        secrets=(FAKE_KEY_BODY,),
    ),
    Case(
        "Vertex: service-account keyfile_dict missing fields",
        CONNECTION,
        _vertex_conn(keyfile_dict=json.dumps(_SA_MISSING_FIELDS)),
        ConnectionConfigError,
        "keyfile_dict (service_account) is missing required field(s): client_email, token_uri",
        True,
        secrets=(FAKE_KEY_BODY,),
    ),
    Case(
        "Vertex: key_path and keyfile_dict both set",
        CONNECTION,
        lambda env: _vertex_tune(
            env, conn={"key_path": env.write("user.json", json.dumps(_user_credentials(env)))}
        ),
        ConnectionConfigError,
        "conflicting credentials",
        True,
    ),
    Case(
        "Vertex: no project in the connection nor the operator",
        CONNECTION,
        _vertex_conn(project=None),
        ConnectionConfigError,
        "no Google Cloud project: set extra 'project' on the connection or pass project_id",
        True,
    ),
    Case(
        "Vertex: API key in the password instead of OAuth credentials",
        CONNECTION,
        _vertex_api_key,
        ConnectionConfigError,
        "Vertex AI takes no API key: remove the password and use a service account",
        True,
        secrets=(API_KEY,),
    ),
    Case(
        "Vertex: http:// host that is not loopback",
        CONNECTION,
        _vertex_conn(**{"<host>": "http://vertex.example.com"}),
        ConnectionConfigError,
        "base URL uses plain http:// for 'vertex.example.com', which is not a loopback host",
        True,
    ),
    Case(
        "Vertex: credential_config_file that is not JSON",
        CONNECTION,
        _vertex_conn(keyfile_dict=None, credential_config_file="{not json"),
        ConnectionConfigError,
        "credential_config_file is not valid JSON (line 1, column 2",
        True,
    ),
    # Vertex AI data (supervised and preference JSONL), file and line named
    Case(
        "Vertex data: role 'assistant'",
        TRAINING_DATA,
        _vertex_file(
            "turns.jsonl", _jsonl(GOOD_TURNS, {"contents": [_turn("user", "1"), _turn("assistant", "2")]})
        ),
        TrainingDataError,
        "turns.jsonl, line 2, field 'contents': contents[1].role must be 'user' or 'model', got 'assistant'",
        True,
        line=2,
    ),
    Case(
        "Vertex data: turn without parts",
        TRAINING_DATA,
        _vertex_file("turns.jsonl", _jsonl({"contents": [{"role": "user"}, _turn("model", "2")]})),
        TrainingDataError,
        "turns.jsonl, line 1, field 'contents': contents[0].parts must be a non-empty list",
        True,
        line=1,
    ),
    Case(
        "Vertex data: empty text",
        TRAINING_DATA,
        _vertex_file(
            "turns.jsonl",
            _jsonl(GOOD_TURNS, GOOD_TURNS, {"contents": [_turn("user", ""), _turn("model", "2")]}),
        ),
        TrainingDataError,
        "turns.jsonl, line 3, field 'contents': contents[0].parts[0].text must be a non-empty string",
        True,
        line=3,
    ),
    Case(
        "Vertex data: malformed JSON on line 3",
        TRAINING_DATA,
        _vertex_file("turns.jsonl", _jsonl(GOOD_TURNS, GOOD_TURNS, '{"contents": [}')),
        TrainingDataError,
        "turns.jsonl, line 3: malformed JSON",
        True,
        line=3,
    ),
    Case(
        "Vertex data: multi-turn example ending with the user",
        TRAINING_DATA,
        _vertex_file(
            "turns.jsonl", _jsonl({"contents": [_turn("user", "1"), _turn("model", "2"), _turn("user", "3")]})
        ),
        TrainingDataError,
        "turns.jsonl, line 1, field 'contents': the last turn must be the model's answer (role 'model')",
        True,
        line=1,
    ),
    Case(
        "Vertex data: a turn with two kinds of part",
        TRAINING_DATA,
        _vertex_file(
            "turns.jsonl",
            _jsonl(
                {
                    "contents": [
                        {"role": "user", "parts": [{"text": "1", "fileData": {}}]},
                        _turn("model", "2"),
                    ]
                }
            ),
        ),
        TrainingDataError,
        "turns.jsonl, line 1, field 'contents': contents[0].parts[0] must have exactly one of text",
        True,
        line=1,
    ),
    Case(
        "Vertex data: CSV file of turns",
        TRAINING_DATA,
        _vertex_file("turns.csv", "contents\nhello\n", method="preference"),
        TrainingDataError,
        "turns.csv: a CSV file cannot hold Vertex AI turns; use JSONL, one "
        "{'contents': [...], 'completions': [...]} per line",
        True,
    ),
    Case(
        "Vertex preference data: a pair missing its dispreferred completion",
        TRAINING_DATA,
        _vertex_file(
            "pairs.jsonl",
            _jsonl(GOOD_PREFERENCE, {**GOOD_PREFERENCE, "completions": GOOD_PREFERENCE["completions"][:1]}),
            method="preference",
        ),
        TrainingDataError,
        "pairs.jsonl, line 2, field 'completions': completions must list exactly two",
        True,
        line=2,
    ),
    Case(
        "Vertex preference data: two preferred completions",
        TRAINING_DATA,
        _vertex_file(
            "pairs.jsonl",
            _jsonl({**GOOD_PREFERENCE, "completions": [GOOD_PREFERENCE["completions"][0]] * 2}),
            method="preference",
        ),
        TrainingDataError,
        "pairs.jsonl, line 1, field 'completions': completions must have one score 1 (preferred) and one "
        "score 0",
        True,
        line=1,
    ),
    Case(
        "Vertex preference data: prompt ending with the model's turn",
        TRAINING_DATA,
        _vertex_file(
            "pairs.jsonl",
            _jsonl({**GOOD_PREFERENCE, "contents": [_turn("user", "1"), _turn("model", "2")]}),
            method="preference",
        ),
        TrainingDataError,
        "pairs.jsonl, line 1, field 'contents': a preference example's contents must end with a user turn",
        True,
        line=1,
    ),
    Case(
        "Vertex preference data: completion with an empty text",
        TRAINING_DATA,
        _vertex_file(
            "pairs.jsonl",
            _jsonl(
                GOOD_PREFERENCE,
                GOOD_PREFERENCE,
                {
                    **GOOD_PREFERENCE,
                    "completions": [
                        GOOD_PREFERENCE["completions"][0],
                        {"score": 0, "completion": _turn("model", " ")},
                    ],
                },
            ),
            method="preference",
        ),
        TrainingDataError,
        "pairs.jsonl, line 3, field 'completions': completions[1].completion.parts[0].text must be a "
        "non-empty string",
        True,
        line=3,
    ),
    Case(
        "Vertex preference data: input/output records",
        TRAINING_DATA,
        _vertex_file("pairs.jsonl", _jsonl({"text_input": "1", "output": "2"}), method="preference"),
        TrainingDataError,
        "pairs.jsonl, line 1, field 'contents': missing (the record has fields: 'text_input', 'output'); "
        "a preference example needs contents and completions",
        True,
        line=1,
    ),
    Case(
        "Vertex data: system_instruction with Vertex records",
        OPERATOR_ARGUMENT,
        _vertex_file("turns.jsonl", _jsonl(GOOD_TURNS), system_instruction="Answer with a number."),
        InvalidInputError,
        "system_instruction is for input/output examples; Vertex records carry their own",
        True,
    ),
]
CASES += VERTEX_CASES


# --- the scripted loopback server ----------------------------------------------------------------

_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
    b"<body><form action='/login'>Sign in</form></body></html>"
)
_HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def _reply(prefix: str) -> tuple[int, dict[str, str], bytes, int | None]:
    """Status, headers, body and (when it differs) the declared length, per behaviour prefix."""
    html = {"Content-Type": "text/html; charset=utf-8"}
    json_type = {"Content-Type": "application/json; charset=UTF-8"}
    if prefix == "html":
        return 200, html, _HTML_PAGE, None
    if prefix == "html-502":
        return 502, html, _HTML_502, None
    if prefix == "truncated":
        return 200, json_type, b'{"name": "tunedModels/m", "state": "ACTIVE"', None
    if prefix == "short":
        return 200, json_type, b'{"name": "tunedModels/m", "sta', 200
    if prefix == "shape":
        return 200, json_type, b'{"name": "tunedModels/m/operations/op", "done": "yes"}', None
    if prefix == "list-shape":
        return 200, json_type, b'{"tunedModels": {"name": "tunedModels/m"}}', None
    if prefix == "array":
        return 200, json_type, b"[]", None
    if prefix == "redirect":
        return 302, {"Location": "https://accounts.example.com/login"}, b"", None
    if prefix == "plain-404":
        return 404, {"Content-Type": "text/plain"}, b"Not Found", None
    return 500, json_type, b'{"error": {"code": 500, "message": "no such behaviour"}}', None


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 (free port) whose answer depends on the first path segment
    (``/html/...``, ``/truncated/...``; see :func:`_reply`). It counts the requests it received."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append(f"{self.command} {self.path}")
                status, headers, body, declared = _reply(self.path.lstrip("/").split("/", 1)[0])
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(declared if declared is not None else len(body)))
                if declared is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


# --- running -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one case did.

    :param case: the case.
    :param error: the exception raised (the cause, when the operator wrapped it), or ``None``.
    :param wrapped: the operator raised ``AirflowFailException`` (no retry) with ``error`` as cause.
    :param result: the return value when nothing was raised.
    :param emulator_requests: API requests that reached the emulator (``METHOD /path``).
    :param loopback_requests: requests that reached the scripted loopback server.
    """

    case: Case
    error: BaseException | None
    wrapped: bool
    result: object
    emulator_requests: list[str]
    loopback_requests: list[str]

    @property
    def message(self) -> str:
        """The exception's message, or the result's text for an accepted input."""
        return str(self.error) if self.error is not None else str(self.result)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse every outgoing connection to a non-loopback host while the cases run."""
    import urllib3.util.connection as u3conn

    real = u3conn.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        host = address[0]
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"bad-input catalogue: refusing to connect to {host}")
        return real(address, *args, **kwargs)

    u3conn.create_connection = guarded  # type: ignore[assignment]
    try:
        yield
    finally:
        u3conn.create_connection = real  # type: ignore[assignment]


class Catalogue:
    """Runs cases against one emulator and one scripted loopback server (a context manager)."""

    def __init__(self) -> None:
        from tuning_api_emulator import Emulator

        self.emulator = Emulator(step_seconds=0.01, api_keys=[API_KEY], refresh_tokens=[VERTEX_REFRESH_TOKEN])
        self.server = ScriptedServer()
        self._tmp = tempfile.TemporaryDirectory(prefix="bad-input-")
        self.data_dir = Path(self._tmp.name)

    def __enter__(self) -> Catalogue:
        self.emulator.start()
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.emulator.stop()
        self._tmp.cleanup()

    def run(self, case: Case) -> Outcome:
        """Run one case from a clean emulator (no models, no faults, an empty request log)."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        self.emulator.reset()
        self.server.requests.clear()
        case_dir = Path(tempfile.mkdtemp(dir=self.data_dir))
        env = CaseEnv(self.emulator.url, self.server.url, case_dir)
        error: BaseException | None = None
        result: object = None
        wrapped = False
        try:
            with loopback_only():
                result = case.trigger(env)
        except AirflowFailException as err:
            cause = err.__cause__
            wrapped = cause is not None
            error = cause if cause is not None else err
        except Exception as err:
            error = err
        finally:
            env.restore()
        requests = [f"{entry['method']} {entry['path']}" for entry in self.emulator.request_log]
        if error is not None:
            error = _relative(error, case_dir)
        return Outcome(case, error, wrapped, result, requests, list(self.server.requests))

    def run_all(self, cases: list[Case] | None = None) -> list[Outcome]:
        """Run every case (default :data:`CASES`) in order."""
        return [self.run(case) for case in (CASES if cases is None else cases)]


def _relative(error: BaseException, folder: Path) -> BaseException:
    """Keep ``error`` but make its text name files relative to the case's folder, for the table."""
    prefix = f"{folder}{os.sep}"
    if prefix not in str(error):
        return error
    error.args = tuple(a.replace(prefix, "") if isinstance(a, str) else a for a in error.args)
    if isinstance(error, TrainingDataError):
        error.source = error.source.replace(prefix, "")
    return error


# --- the table -----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _code(text: str) -> str:
    """Each line as a code span (a line break inside a code span would show as ``<br>``)."""
    spans = []
    for line in text.splitlines() or [""]:
        line = line.replace("|", "\\|")
        spans.append(f"`` {line} ``" if "`" in line else f"`{line}`")
    return "<br>".join(spans)


def render_table(outcomes: list[Outcome]) -> str:
    """Return the markdown table of the outcomes (the one in ``docs/bad-input.md``)."""
    lines = [
        "| # | Category | Bad input | Raised | Message | User's mistake | Requests sent |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, outcome in enumerate(outcomes, start=1):
        case = outcome.case
        if outcome.error is None:
            raised = "accepted"
        else:
            raised = f"`{type(outcome.error).__name__}`"
            if outcome.wrapped:
                raised += " (as `AirflowFailException`)"
        sent = len(outcome.emulator_requests) + len(outcome.loopback_requests)
        lines.append(
            f"| {number} | {case.category} | {_cell(case.name)} | {raised} | {_code(outcome.message)} | "
            f"{'yes' if case.user_mistake else 'no'} | {sent} |"
        )
    return "\n".join(lines) + "\n"


def splice_table(document: str, table: str) -> str:
    """Return ``document`` with the text between the table markers replaced by ``table``."""
    start = document.index(TABLE_START) + len(TABLE_START)
    end = document.index(TABLE_END)
    return f"{document[:start]}\n{table}{document[end:]}"


def table_in(document: str) -> str:
    """Return the table between the markers of ``document``."""
    start = document.index(TABLE_START) + len(TABLE_START)
    return document[start : document.index(TABLE_END)].lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    """Run every case; print the table, or write/check it in ``docs/bad-input.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"refresh the table in {DOC.relative_to(ROOT)}")
    group.add_argument("--check", action="store_true", help="exit 1 if the table in the doc is stale")
    parser.add_argument("--verbose", action="store_true", help="show the log lines the cases produce")
    args = parser.parse_args(argv)
    if not args.verbose:
        logging.disable(logging.CRITICAL)  # the cases fail on purpose: their log lines are noise here
    with Catalogue() as catalogue:
        outcomes = catalogue.run_all()
    table = render_table(outcomes)
    wrong = [
        o.case.name
        for o in outcomes
        if (type(o.error) if o.error is not None else None) is not o.case.expected
        or o.case.fragment not in o.message
    ]
    for name in wrong:
        print(f"case {name!r} did not behave as catalogued", file=sys.stderr)
    if args.write:
        DOC.write_text(splice_table(DOC.read_text(encoding="utf-8"), table), encoding="utf-8")
        print(f"wrote {len(outcomes)} cases to {DOC.relative_to(ROOT)}")
    elif args.check:
        if table_in(DOC.read_text(encoding="utf-8")) != table:
            print(f"{DOC.relative_to(ROOT)}: the table is stale; run {Path(__file__).name} --write")
            return 1
        print(f"{DOC.relative_to(ROOT)}: the table matches all {len(outcomes)} cases")
    else:
        sys.stdout.write(table)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
