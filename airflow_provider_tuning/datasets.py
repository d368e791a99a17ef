"""Load and validate tuning examples and inference prompts, before any API call.

Sources (both :func:`load_examples` and :func:`load_prompts`):

* inline data: a list (or tuple, or any non-string sequence such as an XCom value) of objects,
  of ``[input, output]`` pairs (examples) or of strings (prompts); an object holding the list
  under ``"examples"`` (or ``"prompts"``) is accepted too;
* a JSON string of such a list or object (a Python-literal string, which is what Jinja renders
  from an ``xcom_pull`` without ``render_template_as_native_obj``, is accepted as well);
* a path or URI string, :class:`os.PathLike` or :class:`airflow.sdk.ObjectStoragePath` to a
  ``.jsonl`` (or ``.ndjson``), ``.json`` or ``.csv`` file, optionally gzip-compressed (``.gz``),
  read through ``ObjectStoragePath`` so ``file://``, ``s3://``, ``gs://`` ... work where their
  filesystems are installed.

Every problem raises :class:`~airflow_provider_tuning.exceptions.TrainingDataError` naming the
source, the position (``line`` attribute: the 1-based line for JSONL and CSV, the header being
line 1; the 1-based item number for JSON lists and inline data, which the message calls "item")
and the field. Problems with single records are collected: one error reports up to
:data:`MAX_REPORTED_PROBLEMS` of them (and how many there were in all), so a file can be fixed
in one pass; its ``line``/``field`` attributes are those of the first problem. Problems with the
whole source (missing file, unsupported type, too large, no examples, ...) raise at once.

This module imports only the standard library at module level: DAG files import it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_tuning import validation
from airflow_provider_tuning.constants import SUPPORTED_EXTENSIONS
from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_REPORTED_PROBLEMS",
    "SUPPORTED_EXTENSIONS",
    "ExampleLimits",
    "PromptItem",
    "build_training_data",
    "load_examples",
    "load_prompts",
]

#: How many record-level problems one :class:`TrainingDataError` lists.
MAX_REPORTED_PROBLEMS = 10
#: Default upper bound on the size of a file (and of its decompressed content).
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
#: File extensions understood, each optionally followed by ``.gz``.
# Names the API itself uses for the input of a TuningExample (JSON name and proto name); when the
# configured ``input_field`` is one of them, the other one is accepted as well.
_INPUT_ALIASES = ("text_input", "textInput")


@dataclass(frozen=True)
class ExampleLimits:
    """Limits applied to tuning examples.

    The character limits are the figures Google's tuning guide gives for tuned Gemini 1.5 Flash
    (docs/api-contract.md section 7: secondary sources, not part of the API definition).

    :param max_input_chars: longest allowed input, in characters (code points).
    :param max_output_chars: longest allowed output, in characters.
    :param max_examples: most examples allowed, or ``None`` for no limit.
    :param max_file_bytes: largest file read (checked before reading, and on decompressed data).
    """

    max_input_chars: int = 40_000
    max_output_chars: int = 5_000
    max_examples: int | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        for name in ("max_input_chars", "max_output_chars", "max_examples", "max_file_bytes"):
            value = getattr(self, name)
            if value is not None or name != "max_examples":
                object.__setattr__(self, name, validation.positive_int(f"ExampleLimits.{name}", value))


@dataclass(frozen=True)
class PromptItem:
    """One prompt for inference, with the output expected from it (for evaluation), if any.

    :param prompt: the prompt text.
    :param expected: the expected output, or ``None``.
    """

    prompt: str
    expected: str | None = None


# --- public API ------------------------------------------------------------------------------------


def load_examples(
    source: object,
    *,
    input_field: str = "text_input",
    output_field: str = "output",
    limits: ExampleLimits = ExampleLimits(),  # frozen, so safe as a default
    encoding: str = "utf-8",
) -> list[dict[str, str]]:
    """Load tuning examples and validate them.

    Each record is an object with ``input_field`` and ``output_field`` (other fields are ignored)
    or an ``[input, output]`` pair. When ``input_field`` is ``"text_input"`` (the default) or
    ``"textInput"``, the other spelling is accepted too, so the API's own example objects load.

    :param source: inline list, JSON string, path, URI or ObjectStoragePath (see the module doc).
    :param input_field: name of the field (or CSV column) holding the input text.
    :param output_field: name of the field (or CSV column) holding the expected output.
    :param limits: size limits.
    :param encoding: text encoding of files (a UTF-8 byte-order mark is always accepted).
    :return: ``[{"textInput": ..., "output": ...}, ...]``, ready for
        ``tuningTask.trainingData.examples.examples``.
    :raises TrainingDataError: when the data is missing, unreadable or invalid.
    """
    _check_field_name("input_field", input_field)
    _check_field_name("output_field", output_field)
    if input_field == output_field:
        raise InvalidInputError(f"input_field and output_field are both {input_field!r}")
    _check_encoding(encoding)
    in_keys = _INPUT_ALIASES if input_field in _INPUT_ALIASES else (input_field,)
    in_spec = _Field(input_field, in_keys, "input", limits.max_input_chars, "max_input_chars")
    out_spec = _Field(output_field, (output_field,), "output", limits.max_output_chars, "max_output_chars")

    records = open_records(
        source,
        container_key="examples",
        fields=(in_spec, out_spec),
        max_file_bytes=limits.max_file_bytes,
        encoding=encoding,
        what="examples",
    )
    problems = Problems(records.source, records.unit)
    examples: list[dict[str, str]] = []
    for seen, (pos, record) in enumerate(records.items, start=1):
        if limits.max_examples is not None and seen > limits.max_examples:
            _fail(
                records.source,
                f"more than max_examples={limits.max_examples:,} examples; this is the first one over",
                line=pos,
                unit=records.unit,
            )
        if isinstance(record, MalformedRecord):
            problems.add(pos, record.field, record.message)
            continue
        if isinstance(record, Mapping):
            text_input = _text(record, in_spec, pos, problems)
            output = _text(record, out_spec, pos, problems)
        elif isinstance(record, (list, tuple)):
            if len(record) != 2:
                problems.add(pos, None, f"a pair must have 2 items [input, output], got {len(record)}")
                continue
            pair = {"pair[0]": record[0], "pair[1]": record[1]}
            text_input = _text(pair, in_spec.for_key("pair[0]"), pos, problems)
            output = _text(pair, out_spec.for_key("pair[1]"), pos, problems)
        else:
            problems.add(
                pos,
                None,
                f"expected an object with fields {input_field!r} and {output_field!r} "
                f"or an [input, output] pair, got {_type_name(record)}",
            )
            continue
        if text_input is not None and output is not None:
            examples.append({"textInput": text_input, "output": output})
    problems.raise_if_any()
    if not examples:
        _fail(records.source, f"no examples found ({records.empty_reason})")
    return examples


def load_prompts(
    source: object,
    *,
    prompt_field: str = "prompt",
    expected_field: str | None = None,
    max_chars: int = 40_000,
    encoding: str = "utf-8",
) -> list[PromptItem]:
    """Load prompts for inference (and their expected outputs) and validate them.

    Each record is a string (only when ``expected_field`` is ``None``), an object with
    ``prompt_field`` (and ``expected_field`` when given; other fields are ignored) or a
    :class:`PromptItem`. A single prompt must be passed as a one-item list: a bare string is
    read as a JSON text, a path or a URI.

    :param source: inline list, JSON string, path, URI or ObjectStoragePath (see the module doc).
    :param prompt_field: name of the field (or CSV column) holding the prompt.
    :param expected_field: name of the field (or CSV column) holding the expected output, if any.
    :param max_chars: longest allowed prompt, in characters.
    :param encoding: text encoding of files (a UTF-8 byte-order mark is always accepted).
    :return: the prompts, in source order.
    :raises TrainingDataError: when the data is missing, unreadable or invalid.
    """
    _check_field_name("prompt_field", prompt_field)
    if expected_field is not None:
        _check_field_name("expected_field", expected_field)
        if expected_field == prompt_field:
            raise InvalidInputError(f"prompt_field and expected_field are both {prompt_field!r}")
    max_chars = validation.positive_int("max_chars", max_chars)
    _check_encoding(encoding)
    prompt_spec = _Field(prompt_field, (prompt_field,), "prompt", max_chars, "max_chars")
    fields = [prompt_spec]
    expected_spec = None
    if expected_field is not None:
        expected_spec = _Field(expected_field, (expected_field,), "expected output", None, None)
        fields.append(expected_spec)

    records = open_records(
        source,
        container_key="prompts",
        fields=tuple(fields),
        max_file_bytes=DEFAULT_MAX_FILE_BYTES,
        encoding=encoding,
        what="prompts",
    )
    problems = Problems(records.source, records.unit)
    prompts: list[PromptItem] = []
    for pos, raw in records.items:
        record = raw
        if isinstance(record, MalformedRecord):
            problems.add(pos, record.field, record.message)
            continue
        if isinstance(record, PromptItem):
            item_expected = expected_spec or _Field("expected", ("expected",), "expected output", None, None)
            prompt = _text({prompt_field: record.prompt}, prompt_spec, pos, problems)
            need_expected = expected_spec is not None or record.expected is not None
            expected = None
            if need_expected:
                expected = _text({item_expected.name: record.expected}, item_expected, pos, problems)
            if prompt is not None and (not need_expected or expected is not None):
                prompts.append(PromptItem(prompt, expected))
            continue
        if isinstance(record, str):
            if expected_spec is not None:
                problems.add(
                    pos,
                    None,
                    f"a plain string has no expected output; with expected_field={expected_field!r} "
                    f"each record must be an object with fields {prompt_field!r} and {expected_field!r}",
                )
                continue
            record = {prompt_field: record}
        if not isinstance(record, Mapping):
            problems.add(
                pos,
                None,
                f"expected a string or an object with field {prompt_field!r}, got {_type_name(record)}",
            )
            continue
        prompt = _text(record, prompt_spec, pos, problems)
        expected = _text(record, expected_spec, pos, problems) if expected_spec is not None else None
        if prompt is not None and (expected_spec is None or expected is not None):
            prompts.append(PromptItem(prompt, expected))
    problems.raise_if_any()
    if not prompts:
        _fail(records.source, f"no prompts found ({records.empty_reason})")
    return prompts


def build_training_data(examples: list[dict[str, str]]) -> dict[str, Any]:
    """Wrap examples (as :func:`load_examples` returns them) in the API's ``Dataset`` shape.

    :param examples: ``[{"textInput": ..., "output": ...}, ...]``.
    :return: ``{"examples": {"examples": [...]}}``, the value of ``tuningTask.trainingData``.
    :raises TrainingDataError: when the list is empty or an item lacks ``textInput``/``output``.
    """
    if not examples:
        _fail("inline", "no examples given (the list is empty)")
    out: list[dict[str, str]] = []
    for number, example in enumerate(examples, start=1):
        if not isinstance(example, Mapping):
            _fail("inline", f"expected an object, got {_type_name(example)}", line=number, unit="item")
        for key in ("textInput", "output"):
            if not isinstance(example.get(key), str):
                _fail(
                    "inline",
                    "missing or not a string; pass the result of load_examples()",
                    line=number,
                    field=key,
                    unit="item",
                )
        out.append({"textInput": example["textInput"], "output": example["output"]})
    return {"examples": {"examples": out}}


# --- validation helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """One field to read from a record: its configured name, accepted keys, and length limit."""

    name: str
    keys: tuple[str, ...]
    what: str
    max_chars: int | None
    limit_name: str | None

    def for_key(self, key: str) -> _Field:
        """The same rules, for a record whose only key is ``key`` (a pair's position)."""
        return _Field(key, (key,), self.what, self.max_chars, self.limit_name)


@dataclass(frozen=True)
class MalformedRecord:
    """A record that could not be parsed (bad JSON line, CSV row of the wrong width)."""

    message: str
    field: str | None = None


class Problems:
    """Record-level problems of one source, raised together."""

    def __init__(self, source: str, unit: str) -> None:
        self.source = source
        self.unit = unit
        self.total = 0
        self.shown: list[tuple[int | None, str | None, str]] = []

    def add(self, pos: int, field: str | None, message: str) -> None:
        """Record one problem at ``pos`` (a line or item number), in ``field`` if given."""
        self.total += 1
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            self.shown.append((pos, field, message))

    def raise_if_any(self) -> None:
        """Raise one :class:`TrainingDataError` listing the problems recorded, if any."""
        if not self.shown:
            return
        pos, field, message = self.shown[0]
        raise TrainingDataError(
            message,
            source=self.source,
            line=pos,
            field=field,
            unit=self.unit,
            problems=list(self.shown),
            total=self.total,
        )


def _text(record: Mapping[str, Any], spec: _Field, pos: int, problems: Problems) -> str | None:
    """Return the field's text, or record its problem and return ``None``."""
    key = next((k for k in spec.keys if k in record), None)
    if key is None:
        problems.add(pos, spec.name, f"missing (the record has fields: {_key_list(record)})")
        return None
    value = record[key]
    if not isinstance(value, str):
        problems.add(pos, key, f"{spec.what} must be a string, got {_type_name(value)}")
        return None
    if not value.strip():
        problems.add(pos, key, f"{spec.what} is empty" if not value else f"{spec.what} is whitespace only")
        return None
    try:
        validation.check_text(spec.what, value)
    except InvalidInputError as err:
        problems.add(pos, key, str(err))
        return None
    if spec.max_chars is not None and len(value) > spec.max_chars:
        problems.add(
            pos,
            key,
            f"{spec.what} is {len(value):,} characters, "
            f"over the limit of {spec.max_chars:,} ({spec.limit_name})",
        )
        return None
    return value


def _key_list(record: Mapping[str, Any]) -> str:
    keys = [repr(str(k)) for k in list(record)[:11]]
    if not keys:
        return "none"
    return ", ".join(keys[:10]) + (", ..." if len(keys) > 10 else "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _list(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _fail(
    source: str, message: str, *, line: int | None = None, field: str | None = None, unit: str = "line"
) -> NoReturn:
    """Raise a TrainingDataError; its text says "item N" rather than "line N" for item-numbered data."""
    raise TrainingDataError(message, source=source, line=line, field=field, unit=unit)


def _check_field_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError) as err:
        raise InvalidInputError(f"unknown encoding {encoding!r}") from err


