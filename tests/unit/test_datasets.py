"""Tests of airflow_provider_tuning.datasets: every source form and every validation error."""

from __future__ import annotations

import gzip
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_provider_tuning.datasets import (
    MAX_REPORTED_PROBLEMS,
    ExampleLimits,
    PromptItem,
    build_training_data,
    load_examples,
    load_prompts,
)
from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "seeds" / "gemini-tuning-rest-quickstart.zh-TW.txt"

TWO = [{"text_input": "1", "output": "2"}, {"text_input": "3", "output": "4"}]
TWO_OUT = [{"textInput": "1", "output": "2"}, {"textInput": "3", "output": "4"}]


def write(tmp_path: pathlib.Path, name: str, content: str | bytes) -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def error_of(func: Any, *args: Any, **kwargs: Any) -> TrainingDataError:
    with pytest.raises(TrainingDataError) as info:
        func(*args, **kwargs)
    return info.value


# --- inline sources --------------------------------------------------------------------------------


class FakeXComSequence(Sequence):
    """A read-only sequence that is not a list, as a lazily pulled XCom value is."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


class TestInlineExamples:
    def test_list_of_dicts(self) -> None:
        assert load_examples(TWO) == TWO_OUT

    def test_api_field_names_accepted_and_output_reloads(self) -> None:
        api_shaped = [{"textInput": "1", "output": "2"}, {"text_input": "3", "output": "4"}]
        assert load_examples(api_shaped) == TWO_OUT
        assert load_examples(load_examples(TWO)) == TWO_OUT

    def test_column_mapping(self) -> None:
        rows = [{"question": "q1", "answer": "a1", "id": 7}]
        assert load_examples(rows, input_field="question", output_field="answer") == [
            {"textInput": "q1", "output": "a1"}
        ]

    def test_explicit_mapping_does_not_fall_back_to_api_names(self) -> None:
        err = error_of(load_examples, [{"text_input": "1", "output": "2"}], input_field="question")
        assert (err.source, err.line, err.field) == ("inline", 1, "question")
        assert (
            str(err)
            == "inline, item 1, field 'question': missing (the record has fields: 'text_input', 'output')"
        )

    @pytest.mark.parametrize("pair", [["1", "2"], ("1", "2")])
    def test_pairs(self, pair: Sequence[str]) -> None:
        assert load_examples([pair, ("3", "4")]) == TWO_OUT

    def test_tuple_and_xcom_like_sequence(self) -> None:
        assert load_examples(tuple(TWO)) == TWO_OUT
        assert load_examples(FakeXComSequence(list(TWO))) == TWO_OUT

    @pytest.mark.parametrize(
        "container",
        [{"examples": TWO}, {"examples": {"examples": TWO}}, build_training_data(TWO_OUT)],
        ids=["examples-list", "dataset-shape", "build_training_data-output"],
    )
    def test_object_holding_the_list(self, container: dict[str, Any]) -> None:
        assert load_examples(container) == TWO_OUT

    def test_text_is_kept_verbatim(self) -> None:
        assert load_examples([{"text_input": "  1\n", "output": "二"}]) == [
            {"textInput": "  1\n", "output": "二"}
        ]

    def test_json_string(self) -> None:
        assert load_examples(json.dumps(TWO)) == TWO_OUT
        assert load_examples("  " + json.dumps({"examples": TWO})) == TWO_OUT

    def test_python_literal_string_as_jinja_renders_an_xcom(self) -> None:
        assert load_examples(str(TWO)) == TWO_OUT

    def test_malformed_json_string(self) -> None:
        err = error_of(load_examples, '[{"text_input": "1",\n "output": }]')
        assert (err.source, err.line) == ("inline JSON", 2)
        assert "malformed JSON at column 12: Expecting value" in str(err)

    def test_item_numbers_in_messages(self) -> None:
        err = error_of(load_examples, [TWO[0], TWO[1], {"text_input": "5", "output": ""}])
        assert (err.source, err.line, err.field) == ("inline", 3, "output")
        assert str(err) == "inline, item 3, field 'output': output is empty"


# --- files -----------------------------------------------------------------------------------------


class TestFiles:
    def test_jsonl_path_string_pathlib_and_object_storage_path(self, tmp_path: pathlib.Path) -> None:
        from airflow.sdk import ObjectStoragePath

        path = write(tmp_path, "train.jsonl", jsonl(TWO))
        assert load_examples(str(path)) == TWO_OUT
        assert load_examples(path) == TWO_OUT
        assert load_examples(ObjectStoragePath(str(path))) == TWO_OUT

    def test_file_uri_through_object_storage_path(self, tmp_path: pathlib.Path) -> None:
        from airflow.sdk import ObjectStoragePath

        path = write(tmp_path, "train.jsonl", jsonl(TWO))
        uri = path.as_uri()
        assert uri.startswith("file:///")
        assert load_examples(uri) == TWO_OUT
        assert load_examples(ObjectStoragePath(uri)) == TWO_OUT

    def test_file_uri_errors_name_the_uri(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "train.jsonl", jsonl([TWO[0], {"text_input": "3"}]))
        err = error_of(load_examples, path.as_uri())
        assert (err.source, err.line, err.field) == (path.as_uri(), 2, "output")

    def test_jsonl_blank_lines_crlf_and_pairs(self, tmp_path: pathlib.Path) -> None:
        content = '\r\n{"text_input": "1", "output": "2"}\r\n\r\n   \r\n["3", "4"]\r\n\r\n'
        assert load_examples(write(tmp_path, "train.jsonl", content)) == TWO_OUT

    def test_jsonl_line_numbers_count_blank_lines(self, tmp_path: pathlib.Path) -> None:
        content = jsonl(TWO) + "\n\n" + json.dumps({"text_input": "x", "output": 5}) + "\n"
        err = error_of(load_examples, write(tmp_path, "train.jsonl", content))
        assert (err.line, err.field) == (5, "output")
        assert str(err).endswith("train.jsonl, line 5, field 'output': output must be a string, got number")

    def test_ndjson_and_gzip(self, tmp_path: pathlib.Path) -> None:
        assert load_examples(write(tmp_path, "t.ndjson", jsonl(TWO))) == TWO_OUT
        assert load_examples(write(tmp_path, "t.jsonl.gz", gzip.compress(jsonl(TWO).encode()))) == TWO_OUT
        assert (
            load_examples(write(tmp_path, "t.CSV.GZ", gzip.compress(b"text_input,output\n1,2\n3,4\n")))
            == TWO_OUT
        )

    def test_json_list_and_object(self, tmp_path: pathlib.Path) -> None:
        assert load_examples(write(tmp_path, "a.json", json.dumps(TWO, indent=2))) == TWO_OUT
        assert load_examples(write(tmp_path, "b.json", json.dumps({"examples": TWO}))) == TWO_OUT

    def test_json_file_errors_use_item_numbers(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "a.json", json.dumps([TWO[0], {"text_input": None, "output": "2"}], indent=2))
        err = error_of(load_examples, path)
        assert (err.source, err.line, err.field) == (str(path), 2, "text_input")
        assert str(err) == f"{path}, item 2, field 'text_input': input must be a string, got null"

    def test_csv_with_mapping_quoting_and_crlf(self, tmp_path: pathlib.Path) -> None:
        content = 'id,question,answer\r\n1,"one, two","x ""quoted"""\r\n2,"multi\nline",y\r\n'
        path = write(tmp_path, "qa.csv", content)
        assert load_examples(path, input_field="question", output_field="answer") == [
            {"textInput": "one, two", "output": 'x "quoted"'},
            {"textInput": "multi\nline", "output": "y"},
        ]

    def test_csv_line_numbers_count_the_header_and_multiline_records(self, tmp_path: pathlib.Path) -> None:
        content = 'text_input,output\n"a\nb",1\n\n3,\n"c\n\nd",\n'
        err = error_of(load_examples, write(tmp_path, "t.csv", content))
        assert (err.line, err.field) == (5, "output")
        assert str(err).splitlines()[1:] == [
            "- line 5, field 'output': output is empty",
            "- line 6, field 'output': output is empty",  # the record spans lines 6-8
        ]

    def test_csv_api_column_name(self, tmp_path: pathlib.Path) -> None:
        assert load_examples(write(tmp_path, "t.csv", "textInput,output\n1,2\n3,4\n")) == TWO_OUT

    @pytest.mark.parametrize("name", ["t.jsonl", "t.csv"])
    def test_utf8_bom_accepted(self, tmp_path: pathlib.Path, name: str) -> None:
        body = jsonl(TWO) if name.endswith("jsonl") else "text_input,output\n1,2\n3,4\n"
        assert load_examples(write(tmp_path, name, b"\xef\xbb\xbf" + body.encode())) == TWO_OUT

    def test_other_encoding(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.csv", "text_input,output\ncafé,crème\n".encode("latin-1"))
        assert load_examples(path, encoding="latin-1") == [{"textInput": "café", "output": "crème"}]


# --- errors ------------------------------------------------------------------------------------------


class TestEmpty:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ([], "inline: no examples found (the list is empty)"),
            ({"examples": []}, "inline: no examples found (the list is empty)"),
            ("[]", "inline JSON: no examples found (the list is empty)"),
            (None, "inline: no examples given (source is None)"),
            ("   ", "inline: no examples given (source is an empty string)"),
        ],
    )
    def test_inline(self, source: Any, expected: str) -> None:
        err = error_of(load_examples, source)
        assert str(err) == expected
        assert err.line is None

    @pytest.mark.parametrize(
        ("name", "content", "reason"),
        [
            ("t.jsonl", "", "the file is empty"),
            ("t.jsonl", "\n  \n\n", "the file is empty"),
            ("t.csv", "", "the file is empty"),
            ("t.csv", "text_input,output\n\n", "the file has no data rows"),
            ("t.json", "[]", "the list is empty"),
            ("t.json", '{"examples": []}', "the list is empty"),
        ],
    )
    def test_files(self, tmp_path: pathlib.Path, name: str, content: str, reason: str) -> None:
        path = write(tmp_path, name, content)
        err = error_of(load_examples, path)
        assert str(err) == f"{path}: no examples found ({reason})"


