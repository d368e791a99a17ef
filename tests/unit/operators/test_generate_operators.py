"""The inference operators with a fake hook: validation, batching, output, evaluation."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_tuning.exceptions import (
    EvaluationBelowThresholdError,
    InvalidArgumentError,
    InvalidInputError,
    NotFoundError,
    ServerError,
    TrainingDataError,
    TuningFailedError,
)
from airflow_provider_tuning.hooks._http import RateLimitedHTTPAdapter
from airflow_provider_tuning.operators.generate import (
    GenerateContentOperator,
    GenerateTextOperator,
    _looks_like_prompt_source,
    parse_generate_content_response,
    parse_generate_text_response,
)

# The seed's answer to "LXIII" (gemini-tuning-rest-quickstart.zh-TW.txt), with usage added.
SEED_CONTENT_RESPONSE = {
    "candidates": [
        {
            "content": {"parts": [{"text": "LXIV"}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "LOW"},
            ],
        }
    ],
    "promptFeedback": {"safetyRatings": []},
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
}


def content_response(*texts: str) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"parts": [{"text": t}], "role": "model"}, "finishReason": "STOP", "index": i}
            for i, t in enumerate(texts)
        ],
        "usageMetadata": {
            "promptTokenCount": 1,
            "candidatesTokenCount": len(texts),
            "totalTokenCount": 1 + len(texts),
        },
    }


class FakeHook:
    """Records calls; answers with ``answer(prompt)``; counts the calls in flight."""

    def __init__(self, answer=None, *, state: str = "ACTIVE") -> None:
        self.answer = answer or (lambda prompt: content_response(f"echo {prompt}"))
        self.state = state
        self.calls: list[dict[str, Any]] = []
        self.model_reads: list[tuple[str, str | None]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.session = requests.Session()

    def get_conn(self) -> requests.Session:
        return self.session

    closed = 0

    def close(self) -> None:
        self.closed += 1

    def get_tuned_model(self, name: str, *, api_version: str | None = None) -> dict[str, Any]:
        self.model_reads.append((name, api_version))
        return {"name": name, "state": self.state}

    def _run(self, prompt: str, call: dict[str, Any]) -> Any:
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.answer(prompt)
        finally:
            with self._lock:
                self.in_flight -= 1

    def generate_content(self, model, contents, **kwargs):
        prompt = contents[0]["parts"][0]["text"]
        return self._run(
            prompt, {"method": "generate_content", "model": model, "contents": contents, **kwargs}
        )

    def generate_text(self, model, prompt, **kwargs):
        return self._run(prompt, {"method": "generate_text", "model": model, "prompt": prompt, **kwargs})


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def make(cls=GenerateContentOperator, hook: FakeHook | None = None, **kwargs):
    kwargs.setdefault("task_id", "generate")
    kwargs.setdefault("model", "tunedModels/number-generator-model-dzlmi0gswwqb")
    op = cls(**kwargs)
    fake = hook or FakeHook()
    hooks_made: list[FakeHook] = []

    def get_hook():
        hooks_made.append(fake)
        return fake

    op.get_hook = get_hook
    op.hooks_made = hooks_made
    return op, fake


# --- validation, before any call --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (GenerateContentOperator, {"temperature": 2.1}, "temperature must be >= 0 and <= 2, got 2.1"),
        (GenerateTextOperator, {"temperature": 1.5}, "temperature must be >= 0 and <= 1, got 1.5"),
        (GenerateContentOperator, {"temperature": "hot"}, "temperature must be a finite number"),
        (GenerateContentOperator, {"temperature": True}, "temperature must be a finite number"),
        (GenerateContentOperator, {"temperature": float("nan")}, "finite"),
        (GenerateContentOperator, {"candidate_count": 0}, "candidate_count must be a positive integer"),
        (GenerateTextOperator, {"candidate_count": 9}, "candidate_count must be at most 8, got 9"),
        (GenerateTextOperator, {"candidate_count": 1.5}, "candidate_count must be a positive integer"),
        (GenerateContentOperator, {"top_p": 1.2}, "top_p must be >= 0 and <= 1"),
        (GenerateContentOperator, {"top_k": 0}, "top_k must be a positive integer"),
        (GenerateContentOperator, {"max_output_tokens": 0}, "max_output_tokens must be a positive integer"),
        (GenerateContentOperator, {"stop_sequences": ["a"] * 6}, "at most 5 sequences, got 6"),
        (GenerateContentOperator, {"stop_sequences": ["a", ""]}, r"stop_sequences\[1\] must be a non-empty"),
        (
            GenerateContentOperator,
            {"safety_settings": [{"category": "TOXICITY", "threshold": "BLOCK_NONE"}]},
            r"safety_settings\[0\].category 'TOXICITY' is not one of",
        ),
        (
            GenerateTextOperator,
            {"safety_settings": [{"category": "HARASSMENT", "threshold": "BLOCK_NONE"}]},
            r"safety_settings\[0\].category 'HARASSMENT' is not one of",
        ),
        (
            GenerateTextOperator,
            {"safety_settings": [{"category": "HARM_CATEGORY_TOXICITY", "threshold": "OFF"}]},
            r"threshold 'OFF' is not one of",
        ),
        (
            GenerateContentOperator,
            {
                "safety_settings": [
                    {"category": "HATE_SPEECH", "threshold": "HARM_BLOCK_THRESHOLD_UNSPECIFIED"}
                ]
            },
            r"threshold 'HARM_BLOCK_THRESHOLD_UNSPECIFIED' is not one of",
        ),
        (
            GenerateContentOperator,
            {
                "safety_settings": [
                    {"category": "HARASSMENT", "threshold": "BLOCK_NONE"},
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
                ]
            },
            "more than one setting for HARM_CATEGORY_HARASSMENT",
        ),
        (
            GenerateContentOperator,
            {"safety_settings": [{"category": "HARASSMENT"}]},
            "exactly the keys 'category' and 'threshold'",
        ),
        (
            GenerateContentOperator,
            {"model": "gemini-1.5-flash/x"},
            "model must be 'models/<id>', 'tunedModels/<id>' or '<id>'",
        ),
        (GenerateContentOperator, {"model": "tunedModels/a/b"}, "got 'tunedModels/a/b'"),
        (GenerateContentOperator, {"api_version": "v1beta3"}, "does not serve"),
        (GenerateTextOperator, {"api_version": "v1"}, "does not serve"),
        (
            GenerateContentOperator,
            {"api_version": "v1", "system_instruction": "be brief"},
            "needs api_version",
        ),
        (GenerateContentOperator, {"prompts": "   "}, "the prompt is empty"),
        (
            GenerateContentOperator,
            {"prompts": "x" * 11, "max_prompt_chars": 10},
            "more than max_prompt_chars=10",
        ),
        (GenerateContentOperator, {"prompts": {"prompt": "1"}}, "not a mapping"),
        (GenerateContentOperator, {"prompts": "one \ud800"}, "prompts contains a lone surrogate"),
        (
            GenerateTextOperator,
            {"prompts": ["1", "\udfff"]},
            "item 2, field 'prompt': prompt contains a lone",
        ),
        (GenerateContentOperator, {"system_instruction": "\ud800"}, "system_instruction contains a lone"),
        (GenerateContentOperator, {"stop_sequences": ["\ud800"]}, r"stop_sequences\[0\] contains a lone"),
        (GenerateContentOperator, {"prompts": "[" * 100_000 + "]" * 100_000}, "JSON nested too deeply"),
        (GenerateContentOperator, {"min_score": 0.5}, "no prompt has an expected output"),
    ],
)
def test_invalid_settings_fail_before_any_call(cls, kwargs, message):
    kwargs.setdefault("prompts", ["1", "2"])
    op, hook = make(cls, **kwargs)
    with pytest.raises(AirflowFailException) as info:  # input errors fail without retry
        op.execute({})
    assert isinstance(info.value.__cause__, (InvalidInputError, TrainingDataError))
    assert re.search(message, str(info.value.__cause__))
    assert hook.calls == []
    assert op.hooks_made == []  # not even a hook (so no connection lookup) was made


def test_bad_prompt_data_fails_before_any_call(tmp_path):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "1"}\n{"prompt": ""}\n{oops\n', encoding="utf-8")
    op, hook = make(prompts=str(bad))
    with pytest.raises(AirflowFailException, match=r"prompts\.jsonl") as info:
        op.execute({})
    assert isinstance(info.value.__cause__, TrainingDataError)
    assert info.value.__cause__.line == 2
    assert hook.calls == []
    assert op.hooks_made == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a positive integer, got 0"),
        ({"requests_per_minute": 0}, "requests_per_minute must be a positive integer, got 0"),
        ({"min_score": 1.5}, "min_score must be >= 0 and <= 1, got 1.5"),
        ({"min_score_metric": "bleu"}, "min_score_metric must be one of"),
        ({"prompts_kind": "file"}, "prompts_kind must be"),
    ],
)
def test_untemplated_arguments_fail_at_dag_parse_time(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        GenerateContentOperator(task_id="t", model="models/x", prompts="1", **kwargs)


# --- requests built -------------------------------------------------------------------------------


def test_generate_content_request_uses_camel_case_config_and_full_safety_names():
    op, hook = make(
        prompts="LXIII",
        temperature="0.5",  # a rendered template is a string
        top_p=0.9,
        top_k="40",
        candidate_count=2,
        max_output_tokens=16,
        stop_sequences="\n",
        safety_settings=[{"category": "HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
        system_instruction="Answer with the next number.",
    )
    op.execute({})
    assert hook.calls == [
        {
            "method": "generate_content",
            "model": "tunedModels/number-generator-model-dzlmi0gswwqb",
            "contents": [{"role": "user", "parts": [{"text": "LXIII"}]}],
            "api_version": "v1beta",
            "generation_config": {
                "temperature": 0.5,
                "topP": 0.9,
                "topK": 40,
                "candidateCount": 2,
                "maxOutputTokens": 16,
                "stopSequences": ["\n"],
            },
            "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
            "system_instruction": {"parts": [{"text": "Answer with the next number."}]},
        }
    ]
    assert hook.model_reads == [("tunedModels/number-generator-model-dzlmi0gswwqb", "v1beta")]


def test_generate_text_request_is_the_korean_seed_call():
    hook = FakeHook(lambda prompt: {"candidates": [{"output": "3 2 1"}, {"output": "3 2"}]})
    op, _ = make(
        GenerateTextOperator,
        hook=hook,
        model="tunedModels/number-generator-model-q2d0uism5ivd",
        prompts="4",
        temperature=1.0,
        candidate_count=2,
    )
    out = op.execute({})
    assert hook.calls == [
        {
            "method": "generate_text",
            "model": "tunedModels/number-generator-model-q2d0uism5ivd",
            "prompt": "4",
            "api_version": "v1beta3",
            "temperature": 1.0,
            "candidate_count": 2,
        }
    ]
    assert out["results"][0]["candidates"] == ["3 2 1", "3 2"]
    assert out["results"][0]["text"] == "3 2 1"
    assert out["results"][0]["usage"] is None
    assert out["usage"] is None


def test_v1_reads_the_model_state_through_v1beta():
    op, hook = make(prompts="六", api_version="v1")
    op.execute({})
    assert hook.calls[0]["api_version"] == "v1"
    assert hook.model_reads == [("tunedModels/number-generator-model-dzlmi0gswwqb", "v1beta")]


def test_base_models_are_not_state_checked():
    op, hook = make(prompts="hi", model="models/gemini-1.5-flash-001")
    op.execute({})
    assert hook.model_reads == []
    assert len(hook.calls) == 1


def test_a_creating_model_fails_before_generating_and_may_be_retried():
    op, hook = make(prompts=["1", "2"], hook=FakeHook(state="CREATING"))
    with pytest.raises(InvalidInputError, match="is CREATING, not ACTIVE"):  # a retry may find it ACTIVE
        op.execute({})
    assert hook.calls == []


def test_a_failed_model_fails_before_generating_without_retry():
    op, hook = make(prompts=["1", "2"], hook=FakeHook(state="FAILED"))
    with pytest.raises(AirflowFailException, match="FAILED") as info:  # it stays FAILED
        op.execute({})
    assert type(info.value.__cause__) is TuningFailedError
    assert hook.calls == []


# --- results --------------------------------------------------------------------------------------


def test_parse_generate_content_response_from_the_seed():
    assert parse_generate_content_response(SEED_CONTENT_RESPONSE) == {
        "text": "LXIV",
        "candidates": ["LXIV"],
        "finish_reason": "STOP",
        "safety_ratings": SEED_CONTENT_RESPONSE["candidates"][0]["safetyRatings"],
        "block_reason": None,
        "usage": {"prompt_tokens": 5, "output_tokens": 2, "total_tokens": 7},
    }


def test_parse_blocked_and_multi_part_responses():
    blocked = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}}
    assert parse_generate_content_response(blocked)["text"] is None
    assert parse_generate_content_response(blocked)["block_reason"] == "SAFETY"
    assert parse_generate_content_response(blocked)["usage"] is None
    parts = {
        "candidates": [{"content": {"parts": [{"text": "a", "thought": True}, {"text": "b"}, {"text": "c"}]}}]
    }
    assert parse_generate_content_response(parts)["text"] == "bc"
    no_content = {"candidates": [{"finishReason": "SAFETY"}]}
    assert parse_generate_content_response(no_content)["text"] is None
    assert parse_generate_content_response(no_content)["finish_reason"] == "SAFETY"


def test_parse_generate_text_response():
    # An empty output is left out of proto3 JSON: that candidate answered "".
    parsed = parse_generate_text_response(
        {"candidates": [{"safetyRatings": [{"category": "X"}]}, {"output": "y"}]}
    )
    assert parsed["candidates"] == ["", "y"]
    assert parsed["text"] == ""
    assert parsed["safety_ratings"] == [{"category": "X"}]
    filtered = parse_generate_text_response({"filters": [{"reason": "SAFETY"}]})
    assert filtered["text"] is None
    assert filtered["block_reason"] == "SAFETY"


def test_results_keep_prompt_order_when_calls_finish_in_reverse():
    prompts = [f"p{i}" for i in range(6)]
    finished = {p: threading.Event() for p in prompts}

    def answer(prompt: str) -> dict[str, Any]:
        index = prompts.index(prompt)
        if index + 1 < len(prompts):  # wait for the next prompt: the last one finishes first
            assert finished[prompts[index + 1]].wait(10)
        finished[prompt].set()
        return content_response(prompt.upper())

    completion: list[str] = []
    original_set = {p: finished[p].set for p in prompts}
    for p in prompts:
        finished[p].set = lambda p=p: (completion.append(p), original_set[p]())

    op, _ = make(prompts=prompts, concurrency=6, hook=FakeHook(answer))
    out = op.execute({})
    assert completion == list(reversed(prompts))
    assert [r["prompt"] for r in out["results"]] == prompts
    assert [r["text"] for r in out["results"]] == [p.upper() for p in prompts]
    assert [r["index"] for r in out["results"]] == list(range(6))
    assert out["count"] == 6
    assert out["succeeded"] == 6
    assert out["usage"] == {"prompt_tokens": 6, "output_tokens": 6, "total_tokens": 12}


def test_concurrency_bound_is_respected_and_used():
    barrier = threading.Barrier(3, timeout=10)

    def answer(prompt: str) -> dict[str, Any]:
        barrier.wait()  # needs exactly 3 calls in flight at once; a 4th would be counted first
        return content_response(prompt)

    op, hook = make(prompts=[str(i) for i in range(12)], concurrency=3, hook=FakeHook(answer))
    out = op.execute({})
    assert out["succeeded"] == 12
    assert hook.max_in_flight == 3


def test_default_concurrency_is_eight():
    barrier = threading.Barrier(8, timeout=10)

    def answer(prompt: str) -> dict[str, Any]:
        barrier.wait()
        return content_response(prompt)

    op, hook = make(prompts=[str(i) for i in range(16)], hook=FakeHook(answer))
    op.execute({})
    assert hook.max_in_flight == 8


def test_first_failure_fails_the_task_and_stops_the_batch():
    def answer(prompt: str) -> dict[str, Any]:
        if prompt == "2":
            raise InvalidArgumentError(400, "INVALID_ARGUMENT", "prompt 2 is bad", request="POST /v1beta/x")
        return content_response(prompt)

    op, hook = make(prompts=[str(i) for i in range(10)], concurrency=1, hook=FakeHook(answer))
    with pytest.raises(InvalidArgumentError, match="prompt 2 is bad"):
        op.execute({})
    assert [c["contents"][0]["parts"][0]["text"] for c in hook.calls] == ["0", "1", "2"]


def test_continue_on_error_records_the_error_per_prompt():
    def answer(prompt: str) -> dict[str, Any]:
        if prompt == "b":
            raise ServerError(503, "UNAVAILABLE", "overloaded", request="POST /v1beta/x")
        return content_response(prompt)

    op, _ = make(prompts=["a", "b", "c"], continue_on_error=True, hook=FakeHook(answer))
    out = op.execute({})
    assert [r["text"] for r in out["results"]] == ["a", None, "c"]
    assert out["results"][1]["error"] == {
        "type": "ServerError",
        "message": "POST /v1beta/x: 503 UNAVAILABLE: overloaded",
        "http_status": 503,
        "status": "UNAVAILABLE",
    }
    assert out["results"][0]["error"] is None
    assert (out["succeeded"], out["failed"]) == (2, 1)


def test_batch_wide_errors_fail_even_with_continue_on_error():
    def answer(prompt: str) -> dict[str, Any]:
        raise NotFoundError(404, "NOT_FOUND", "no such model", request="POST /v1beta/x")

    op, _ = make(prompts=["a", "b"], continue_on_error=True, hook=FakeHook(answer))
    with pytest.raises(NotFoundError, match="no such model"):
        op.execute({})


# --- prompt sources -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "is_source"),
    [
        ("LXIII", False),
        ("What comes after 1?", False),
        ("prompts.jsonl", True),
        ("/data/prompts.csv", True),
        ("prompts.JSON", True),
        ("prompts.jsonl.gz", True),
        ("s3://bucket/prompts", True),
        ("summarise data.csv", False),  # has whitespace: a prompt
        ('["1", "2"]', True),
        ("['1', '2']", True),  # what Jinja renders from an xcom_pull list
        ('{"prompts": ["1"]}', True),
        ("[1] what next?", False),
        ("{not json}", False),
    ],
)
def test_looks_like_prompt_source(text, is_source):
    assert _looks_like_prompt_source(text) is is_source


def test_prompts_kind_overrides_the_guess(tmp_path):
    op, hook = make(prompts="prompts.jsonl", prompts_kind="text")
    op.execute({})
    assert hook.calls[0]["contents"][0]["parts"][0]["text"] == "prompts.jsonl"
    op, _ = make(prompts="LXIII", prompts_kind="source")
    with pytest.raises(AirflowFailException, match="unsupported file type") as info:
        op.execute({})
    assert isinstance(info.value.__cause__, TrainingDataError)


def test_prompts_from_a_csv_with_expected_outputs(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("question,answer\n1,2\n3,4\n", encoding="utf-8")
    op, _ = make(prompts=str(path), prompt_field="question", expected_field="answer")
    out = op.execute({})
    assert [r["prompt"] for r in out["results"]] == ["1", "3"]
    assert [r["expected"] for r in out["results"]] == ["2", "4"]


def test_prompts_from_an_xcom_list_and_a_rendered_string():
    op, _ = make(prompts=[{"prompt": "1", "answer": "2"}], expected_field="answer")
    assert op.execute({})["results"][0]["expected"] == "2"
    op, _ = make(prompts="['x', 'y']")
    assert [r["prompt"] for r in op.execute({})["results"]] == ["x", "y"]


# --- evaluation and output ------------------------------------------------------------------------


ANSWERS = {"1": "2", "3": "4.", "5": "Six", "7": "9"}


def eval_op(**kwargs):
    prompts = [{"prompt": p, "expected": e} for p, e in [("1", "2"), ("3", "4"), ("5", "six"), ("7", "8")]]
    hook = FakeHook(lambda prompt: content_response(ANSWERS[prompt]))
    return make(prompts=prompts, expected_field="expected", hook=hook, **kwargs)


def test_evaluation_is_computed_and_returned(capsys):
    op, _ = eval_op()
    out = op.execute({})
    assert out["evaluation"] == {
        "exact": 0.25,
        "normalized": 0.75,
        "total": 4,
        "exact_matches": 1,
        "normalized_matches": 3,
    }
    flags = [(r["exact_match"], r["normalized_match"]) for r in out["results"]]
    assert flags == [(True, True), (False, True), (False, True), (False, False)]
    logged = capsys.readouterr()
    assert "normalized      3/4  0.7500" in logged.out + logged.err


def test_min_score_met_returns_normally():
    op, _ = eval_op(min_score=0.75)
    assert op.execute({})["evaluation"]["normalized"] == 0.75


def test_min_score_missed_fails_after_pushing_and_writing_the_results(tmp_path):
    target = tmp_path / "out" / "results.jsonl"
    op, _ = eval_op(min_score=0.5, min_score_metric="exact", output_uri=f"file://{target}")
    ti = FakeTI()
    with pytest.raises(
        EvaluationBelowThresholdError, match=r"exact score 0\.2500 \(1/4\) is below min_score 0\.5"
    ):
        op.execute({"ti": ti})
    pushed = ti.pushed["return_value"]
    assert pushed["evaluation"]["exact"] == 0.25
    assert pushed["output_uri"] == f"file://{target}"
    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["prompt"] for line in lines] == ["1", "3", "5", "7"]


def test_jsonl_output_to_a_file_uri(tmp_path):
    target = tmp_path / "nested" / "results.jsonl"
    op, _ = make(prompts=["一", "二", "三"], output_uri=f"file://{target}")
    out = op.execute({})
    assert "results" not in out
    assert out["output_uri"] == f"file://{target}"
    assert out["count"] == 3
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == ["一", "二", "三"]
    assert [r["text"] for r in rows] == ["echo 一", "echo 二", "echo 三"]
    assert "一" in target.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    json.dumps(out)  # plain JSON


def test_a_plain_local_output_path_is_accepted(tmp_path):
    target = tmp_path / "r.jsonl"
    op, _ = make(prompts="1", output_uri=str(target))
    assert op.execute({})["output_uri"] == f"file://{target}"
    assert len(target.read_text(encoding="utf-8").splitlines()) == 1


def test_the_return_value_is_plain_json():
    op, _ = make(prompts=["1", "2"])
    out = op.execute({})
    assert json.loads(json.dumps(out)) == out


# --- operator surface -----------------------------------------------------------------------------


def test_rendered_templates_are_validated_and_used(tmp_path):
    op, hook = make(
        model="tunedModels/{{ params.model_id }}",
        prompts="{{ params.prompt }}",  # a single prompt is rendered (a list is inline data, never)
        temperature="{{ params.temperature }}",
        candidate_count="{{ params.n }}",
        output_uri=f"file://{tmp_path}/{{{{ run_id }}}}.jsonl",
    )
    op.render_template_fields(
        {"params": {"model_id": "abc", "prompt": "LXIII", "temperature": 0.5, "n": 2}, "run_id": "manual_1"}
    )
    out = op.execute({})
    assert hook.calls[0]["model"] == "tunedModels/abc"
    assert hook.calls[0]["generation_config"] == {"temperature": 0.5, "candidateCount": 2}
    assert out["output_uri"] == f"file://{tmp_path}/manual_1.jsonl"
    assert json.loads((tmp_path / "manual_1.jsonl").read_text(encoding="utf-8"))["prompt"] == "LXIII"


def test_the_hook_is_closed_after_success_and_failure():
    op, hook = make(prompts="1")
    op.execute({})
    assert hook.closed == 1
    op, hook = make(prompts="1", hook=FakeHook(state="CREATING"))
    with pytest.raises(InvalidInputError):
        op.execute({})
    assert hook.closed == 1


def test_the_operator_can_be_deep_copied_before_and_after_a_run():
    import copy

    op, _ = make(prompts=["1", "2"])
    op.execute({})
    del op.get_hook, op.hooks_made  # the test's fake hook (with its lock) is not part of the operator
    copy.deepcopy(op)
    copy.deepcopy(GenerateTextOperator(task_id="t", model="models/text-bison-001", prompts="1"))


def test_template_fields():
    for cls in (GenerateContentOperator, GenerateTextOperator):
        for field in (
            "prompts",
            "model",
            "temperature",
            "top_p",
            "top_k",
            "candidate_count",
            "max_output_tokens",
            "stop_sequences",
            "safety_settings",
            "output_uri",
        ):
            assert field in cls.template_fields
        assert "conn_id" not in cls.template_fields
    assert "system_instruction" in GenerateContentOperator.template_fields


def test_importing_the_module_loads_no_http_or_auth_library():
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_tuning.operators.generate; "
        "print('LOADED=' + ','.join(m for m in ('requests', 'google.auth', 'aiohttp', "
        "'airflow_provider_tuning.hooks.generative_language') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "LOADED="


def _real_hook(monkeypatch, **kwargs):
    """The operator's own hook (not the fake), on a connection that is never called."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT",
        json.dumps({"conn_type": "generativelanguage", "host": "http://127.0.0.1:9", "password": "k-123456"}),
    )
    op = GenerateContentOperator(task_id="generate", model="tunedModels/m", prompts="1", **kwargs)
    op._limiter = op.make_limiter()
    return op.get_hook()


def test_the_hook_owns_a_pool_sized_for_the_concurrency_and_the_limiter(monkeypatch):
    hook = _real_hook(monkeypatch, requests_per_minute=30, concurrency=16)
    for url in ("https://generativelanguage.googleapis.com/v1beta/x", "http://127.0.0.1:8085/v1beta/x"):
        adapter = hook.get_conn().get_adapter(url)
        assert isinstance(adapter, RateLimitedHTTPAdapter)
        assert adapter._pool_maxsize == 16
        assert adapter.limiter.max_calls == 30
        assert adapter.limiter.period == 60.0
        assert adapter.max_retries.total == 0  # the hook retries, not urllib3


def test_without_a_rate_limit_the_hook_has_no_limiter(monkeypatch):
    hook = _real_hook(monkeypatch, concurrency=2)
    adapter = hook.get_conn().get_adapter("https://x")
    assert adapter._pool_maxsize == 2
    assert adapter.limiter is None