# --- sources ---------------------------------------------------------------------------------------


@dataclass
class Records:
    """Parsed records of one source, with positions."""

    source: str
    unit: str  # "line" (JSONL, CSV) or "item" (JSON, inline)
    items: Iterator[tuple[int, Any]]
    empty_reason: str


def open_records(
    source: object,
    *,
    container_key: str,
    fields: tuple[_Field, ...] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    encoding: str = "utf-8",
    what: str,
) -> Records:
    """Read the records of any source (inline list, JSON string, JSONL/JSON/CSV file or URI) with
    their positions; a line that cannot be parsed is a :class:`MalformedRecord` at its position.

    :param source: the source (see the module doc).
    :param container_key: the key a JSON object wraps its list in (``examples``, ``prompts``).
    :param fields: the columns a CSV file must have (none: CSV is not read).
    :param max_file_bytes: the largest file read.
    :param encoding: the text encoding of files.
    :param what: what the records are, for messages.
    :raises TrainingDataError: the source is missing, unreadable or not a list of records.
    """
    if source is None:
        _fail("inline", f"no {what} given (source is None)")
    if isinstance(source, str):
        stripped = source.lstrip()
        if stripped.startswith(("[", "{")):
            data = _parse_json_text(source, "inline JSON")
            items = _unwrap(data, "inline JSON", container_key, what)
            return Records("inline JSON", "item", enumerate(items, start=1), "the list is empty")
        if not stripped:
            _fail("inline", f"no {what} given (source is an empty string)")
        return _read_file(source, fields, max_file_bytes, encoding, what, container_key)
    if isinstance(source, os.PathLike) or _is_upath(source):
        return _read_file(source, fields, max_file_bytes, encoding, what, container_key)
    if isinstance(source, Mapping) or (
        isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray))
    ):
        items = _unwrap(source, "inline", container_key, what)
        return Records("inline", "item", enumerate(items, start=1), "the list is empty")
    _fail(
        "inline",
        f"unsupported source of {what}: {type(source).__name__}; pass a list, a JSON string, "
        "a path/URI string or an ObjectStoragePath",
    )