class TestFieldErrors:
    def test_missing_field_lists_the_fields_present(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.jsonl", jsonl([TWO[0], {"text_input": "3", "ouput": "4"}]))
        err = error_of(load_examples, path)
        assert (err.source, err.line, err.field) == (str(path), 2, "output")
        assert (
            str(err)
            == f"{path}, line 2, field 'output': missing (the record has fields: 'text_input', 'ouput')"
        )

    @pytest.mark.parametrize(
        ("value", "type_name"),
        [
            (42, "number"),
            (1.5, "number"),
            (None, "null"),
            (["a"], "list"),
            (True, "boolean"),
            ({"a": 1}, "object"),
        ],
    )
    def test_non_string_field_says_its_type(self, tmp_path: pathlib.Path, value: Any, type_name: str) -> None:
        path = write(tmp_path, "t.jsonl", jsonl([{"text_input": "1", "output": value}]))
        err = error_of(load_examples, path)
        assert (err.line, err.field) == (1, "output")
        assert str(err).endswith(f"line 1, field 'output': output must be a string, got {type_name}")

    @pytest.mark.parametrize(("value", "word"), [("", "empty"), (" \t\n ", "whitespace only")])
    def test_empty_and_whitespace_only(self, value: str, word: str) -> None:
        err = error_of(load_examples, [{"text_input": value, "output": "x"}])
        assert (err.line, err.field) == (1, "text_input")
        assert str(err) == f"inline, item 1, field 'text_input': input is {word}"

    def test_input_and_output_length_limits_default_to_contract(self) -> None:
        at_limit = [{"text_input": "i" * 40_000, "output": "o" * 5_000}]
        assert load_examples(at_limit)[0]["textInput"] == "i" * 40_000
        err = error_of(load_examples, [{"text_input": "i" * 40_001, "output": "o" * 5_000}])
        assert str(err) == (
            "inline, item 1, field 'text_input': input is 40,001 characters, "
            "over the limit of 40,000 (max_input_chars)"
        )
        err = error_of(load_examples, [{"text_input": "i", "output": "o" * 5_001}])
        assert err.field == "output"
        assert "output is 5,001 characters, over the limit of 5,000 (max_output_chars)" in str(err)

    def test_custom_limits_count_characters_not_bytes(self) -> None:
        limits = ExampleLimits(max_input_chars=3, max_output_chars=2)
        assert load_examples([["一二三", "四五"]], limits=limits) == [
            {"textInput": "一二三", "output": "四五"}
        ]
        err = error_of(load_examples, [["一二三四", "四"]], limits=limits)
        assert (err.line, err.field) == (1, "pair[0]")
        assert "input is 4 characters, over the limit of 3 (max_input_chars)" in str(err)

    def test_pair_of_wrong_length_and_wrong_record_type(self) -> None:
        err = error_of(load_examples, [["1", "2", "3"]])
        assert str(err) == "inline, item 1: a pair must have 2 items [input, output], got 3"
        err = error_of(load_examples, [TWO[0], "just text"])
        assert err.line == 2
        assert (
            "expected an object with fields 'text_input' and 'output' or an [input, output] pair, got string"
            in str(err)
        )

    def test_malformed_json_line_gives_the_column(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.jsonl", jsonl(TWO) + '{"text_input": "5" "output": "6"}\n')
        err = error_of(load_examples, path)
        assert (err.source, err.line, err.field) == (str(path), 3, None)
        assert str(err) == f"{path}, line 3: malformed JSON at column 20: Expecting ',' delimiter"

    def test_up_to_ten_problems_reported_at_once(self, tmp_path: pathlib.Path) -> None:
        rows = [{"text_input": "ok", "output": "ok"}] + [
            {"text_input": f"{i}", "output": ""} for i in range(12)
        ]
        err = error_of(load_examples, write(tmp_path, "t.jsonl", jsonl(rows)))
        text = str(err)
        assert text.startswith(f"{tmp_path / 't.jsonl'}: 12 problems, the first {MAX_REPORTED_PROBLEMS}:\n")
        reported = re.findall(r"^- line (\d+), field 'output': output is empty$", text, flags=re.M)
        assert reported == [str(n) for n in range(2, 12)]
        assert (err.line, err.field) == (2, "output")

    def test_several_problems_of_different_kinds(self, tmp_path: pathlib.Path) -> None:
        content = '{"text_input": 1, "output": ""}\n{oops\n'
        err = error_of(load_examples, write(tmp_path, "t.jsonl", content))
        assert str(err).splitlines()[1:] == [
            "- line 1, field 'text_input': input must be a string, got number",
            "- line 1, field 'output': output is empty",
            "- line 2: malformed JSON at column 2: Expecting property name enclosed in double quotes",
        ]

    def test_max_examples(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.jsonl", jsonl(TWO) + "\n" + jsonl([TWO[0]]))
        assert len(load_examples(path, limits=ExampleLimits(max_examples=3))) == 3
        err = error_of(load_examples, path, limits=ExampleLimits(max_examples=2))
        assert (err.source, err.line) == (str(path), 4)
        assert "more than max_examples=2 examples" in str(err)
        err = error_of(load_examples, TWO, limits=ExampleLimits(max_examples=1))
        assert str(err) == "inline, item 2: more than max_examples=1 examples; this is the first one over"


class TestStructureErrors:
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (
                '{"rows": []}',
                "expected a list of examples, or an object with a list under 'examples'; "
                "got an object with fields: 'rows'",
            ),
            ('"text"', "expected a list of examples, got string"),
            ("12", "expected a list of examples, got number"),
        ],
    )
    def test_json_file_not_a_list(self, tmp_path: pathlib.Path, content: str, message: str) -> None:
        path = write(tmp_path, "t.json", content)
        assert str(error_of(load_examples, path)) == f"{path}: {message}"

    def test_malformed_json_file(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.json", '[\n  {"text_input": "1", "output": "2"},\n  {"text_input": "3",\n]')
        err = error_of(load_examples, path)
        assert err.line == 4
        assert (
            str(err) == f"{path}, line 4: malformed JSON at column 1: "
            "Expecting property name enclosed in double quotes"
        )

    def test_csv_without_the_columns_lists_its_columns(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.csv", "question,answer\n1,2\n")
        err = error_of(load_examples, path)
        assert (err.line, err.field) == (1, "text_input")
        assert str(err) == (
            f"{path}, line 1, field 'text_input': the CSV header lacks the column(s) 'text_input', 'output' "
            "(its columns: 'question', 'answer'); set the field names to match, or rename the columns"
        )
        err = error_of(load_examples, path, input_field="question")
        assert err.field == "output"
        assert "lacks the column(s) 'output' (its columns: 'question', 'answer')" in str(err)

    def test_csv_row_of_the_wrong_width(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.csv", "text_input,output\n1,2\n3\n4,5,6\n")
        text = str(error_of(load_examples, path))
        assert "- line 3: the row has 1 value, the header 2" in text
        assert "- line 4: the row has 3 values, the header 2" in text

    def test_undecodable_bytes(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.jsonl", jsonl(TWO).encode() + b'{"text_input": "\xff", "output": "x"}\n')
        err = error_of(load_examples, path)
        offset = len(jsonl(TWO).encode()) + len(b'{"text_input": "')
        assert err.line == 3
        assert str(err) == (
            f"{path}, line 3: cannot decode byte(s) ff at byte offset {offset:,} "
            "as utf-8 (invalid start byte); "
            "pass encoding=... if the file uses another encoding"
        )

    def test_undecodable_bytes_offset_counts_the_bom(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.csv", b"\xef\xbb\xbftext_input,output\n\xe4\xb8,x\n")
        err = error_of(load_examples, path)
        assert err.line == 2
        assert "cannot decode byte(s) e4 b8 at byte offset 21 as utf-8" in str(err)

    def test_undecodable_bytes_in_gzip(self, tmp_path: pathlib.Path) -> None:
        path = write(tmp_path, "t.jsonl.gz", gzip.compress(b"\n\xc3\x28\n"))
        err = error_of(load_examples, path)
        assert err.line == 2
        assert "at byte offset 1 of the decompressed data as utf-8" in str(err)

    @pytest.mark.parametrize("name", ["train.txt", "train", "train.json.bak", "train.parquet"])
    def test_unsupported_extension_before_any_read(self, tmp_path: pathlib.Path, name: str) -> None:
        path = tmp_path / name  # does not exist: the extension is checked first
        err = error_of(load_examples, path)
        assert err.source == str(path)
        assert "unsupported file type" in str(err)
        assert "use .jsonl, .ndjson, .json or .csv" in str(err)

    def test_missing_file(self, tmp_path: pathlib.Path) -> None:
        path = tmp_path / "nope.jsonl"
        err = error_of(load_examples, str(path))
        assert str(err) == f"{path}: file not found"
        err = error_of(load_examples, path.as_uri())
        assert str(err) == f"{path.as_uri()}: file not found"

    def test_directory(self, tmp_path: pathlib.Path) -> None:
        folder = tmp_path / "data.jsonl"
        folder.mkdir()
        assert str(error_of(load_examples, folder)) == f"{folder}: is a directory, not a file"

    def test_large_file_rejected_by_size_before_reading(
        self, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from airflow.sdk import ObjectStoragePath

        path = tmp_path / "big.jsonl"
        with path.open("wb") as handle:
            handle.truncate(100 * 1024 * 1024)  # sparse: no 100 MB written
        opened: list[str] = []
        real_open = ObjectStoragePath.open

        def spy_open(self: Any, *args: Any, **kwargs: Any) -> Any:
            opened.append(str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(ObjectStoragePath, "open", spy_open)
        err = error_of(load_examples, path)
        assert str(err) == f"{path}: file is 104,857,600 bytes, over the limit of 67,108,864 (max_file_bytes)"
        assert opened == []
        err = error_of(load_examples, path, limits=ExampleLimits(max_file_bytes=1024))
        assert "over the limit of 1,024 (max_file_bytes)" in str(err)
        assert opened == []

    def test_size_limit_also_enforced_while_reading(
        self, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from airflow.sdk import ObjectStoragePath

        path = write(tmp_path, "t.jsonl", jsonl(TWO * 50))
        # A store that reports no size: only the bounded read can catch the limit.
        monkeypatch.setattr(ObjectStoragePath, "stat", lambda self: {"type": "file"})
        requested: list[Any] = []
        real_open = ObjectStoragePath.open

        class CountingReader:
            def __init__(self, handle: Any) -> None:
                self.handle = handle

            def __enter__(self) -> CountingReader:
                return self

            def __exit__(self, *exc: object) -> None:
                self.handle.close()

            def read(self, size: int = -1) -> bytes:
                requested.append(size)
                return self.handle.read(size)

        monkeypatch.setattr(
            ObjectStoragePath, "open", lambda self, *a, **k: CountingReader(real_open(self, *a, **k))
        )
        err = error_of(load_examples, path, limits=ExampleLimits(max_file_bytes=100))
        assert str(err) == f"{path}: file is over the limit of 100 bytes (max_file_bytes)"
        assert requested == [101]  # never more than the limit plus one byte
        assert len(load_examples(path)) == 100

    def test_gzip_limits_and_corruption(self, tmp_path: pathlib.Path) -> None:
        bomb = write(tmp_path, "t.jsonl.gz", gzip.compress(b"\n" * 10_000))
        err = error_of(load_examples, bomb, limits=ExampleLimits(max_file_bytes=1_000))
        assert str(err) == f"{bomb}: decompressed content is over the limit of 1,000 bytes (max_file_bytes)"
        broken = write(tmp_path, "u.jsonl.gz", b"not gzip at all")
        assert str(error_of(load_examples, broken)).startswith(f"{broken}: not a valid gzip file:")

    def test_scheme_without_filesystem_and_secrets_redacted(self) -> None:
        err = error_of(load_examples, "s3://bucket/train.jsonl")
        assert err.source == "s3://bucket/train.jsonl"
        assert "cannot open the file" in str(err)
        assert "is a filesystem for s3:// installed?" in str(err)
        err = error_of(
            load_examples, "https://user:hunter2@example.com/train.jsonl?X-Goog-Signature=sekret#frag"
        )
        assert err.source == "https://user:***@example.com/train.jsonl?***"
        assert "hunter2" not in str(err)
        assert "sekret" not in str(err)

    @pytest.mark.parametrize("source", [b"[]", 42, object()])
    def test_unsupported_source_type(self, source: object) -> None:
        err = error_of(load_examples, source)
        assert f"unsupported source of examples: {type(source).__name__}" in str(err)


class TestArguments:
    def test_bad_arguments_raise_invalid_input(self) -> None:
        with pytest.raises(InvalidInputError, match="both 'x'"):
            load_examples(TWO, input_field="x", output_field="x")
        with pytest.raises(InvalidInputError, match="input_field must be a non-empty string"):
            load_examples(TWO, input_field="")
        with pytest.raises(InvalidInputError, match="unknown encoding 'no-such-codec'"):
            load_examples(TWO, encoding="no-such-codec")
        with pytest.raises(InvalidInputError, match="max_chars must be a positive integer"):
            load_prompts(["p"], max_chars=0)
        with pytest.raises(InvalidInputError, match="prompt_field and expected_field are both 'p'"):
            load_prompts(["p"], prompt_field="p", expected_field="p")

    @pytest.mark.parametrize(
        "kwargs",
        [{"max_input_chars": 0}, {"max_output_chars": -1}, {"max_examples": 0}, {"max_file_bytes": True}],
    )
    def test_bad_limits(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidInputError, match=f"ExampleLimits.{next(iter(kwargs))} must be a positive"):
            ExampleLimits(**kwargs)


# --- prompts -----------------------------------------------------------------------------------------


class TestPrompts:
    def test_inline_strings_and_prompt_items(self) -> None:
        assert load_prompts(["a", "b"]) == [PromptItem("a"), PromptItem("b")]
        items = [PromptItem("a", "1"), PromptItem("b")]
        assert load_prompts(items) == items
        assert load_prompts([PromptItem("a", "1")], expected_field="answer") == [PromptItem("a", "1")]

    def test_objects_with_expected(self) -> None:
        rows = [{"q": "1", "a": "2", "other": 0}]
        assert load_prompts(rows, prompt_field="q", expected_field="a") == [PromptItem("1", "2")]
        assert load_prompts(rows, prompt_field="q") == [PromptItem("1")]

    def test_files(self, tmp_path: pathlib.Path) -> None:
        lines = write(tmp_path, "p.jsonl", jsonl(["first", {"prompt": "second"}]))
        assert load_prompts(lines) == [PromptItem("first"), PromptItem("second")]
        table = write(tmp_path, "p.csv", "prompt,expected\nq1,a1\nq2,a2\n")
        assert load_prompts(table, expected_field="expected") == [
            PromptItem("q1", "a1"),
            PromptItem("q2", "a2"),
        ]
        doc = write(tmp_path, "p.json", json.dumps({"prompts": ["x", "y"]}))
        assert load_prompts(doc) == [PromptItem("x"), PromptItem("y")]
        assert load_prompts(doc.as_uri()) == [PromptItem("x"), PromptItem("y")]

    def test_json_string(self) -> None:
        assert load_prompts('["a", {"prompt": "b"}]') == [PromptItem("a"), PromptItem("b")]

    def test_errors(self, tmp_path: pathlib.Path) -> None:
        err = error_of(load_prompts, ["ok", "x" * 11], max_chars=10)
        assert (
            str(err)
            == "inline, item 2, field 'prompt': prompt is 11 characters, over the limit of 10 (max_chars)"
        )
        err = error_of(load_prompts, ["a"], expected_field="answer")
        assert err.line == 1
        assert "a plain string has no expected output; with expected_field='answer'" in str(err)
        err = error_of(load_prompts, [{"prompt": "a"}], expected_field="answer")
        assert (err.line, err.field) == (1, "answer")
        assert "missing (the record has fields: 'prompt')" in str(err)
        err = error_of(load_prompts, [PromptItem("a")], expected_field="answer")
        assert "expected output must be a string, got null" in str(err)
        err = error_of(load_prompts, [{"prompt": " "}, 3])
        assert str(err).splitlines()[1:] == [
            "- item 1, field 'prompt': prompt is whitespace only",
            "- item 2: expected a string or an object with field 'prompt', got number",
        ]
        err = error_of(load_prompts, [])
        assert str(err) == "inline: no prompts found (the list is empty)"
        path = write(tmp_path, "p.csv", "question\nq\n")
        err = error_of(load_prompts, path)
        assert "lacks the column(s) 'prompt' (its columns: 'question')" in str(err)
        assert str(error_of(load_prompts, write(tmp_path, "p.json", "{}"))).endswith(
            "expected a list of prompts, or an object with a list under 'prompts'; "
            "got an object with fields: none"
        )

    def test_a_bare_prompt_string_is_not_a_source(self) -> None:
        err = error_of(load_prompts, "What is 2+2?")
        assert "unsupported file type" in str(err)
        assert "a single prompt: [prompt]" in str(err)


# --- build_training_data and seed data ---------------------------------------------------------------


def seed_pairs() -> list[tuple[str, str]]:
    text = SEED.read_text(encoding="utf-8")
    curl_block = text[: text.index("tunemodel.json")]
    return re.findall(r'"text_input": "([^"]*)",\s*"output": "([^"]*)"', curl_block)


class TestTrainingData:
    def test_shape(self) -> None:
        assert build_training_data(TWO_OUT) == {"examples": {"examples": TWO_OUT}}

    def test_shape_parses_into_the_official_dataset_message(self) -> None:
        from google.ai.generativelanguage_v1beta.types import Dataset

        data = build_training_data(load_examples(TWO))
        message = Dataset.from_json(json.dumps(data), ignore_unknown_fields=False)
        assert [(e.text_input, e.output) for e in message.examples.examples] == [("1", "2"), ("3", "4")]

    def test_rejects_what_load_examples_would_not_return(self) -> None:
        assert str(error_of(build_training_data, [])) == "inline: no examples given (the list is empty)"
        err = error_of(build_training_data, [TWO_OUT[0], {"text_input": "3", "output": "4"}])
        assert (err.line, err.field) == (2, "textInput")
        assert "item 2, field 'textInput': missing or not a string" in str(err)

    def test_seed_examples_round_trip_as_jsonl(self, tmp_path: pathlib.Path) -> None:
        pairs = seed_pairs()
        assert len(pairs) == 15
        path = write(tmp_path, "numbers.jsonl", jsonl([{"text_input": i, "output": o} for i, o in pairs]))
        examples = load_examples(path)
        assert len(examples) == 15
        assert examples[0] == {"textInput": "1", "output": "2"}
        assert examples[9] == {"textInput": "10,100,000", "output": "10,100,001"}
        assert build_training_data(examples)["examples"]["examples"] == [
            {"textInput": i, "output": o} for i, o in pairs
        ]

    def test_seed_python_literal_training_data(self) -> None:
        # The seed's Python cell builds training_data as a Python literal (single quotes, trailing
        # commas): the form a Jinja-rendered XCom takes. Cut out that dict and load it as a string.
        text = SEED.read_text(encoding="utf-8")
        start = text.index("{", text.index('"training_data":', text.index("requests.post(")))
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        literal = text[start : end + 1]
        examples = load_examples(literal)
        assert [(e["textInput"], e["output"]) for e in examples] == seed_pairs()


def test_import_pulls_in_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_tuning.datasets\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "['airflow_provider_tuning']"


# --- deeply nested JSON and lone surrogates ------------------------------------------------------------

DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a": ' * 100_000 + "1" + "}" * 100_000
TOO_DEEP = "JSON nested too deeply"


@pytest.mark.parametrize("text", [DEEP_LIST, '{"examples": ' + DEEP_LIST + "}"])
def test_deeply_nested_inline_json_is_a_training_data_error(text: str) -> None:
    error = error_of(load_examples, text)
    assert str(error).startswith(f"inline JSON: {TOO_DEEP}")


def test_a_deeply_nested_jsonl_line_names_the_file_and_line(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "deep.jsonl", jsonl(TWO) + DEEP_OBJECT + "\n")
    error = error_of(load_examples, str(path))
    assert (error.source, error.line) == (str(path), 3)
    assert str(error) == f"{path}, line 3: {TOO_DEEP} (more levels of lists or objects than can be parsed)"


@pytest.mark.parametrize(("name", "content"), [("deep.json", DEEP_LIST), ("deep.jsonl", DEEP_OBJECT + "\n")])
def test_deeply_nested_prompt_files_are_training_data_errors(
    tmp_path: pathlib.Path, name: str, content: str
) -> None:
    path = write(tmp_path, name, content)
    error = error_of(load_prompts, str(path))
    assert str(error).startswith(f"{path}")
    assert TOO_DEEP in str(error)


def test_a_lone_surrogate_in_a_jsonl_file_names_the_line_and_field(tmp_path: pathlib.Path) -> None:
    # A JSON escape of half a surrogate pair parses, but it is not text: it cannot be sent as UTF-8.
    path = write(tmp_path, "broken.jsonl", jsonl(TWO) + '{"text_input": "x", "output": "caf\\ud800"}\n')
    error = error_of(load_examples, str(path))
    assert (error.line, error.field) == (3, "output")
    assert str(error) == (
        f"{path}, line 3, field 'output': output contains a lone surrogate ('\\ud800' at character 3), "
        "which is not valid Unicode text"
    )


def test_lone_surrogates_inline_and_in_prompts_are_training_data_errors() -> None:
    error = error_of(load_examples, [*TWO, ["\udfff", "out"]])
    assert (error.source, error.line, error.field) == ("inline", 3, "pair[0]")
    assert "lone surrogate" in str(error)
    error = error_of(load_prompts, ["fine", "bad \ud800"])
    assert (error.line, error.field) == (2, "prompt")
    assert "prompt contains a lone surrogate" in str(error)
