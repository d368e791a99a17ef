"""Training data for Vertex AI: the service's JSONL formats validated with file and line, and
input/output examples turned into user/model turns."""

from __future__ import annotations

import json

import pytest

from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError
from airflow_provider_tuning.vertex_datasets import (
    examples_to_records,
    load_training_records,
    load_vertex_records,
    to_jsonl,
)


def turn(role: str, text: str) -> dict:
    return {"role": role, "parts": [{"text": text}]}


SFT = {"contents": [turn("user", "I"), turn("model", "II")]}
PREFERENCE = {
    "contents": [turn("user", "Say hi")],
    "completions": [
        {"score": 1, "completion": turn("model", "Hi!")},
        {"score": 0, "completion": turn("model", "Go away.")},
    ],
}


def write_jsonl(tmp_path, lines: list) -> str:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def test_input_output_examples_become_user_and_model_turns(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text_input,output\n1,2\n3,4\n")
    records = load_training_records(str(path), system_instruction="Count up.")
    assert records[0] == {
        "contents": [turn("user", "1"), turn("model", "2")],
        "systemInstruction": {"parts": [{"text": "Count up."}]},
    }
    assert to_jsonl(records).decode().splitlines()[1] == json.dumps(records[1], separators=(",", ":"))


def test_vertex_records_are_recognised_and_kept(tmp_path):
    record = {"systemInstruction": {"parts": [{"text": "Be brief."}]}, **SFT}
    assert load_training_records([record]) == [record]
    assert load_training_records(write_jsonl(tmp_path, [record, SFT])) == [record, SFT]
    assert load_training_records(json.dumps({"examples": [SFT]})) == [SFT]


def test_preference_records(tmp_path):
    assert load_training_records(write_jsonl(tmp_path, [PREFERENCE]), kind="preference") == [PREFERENCE]


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [
        ({"messages": []}, "contents", "missing (the record has fields: 'messages'); a supervised example"),
        ({"contents": []}, "contents", "contents must be a non-empty list"),
        ({"contents": [turn("user", "a"), turn("bot", "b")]}, "contents", "role must be 'user' or 'model'"),
        (
            {"contents": [turn("user", "a"), {"role": "model", "parts": []}]},
            "contents",
            "parts must be a non-empty list",
        ),
        (
            {"contents": [turn("user", "a"), turn("user", "b")]},
            "contents",
            "the last turn must be the model's",
        ),
        ({"contents": [turn("user", "a"), {"parts": [{"text": "b"}]}]}, "contents", "role is required"),
        ({"contents": [turn("user", "a\ud800"), turn("model", "b")]}, "contents", "lone surrogate"),
        (
            {"contents": [turn("user", "a"), {"role": "model", "parts": [{"text": "b", "fileData": {}}]}]},
            "contents",
            "exactly one of text",
        ),
        (
            {
                "contents": [
                    turn("user", "a"),
                    {"role": "model", "parts": [{"fileData": {"fileUri": "https://x"}}]},
                ]
            },
            "contents",
            "fileUri must be a gs:// URI",
        ),
        ({"systemInstruction": "be brief", **SFT}, "systemInstruction", "must be an object"),
    ],
)
def test_bad_supervised_records_name_the_line_and_field(tmp_path, record, field, fragment):
    path = write_jsonl(tmp_path, [SFT, record])
    with pytest.raises(TrainingDataError) as info:
        load_vertex_records(path)
    assert (info.value.line, info.value.field) == (2, field)
    assert fragment in str(info.value)
    assert str(info.value).startswith(path)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"contents": [turn("user", "a"), turn("model", "b")]}, "must end with a user turn"),
        ({"completions": PREFERENCE["completions"][:1]}, "exactly two"),
        ({"completions": [{"score": 1, "completion": turn("model", "x")}] * 2}, "one score 1"),
        (
            {
                "completions": [
                    {"score": True, "completion": turn("model", "x")},
                    {"score": 0, "completion": turn("model", "y")},
                ]
            },
            "one score 1",
        ),
        (
            {
                "completions": [
                    {"score": 1, "completion": turn("user", "x")},
                    {"score": 0, "completion": turn("model", "y")},
                ]
            },
            "role must be 'model'",
        ),
    ],
)
def test_bad_preference_records(change, fragment):
    with pytest.raises(TrainingDataError, match=fragment) as info:
        load_vertex_records([PREFERENCE, {**PREFERENCE, **change}], kind="preference")
    assert info.value.line == 2


def test_every_problem_is_reported_with_its_line(tmp_path):
    path = write_jsonl(tmp_path, [SFT, "{not json", {"contents": []}, SFT])
    with pytest.raises(TrainingDataError) as info:
        load_vertex_records(path)
    assert [problem[0] for problem in info.value.problems] == [2, 3]


def test_what_cannot_be_used_is_refused_before_any_call(tmp_path):
    csv = tmp_path / "turns.csv"
    csv.write_text("contents\nx\n")
    with pytest.raises(TrainingDataError, match="a CSV file cannot hold Vertex AI turns"):
        load_vertex_records(str(csv))
    with pytest.raises(InvalidInputError, match="preference tuning needs records in Vertex AI's format"):
        load_training_records([["1", "2"]], kind="preference", vertex_format=False)
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        load_vertex_records([SFT], kind="distillation")
    with pytest.raises(InvalidInputError, match="system_instruction is for input/output examples"):
        load_training_records([SFT], system_instruction="x")
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        examples_to_records([{"textInput": "1", "output": "2"}], system_instruction="\ud800")
    with pytest.raises(TrainingDataError, match="no examples found"):
        load_vertex_records([])