def _is_upath(value: object) -> bool:
    """Whether ``value`` looks like an ObjectStoragePath / UPath (without importing them)."""
    return all(hasattr(value, attr) for attr in ("protocol", "stat", "open", "path"))


def _unwrap(data: object, source: str, container_key: str, what: str) -> Sequence[Any]:
    """Return the record list of a parsed JSON document or inline value."""
    if isinstance(data, Mapping):
        inner = data.get(container_key)
        # The API's own Dataset shape: {"examples": {"examples": [...]}}.
        if isinstance(inner, Mapping) and isinstance(inner.get(container_key), (list, tuple)):
            inner = inner[container_key]
        if isinstance(inner, Sequence) and not isinstance(inner, (str, bytes, bytearray)):
            return inner
        _fail(
            source,
            f"expected a list of {what}, or an object with a list under {container_key!r}; "
            f"got an object with fields: {_key_list(data)}",
        )
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes, bytearray)):
        return data
    _fail(source, f"expected a list of {what}, got {_type_name(data)}")


#: The message of a JSON value nested deeper than the parser's recursion limit.
TOO_DEEP = "JSON nested too deeply (more levels of lists or objects than can be parsed)"


def _parse_json_text(text: str, source: str) -> Any:
    """Parse a JSON text (falling back to a Python literal, as Jinja renders lists)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        json_error = err
    except RecursionError:
        _fail(source, TOO_DEEP)
    if source.startswith("inline"):
        import ast

        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    _fail(
        source,
        f"malformed JSON at column {json_error.colno}: {json_error.msg}",
        line=json_error.lineno,
    )


def _redact(location: str) -> str:
    """A printable name for a path or URI: no password, no query string (signed URLs carry tokens)."""
    if "://" not in location:
        return location
    try:
        parts = urlsplit(location)
    except ValueError:
        return location.split("?", 1)[0]
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _kind(location: str, source: str) -> tuple[str, bool]:
    """Return (extension, gzip-compressed) of a path or URI, or raise for an unsupported one."""
    path = urlsplit(location).path if "://" in location else location
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[:-3]
    ext = next((e for e in SUPPORTED_EXTENSIONS if name.endswith(e)), None)
    if ext is None:
        shown = os.path.splitext(name)[1] or "(none)"
        _fail(
            source,
            f"unsupported file type {shown}: use .jsonl, .ndjson, .json or .csv, optionally gzip-compressed "
            "(.jsonl.gz, ...); inline data must be a list (a single prompt: [prompt])",
        )
    return str(ext), compressed


def _read_file(
    location: object,
    fields: tuple[_Field, ...],
    max_file_bytes: int,
    encoding: str,
    what: str,
    container_key: str,
) -> Records:
    """Check, read, decompress and decode a file, then parse it by extension."""
    raw_location = os.fsdecode(location) if isinstance(location, (str, os.PathLike)) else str(location)
    source = _redact(raw_location)
    ext, compressed = _kind(raw_location, source)
    data = _read_bytes(location, raw_location, source, max_file_bytes)
    if compressed:
        data = _gunzip(data, source, max_file_bytes)
    text = _decode(data, source, encoding, compressed)
    if not text.strip():
        _fail(source, f"no {what} found (the file is empty)")
    if ext == ".json":
        items = _unwrap(_parse_json_text(text, source), source, container_key, what)
        return Records(source, "item", enumerate(items, start=1), "the list is empty")
    if ext == ".csv":
        return Records(source, "line", _csv_records(text, source, fields), "the file has no data rows")
    return Records(source, "line", _jsonl_records(text), "the file has no records")


def _read_bytes(location: object, raw_location: str, source: str, max_file_bytes: int) -> bytes:
    """Read at most ``max_file_bytes`` through ObjectStoragePath, checking the size first."""
    from airflow.sdk import ObjectStoragePath

    def scrub(err: BaseException) -> str:
        text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return text.replace(raw_location, source) or type(err).__name__

    try:
        path = location if isinstance(location, ObjectStoragePath) else ObjectStoragePath(raw_location)
        info = path.stat()
    except FileNotFoundError:
        _fail(source, "file not found")
    except PermissionError as err:
        _fail(source, f"cannot read the file: permission denied ({scrub(err)})")
    except (OSError, ValueError, ImportError) as err:
        scheme = urlsplit(raw_location).scheme if "://" in raw_location else ""
        hint = (
            f"; is a filesystem for {scheme}:// installed?" if scheme and isinstance(err, ValueError) else ""
        )
        _fail(source, f"cannot open the file: {scrub(err)}{hint}")
    if info.get("type") == "directory":
        _fail(source, "is a directory, not a file")
    size = info.get("size")
    if isinstance(size, int) and size > max_file_bytes:
        _fail(source, f"file is {size:,} bytes, over the limit of {max_file_bytes:,} (max_file_bytes)")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_file_bytes + 1)
    except FileNotFoundError:
        _fail(source, "file not found")
    except (OSError, ValueError) as err:
        _fail(source, f"cannot read the file: {scrub(err)}")
    if len(data) > max_file_bytes:
        _fail(source, f"file is over the limit of {max_file_bytes:,} bytes (max_file_bytes)")
    return bytes(data)


def _gunzip(data: bytes, source: str, max_file_bytes: int) -> bytes:
    import gzip
    import zlib

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read(max_file_bytes + 1)
    except (OSError, EOFError, zlib.error) as err:
        _fail(source, f"not a valid gzip file: {err}")
    if len(out) > max_file_bytes:
        _fail(source, f"decompressed content is over the limit of {max_file_bytes:,} bytes (max_file_bytes)")
    return out


def _decode(data: bytes, source: str, encoding: str, compressed: bool) -> str:
    """Decode strictly; a UTF-8 byte-order mark is dropped; errors give the byte offset and line."""
    offset = 0
    codec = codecs.lookup(encoding).name
    if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data, offset = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        ascii_based = not codec.startswith(("utf-16", "utf-32"))
        line = data.count(b"\n", 0, err.start) + 1 if ascii_based else None
        bad = data[err.start : min(err.end, err.start + 4)].hex(" ")
        where = "of the decompressed data " if compressed else ""
        _fail(
            source,
            f"cannot decode byte(s) {bad} at byte offset {err.start + offset:,} {where}as {encoding} "
            f"({err.reason}); pass encoding=... if the file uses another encoding",
            line=line,
        )


def _jsonl_records(text: str) -> Iterator[tuple[int, Any]]:
    """One JSON value per line; blank lines skipped; bad lines yield :class:`MalformedRecord`."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            yield number, MalformedRecord(f"malformed JSON at column {err.colno}: {err.msg}")
        except RecursionError:
            yield number, MalformedRecord(TOO_DEEP)


def _csv_records(text: str, source: str, fields: tuple[_Field, ...]) -> Iterator[tuple[int, Any]]:
    """Rows of a comma-separated file with a header row (line 1) as dicts keyed by column name."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
    except csv.Error as err:
        _fail(source, f"malformed CSV: {err}", line=reader.line_num)
    if header is None:
        return
    header_line = reader.line_num
    columns = [cell.strip() for cell in header]
    missing = [f for f in fields if not any(k in columns for k in f.keys)]
    if missing:
        names = ", ".join(repr(f.name) for f in missing)
        _fail(
            source,
            f"the CSV header lacks the column(s) {names} (its columns: {_list(columns)}); "
            "set the field names to match, or rename the columns",
            line=header_line,
            field=missing[0].name,
        )
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield previous + 1, MalformedRecord(f"malformed CSV: {err}")
            return
        start, previous = previous + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(columns):
            yield (
                start,
                MalformedRecord(f"the row has {_plural(len(row), 'value')}, the header {len(columns)}"),
            )
            continue
        yield start, dict(zip(columns, row, strict=True))
