"""Training data for Vertex AI tuning: validated, then written as the JSONL the service reads.

Two kinds of records (``shared/api/vertex/CONTRACT.md`` section 10):

* **supervised**: ``{"systemInstruction"?, "contents": [{"role": "user"|"model", "parts": [...]}, ...]}``.
  Input/output examples (whatever :func:`~airflow_provider_tuning.datasets.load_examples` reads:
  inline, XCom, JSONL/JSON/CSV files and URIs) become one user turn and one model turn.
* **preference**: ``{"systemInstruction"?, "contents": [... ending with a user turn],
  "completions": [{"score": 1, "completion": {"role": "model", "parts": [...]}},
  {"score": 0, "completion": {...}}]}``: exactly one preferred and one dispreferred completion.

Every problem is reported with the source and line (or item) before any upload or API call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_tuning.datasets import (
    DEFAULT_MAX_FILE_BYTES,
    ExampleLimits,
    MalformedRecord,
    Problems,
    load_examples,
    open_records,
)
from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError
from airflow_provider_tuning.validation import check_text

KINDS = ("supervised", "preference")
_ROLES = ("user", "model")
_PART_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")


def _camel(record: Mapping[str, Any], camel: str, snake: str) -> Any:
    """A field in either spelling proto3 JSON parsing accepts."""
    return record[camel] if camel in record else record.get(snake)


def _text_problem(value: Any, where: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{where} must be a non-empty string"
    try:
        check_text(where, value)
    except InvalidInputError as err:
        return str(err)
    return None


def _part_problem(part: Any, where: str) -> str | None:
    if not isinstance(part, Mapping):
        return f"{where} must be an object"
    kinds = [key for key in part if key in _PART_KINDS or key in ("inline_data", "file_data")]
    if len(kinds) != 1:
        return f"{where} must have exactly one of text, inlineData, fileData, functionCall, functionResponse"
    if "text" in part:
        return _text_problem(part["text"], f"{where}.text")
    file_data = _camel(part, "fileData", "file_data")
    if isinstance(file_data, Mapping):
        uri = _camel(file_data, "fileUri", "file_uri")
        if not (isinstance(uri, str) and uri.startswith("gs://")):
            return f"{where}.fileData.fileUri must be a gs:// URI"
    return None


def _content_problem(content: Any, where: str, *, role_required: bool) -> str | None:
    if not isinstance(content, Mapping):
        return f"{where} must be an object with role and parts"
    role = content.get("role")
    if role is None and role_required:
        return f"{where}.role is required in a multi-turn example (user or model)"
    if role is not None and role not in _ROLES:
        return f"{where}.role must be 'user' or 'model', got {role!r}"
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        return f"{where}.parts must be a non-empty list"
    for index, part in enumerate(parts):
        problem = _part_problem(part, f"{where}.parts[{index}]")
        if problem:
            return problem
    return None


def record_problem(record: Any, kind: str) -> tuple[str | None, str] | None:
    """The first problem of one record, as ``(field, message)``, or ``None`` when it is valid.

    :param record: a parsed JSONL line or list item.
    :param kind: ``supervised`` or ``preference``.
    """
    if not isinstance(record, Mapping):
        return None, f"expected an object with 'contents', got {type(record).__name__}"
    system = _camel(record, "systemInstruction", "system_instruction")
    if system is not None:
        problem = _content_problem(system, "systemInstruction", role_required=False)
        if problem:
            return "systemInstruction", problem
    if "contents" not in record:
        fields = ", ".join(repr(key) for key in list(record)[:10]) or "none"
        needed = "contents and completions" if kind == "preference" else "contents"
        return "contents", f"missing (the record has fields: {fields}); a {kind} example needs {needed}"
    contents = record.get("contents")
    if not isinstance(contents, list) or not contents:
        return "contents", "contents must be a non-empty list of turns"
    multi_turn = len(contents) > 1
    for index, content in enumerate(contents):
        problem = _content_problem(content, f"contents[{index}]", role_required=multi_turn)
        if problem:
            return "contents", problem
    last_role = contents[-1].get("role")
    if kind == "supervised":
        if multi_turn and last_role != "model":
            return "contents", "the last turn must be the model's answer (role 'model')"
        return None
    if last_role == "model":
        return "contents", "a preference example's contents must end with a user turn"
    completions = record.get("completions")
    if not isinstance(completions, list) or len(completions) != 2:
        return "completions", "completions must list exactly two: one with score 1 and one with score 0"
    scores = [c.get("score") for c in completions if isinstance(c, Mapping)]
    if sorted(scores, key=repr) != [0, 1] or any(isinstance(score, bool) for score in scores):
        return "completions", "completions must have one score 1 (preferred) and one score 0 (dispreferred)"
    for index, completion in enumerate(completions):
        problem = _content_problem(
            completion.get("completion"), f"completions[{index}].completion", role_required=False
        )
        if problem:
            return "completions", problem
        if completion["completion"].get("role", "model") != "model":
            return "completions", f"completions[{index}].completion.role must be 'model'"
    return None


def load_vertex_records(
    source: object, *, kind: str = "supervised", max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> list[dict[str, Any]]:
    """Load records already in Vertex AI's format (inline, JSON string, JSONL/JSON file or URI).

    :param source: the records' source.
    :param kind: ``supervised`` or ``preference``.
    :param max_file_bytes: the largest file read.
    :raises TrainingDataError: a record is invalid (every problem, with its line, up to a limit).
    """
    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    records = open_records(source, container_key="examples", max_file_bytes=max_file_bytes, what="examples")
    if records.source.lower().endswith((".csv", ".csv.gz")):
        shape = "{'contents': [...], 'completions': [...]}" if kind == "preference" else "{'contents': [...]}"
        raise TrainingDataError(
            f"a CSV file cannot hold Vertex AI turns; use JSONL, one {shape} per line"
            + ("" if kind == "preference" else " (a CSV of input/output columns is read as examples)"),
            source=records.source,
        )
    problems = Problems(records.source, records.unit)
    loaded: list[dict[str, Any]] = []
    for pos, record in records.items:
        if isinstance(record, MalformedRecord):
            problems.add(pos, record.field, record.message)
            continue
        found = record_problem(record, kind)
        if found is not None:
            problems.add(pos, found[0], found[1])
            continue
        loaded.append(dict(record))
    problems.raise_if_any()
    if not loaded:
        raise TrainingDataError(f"no examples found ({records.empty_reason})", source=records.source)
    return loaded


def examples_to_records(
    examples: Sequence[Mapping[str, str]], system_instruction: str | None = None
) -> list[dict[str, Any]]:
    """Turn input/output examples into supervised records: one user turn, one model turn.

    :param examples: ``[{"textInput": ..., "output": ...}]`` as :func:`load_examples` returns them.
    :param system_instruction: a system instruction added to every record, if any.
    """
    system = None
    if system_instruction is not None:
        problem = _text_problem(system_instruction, "system_instruction")
        if problem:
            raise InvalidInputError(problem)
        system = {"parts": [{"text": system_instruction}]}
    records = []
    for example in examples:
        record: dict[str, Any] = {
            "contents": [
                {"role": "user", "parts": [{"text": example["textInput"]}]},
                {"role": "model", "parts": [{"text": example["output"]}]},
            ]
        }
        if system is not None:
            record["systemInstruction"] = system
        records.append(record)
    return records


def load_training_records(
    source: object,
    *,
    kind: str = "supervised",
    vertex_format: bool | None = None,
    input_field: str = "text_input",
    output_field: str = "output",
    system_instruction: str | None = None,
    limits: ExampleLimits | None = None,
) -> list[dict[str, Any]]:
    """Load and validate training data for a Vertex AI tuning job, from any source.

    :param source: inline list, JSON string, path, URI, ObjectStoragePath or an XCom value.
    :param kind: ``supervised`` or ``preference`` (preference data is always in Vertex's format).
    :param vertex_format: whether the records are Vertex's own (``contents``...); ``None``: decided
        by the first record (an object with ``contents``).
    :param input_field: the input field of input/output examples.
    :param output_field: the output field of input/output examples.
    :param system_instruction: added to input/output examples (Vertex records carry their own).
    :param limits: size limits of input/output examples (and the largest file read).
    :raises TrainingDataError: the data is invalid, naming source, line and field.
    """
    limits = limits or ExampleLimits()
    if vertex_format is None:
        vertex_format = kind == "preference" or _looks_like_vertex(source)
    if vertex_format:
        if system_instruction is not None:
            raise InvalidInputError(
                "system_instruction is for input/output examples; Vertex records carry their own"
            )
        return load_vertex_records(source, kind=kind, max_file_bytes=limits.max_file_bytes)
    if kind != "supervised":
        raise InvalidInputError(
            "preference tuning needs records in Vertex AI's format (contents and completions)"
        )
    examples = load_examples(source, input_field=input_field, output_field=output_field, limits=limits)
    return examples_to_records(examples, system_instruction)


def _looks_like_vertex(source: object) -> bool:
    """Whether inline data's first record has ``contents`` (a file's format is its records' shape)."""
    first: Any = None
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes, bytearray)) and source:
        first = source[0]
    elif isinstance(source, str) and source.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(source)
        except (ValueError, RecursionError):
            return False
        items = data.get("examples") if isinstance(data, Mapping) else data
        first = items[0] if isinstance(items, list) and items else None
    elif isinstance(source, str) or hasattr(source, "read_text"):
        return _file_looks_like_vertex(source)
    return isinstance(first, Mapping) and "contents" in first


def _file_looks_like_vertex(source: object) -> bool:
    """Peek at the first record of a file (a JSONL line or a JSON list's first item)."""
    try:
        records = open_records(source, container_key="examples", what="examples")
        for _, record in records.items:
            return isinstance(record, Mapping) and "contents" in record
    except TrainingDataError:
        return False  # the example loader reports the problem with its own words
    return False


def to_jsonl(records: Sequence[Mapping[str, Any]]) -> bytes:
    """The JSONL bytes the tuning service reads: one record a line, UTF-8, compact.

    :param records: validated records.
    """
    lines = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records)
    return ("\n".join(lines) + "\n").encode("utf-8")
