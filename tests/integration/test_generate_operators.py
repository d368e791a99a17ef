"""The inference operators against the real emulator over HTTP (loopback, free port).

Tuned models are created on the emulator with plain ``requests`` (the seeds' 15 number examples), and
the operators' ``execute`` runs with a minimal context through the real hook and connection.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_tuning.exceptions import (
    EvaluationBelowThresholdError,
    InvalidArgumentError,
    InvalidInputError,
    ServerError,
)
from airflow_provider_tuning.hooks.ratelimit import SlidingWindowRateLimiter
from airflow_provider_tuning.operators.generate import GenerateContentOperator, GenerateTextOperator
from tuning_api_emulator import Emulator

API_KEY = "emulator-key"
HEADERS = {"x-goog-api-key": API_KEY}

# The 15 training examples of both seeds (PaLM ko and Gemini zh-TW quickstarts).
SEED_EXAMPLES = [
    ("1", "2"),
    ("3", "4"),
    ("-3", "-2"),
    ("twenty two", "twenty three"),
    ("two hundred", "two hundred one"),
    ("ninety nine", "one hundred"),
    ("8", "9"),
    ("-98", "-97"),
    ("1,000", "1,001"),
    ("10,100,000", "10,100,001"),
    ("thirteen", "fourteen"),
    ("eighty", "eighty one"),
    ("one", "two"),
    ("three", "four"),
    ("seven", "eight"),
]


def tuned_model_body(base_model: str, *, epochs: int, batch_size: int = 2) -> dict[str, Any]:
    """The seeds' create body (snake_case, as the tutorials send it)."""
    return {
        "display_name": "number generator model",
        "base_model": base_model,
        "tuning_task": {
            "hyperparameters": {"batch_size": batch_size, "learning_rate": 0.001, "epoch_count": epochs},
            "training_data": {
                "examples": {"examples": [{"text_input": i, "output": o} for i, o in SEED_EXAMPLES]}
            },
        },
    }


def create_tuned_model(base_url: str, version: str, body: dict[str, Any]) -> str:
    response = requests.post(f"{base_url}/{version}/tunedModels", json=body, headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["metadata"]["tunedModel"]


def wait_active(base_url: str, version: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        model = requests.get(f"{base_url}/{version}/{name}", headers=HEADERS, timeout=10).json()
        if model.get("state") == "ACTIVE":
            return model
        assert model.get("state") == "CREATING", model
        assert time.monotonic() < deadline, f"{name} still CREATING"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def emulator():
    with Emulator(step_seconds=0.01) as emu:
        yield emu


@pytest.fixture(scope="module")
def gemini_model(emulator) -> str:
    name = create_tuned_model(emulator.url, "v1beta", tuned_model_body("models/gemini-1.0-pro-001", epochs=5))
    wait_active(emulator.url, "v1beta", name)
    return name


@pytest.fixture(scope="module")
def text_model(emulator) -> str:
    name = create_tuned_model(emulator.url, "v1beta3", tuned_model_body("models/text-bison-001", epochs=3))
    wait_active(emulator.url, "v1beta3", name)
    return name


@pytest.fixture(autouse=True)
def connection(emulator, monkeypatch):
    conn = {"conn_type": "generativelanguage", "host": emulator.url, "password": API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT", json.dumps(conn))


def direct_generate_content(base_url: str, version: str, model: str, prompt: str) -> dict[str, Any]:
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    response = requests.post(
        f"{base_url}/{version}/{model}:generateContent", json=body, headers=HEADERS, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def generate_requests(emulator, suffix: str) -> list[Any]:
    return [entry for entry in emulator.request_log if str(_path(entry)).endswith(suffix)]


def _path(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry.get("path", ""))
    return str(getattr(entry, "path", entry))


# --- generateContent (v1beta, v1) -----------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_generate_content_on_the_tuned_model(emulator, gemini_model, api_version):
    op = GenerateContentOperator(
        task_id="infer", model=gemini_model, prompts=["LXIII", "六"], api_version=api_version
    )
    out = op.execute({})

    assert [r["prompt"] for r in out["results"]] == ["LXIII", "六"]
    for result in out["results"]:
        direct = direct_generate_content(emulator.url, api_version, gemini_model, result["prompt"])
        candidate = direct["candidates"][0]
        assert result["text"] == "".join(p["text"] for p in candidate["content"]["parts"])
        assert result["text"]
        assert result["finish_reason"] == candidate.get("finishReason")
        assert result["safety_ratings"] == candidate.get("safetyRatings", [])
        assert result["error"] is None
        if "usageMetadata" in direct:
            assert result["usage"]["total_tokens"] == direct["usageMetadata"].get("totalTokenCount", 0)
    assert out["api_version"] == api_version
    assert (out["count"], out["succeeded"], out["failed"]) == (2, 2, 0)
    json.dumps(out)


def test_bad_settings_send_no_request(emulator, gemini_model):
    emulator.clear_request_log()
    op = GenerateContentOperator(
        task_id="bad", model=gemini_model, prompts=["1"], temperature=2.5, stop_sequences=["a"] * 6
    )
    with pytest.raises(AirflowFailException, match=r"temperature must be >= 0 and <= 2, got 2\.5") as info:
        op.execute({})
    assert isinstance(info.value.__cause__, InvalidInputError)
    assert emulator.request_log == []


def test_safety_settings_and_generation_config_are_accepted_by_the_emulator(emulator, gemini_model):
    op = GenerateContentOperator(
        task_id="configured",
        model=gemini_model,
        prompts="twenty two",
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_output_tokens=1,
        stop_sequences=["\n"],
        safety_settings=[{"category": "HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
        system_instruction="Answer with the next number.",
    )
    (result,) = op.execute({})["results"]
    # The emulator answers "twenty three" for this training prompt; maxOutputTokens=1 cuts it.
    assert result["text"] == "twenty"
    assert result["finish_reason"] == "MAX_TOKENS"


# --- generateText (v1beta3), as the Korean seed does it -------------------------------------------


def test_generate_text_on_the_tuned_text_bison_model(emulator, text_model):
    op = GenerateTextOperator(
        task_id="infer_text", model=text_model, prompts="4", temperature=1.0, candidate_count=2
    )
    out = op.execute({})
    (result,) = out["results"]
    assert len(result["candidates"]) == 2
    assert all(isinstance(c, str) for c in result["candidates"])
    assert result["text"] == result["candidates"][0]
    assert result["usage"] is None
    assert out["api_version"] == "v1beta3"


# --- a batch with bounded concurrency -------------------------------------------------------------


def test_a_batch_of_50_prompts_with_concurrency_8_keeps_order(emulator, gemini_model, tmp_path):
    prompts = [str(n) for n in range(1, 51)]
    before = len(generate_requests(emulator, ":generateContent"))
    op = GenerateContentOperator(task_id="batch", model=gemini_model, prompts=prompts, concurrency=8)
    out = op.execute({})

    assert out["count"] == 50
    assert out["succeeded"] == 50
    assert [r["prompt"] for r in out["results"]] == prompts
    assert [r["index"] for r in out["results"]] == list(range(50))
    assert len(generate_requests(emulator, ":generateContent")) - before == 50
    # Each answer is the emulator's answer to that very prompt (not a neighbour's).
    for n in (1, 25, 50):
        direct = direct_generate_content(emulator.url, "v1beta", gemini_model, str(n))
        assert out["results"][n - 1]["text"] == direct["candidates"][0]["content"]["parts"][0]["text"]


def test_a_batch_to_a_jsonl_file(emulator, gemini_model, tmp_path):
    target = tmp_path / "results.jsonl"
    prompts = [str(n) for n in range(10)]
    op = GenerateContentOperator(
        task_id="batch_file", model=gemini_model, prompts=prompts, output_uri=f"file://{target}"
    )
    out = op.execute({})
    assert out["output_uri"] == f"file://{target}"
    assert "results" not in out
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == prompts
    assert all(r["text"] for r in rows)


# --- evaluation on the training examples ----------------------------------------------------------


def test_evaluation_on_the_training_examples(emulator, gemini_model):
    prompts = [{"prompt": i, "expected": o} for i, o in SEED_EXAMPLES]
    op = GenerateContentOperator(
        task_id="evaluate", model=gemini_model, prompts=prompts, expected_field="expected", min_score=0.5
    )
    out = op.execute({})
    evaluation = out["evaluation"]

    # Recompute both scores from what the emulator actually answered.
    answers = [direct_generate_content(emulator.url, "v1beta", gemini_model, i) for i, _ in SEED_EXAMPLES]
    texts = ["".join(p["text"] for p in a["candidates"][0]["content"]["parts"]) for a in answers]
    exact = sum(t == o for t, (_, o) in zip(texts, SEED_EXAMPLES, strict=True))
    assert [r["text"] for r in out["results"]] == texts
    assert evaluation["total"] == 15
    assert evaluation["exact_matches"] == exact
    assert evaluation["exact"] == exact / 15
    assert evaluation["normalized"] >= evaluation["exact"]
    # The emulator answers from its training data: most training prompts come back right.
    assert evaluation["normalized"] > 0.5


def test_min_score_above_the_result_fails_with_the_numbers(emulator, gemini_model):
    prompts = [{"prompt": i, "expected": o + " (wrong on purpose)"} for i, o in SEED_EXAMPLES[:4]]
    pushed: dict[str, Any] = {}

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pushed[key] = value

    op = GenerateContentOperator(
        task_id="evaluate_low", model=gemini_model, prompts=prompts, expected_field="expected", min_score=0.5
    )
    with pytest.raises(
        EvaluationBelowThresholdError, match=r"normalized score 0\.0000 \(0/4\) is below min_score"
    ):
        op.execute({"ti": TI()})
    assert pushed["return_value"]["evaluation"]["total"] == 4
    assert len(pushed["return_value"]["results"]) == 4


# --- rate limit over real HTTP --------------------------------------------------------------------


def test_requests_per_minute_holds_over_real_http(emulator, gemini_model):
    """A fake clock (its wait moves time) stands in for real waiting; the requests are real."""
    now = [0.0]
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            return now[0]

    def wait(seconds: float) -> None:
        with lock:
            now[0] += seconds

    starts: list[float] = []

    class RecordingLimiter(SlidingWindowRateLimiter):
        def acquire(self) -> float:
            t = super().acquire()
            with lock:
                starts.append(t)
            return t

    op = GenerateContentOperator(
        task_id="limited",
        model=gemini_model,
        prompts=[str(n) for n in range(12)],
        requests_per_minute=5,
        concurrency=4,
    )
    op.make_limiter = lambda: RecordingLimiter(5, 60.0, clock=clock, wait=wait)
    out = op.execute({})

    assert out["succeeded"] == 12
    # Every HTTP request went through the limiter (the model-state GET included): 1 + 12 starts.
    assert len(starts) == 13
    starts.sort()
    assert max(sum(1 for s in starts if t - 60 < s <= t) for t in starts) == 5
    assert starts[-1] >= 120  # 13 starts at 5 per minute need at least two full windows


def test_the_hooks_retries_count_against_the_rate_limit(emulator, gemini_model):
    """Seeded 429s (Retry-After: 0) on generateContent: every attempt, retries included, takes a slot."""
    now = [0.0]
    lock = threading.Lock()
    starts: list[float] = []

    def clock() -> float:
        with lock:
            return now[0]

    def wait(seconds: float) -> None:
        with lock:
            now[0] += seconds

    class RecordingLimiter(SlidingWindowRateLimiter):
        def acquire(self) -> float:
            t = super().acquire()
            with lock:
                starts.append(t)
            return t

    emulator.set_faults(match=f"/v1beta/{gemini_model}:generateContent", error_429=0.4, retry_after=0, seed=3)
    emulator.clear_request_log()
    try:
        op = GenerateContentOperator(
            task_id="limited_retries",
            model=gemini_model,
            prompts=[str(n) for n in range(10)],
            requests_per_minute=4,
            concurrency=3,
        )
        op.make_limiter = lambda: RecordingLimiter(4, 60.0, clock=clock, wait=wait)
        out = op.execute({})
    finally:
        emulator.set_faults()
    log = emulator.request_log
    throttled = [e for e in log if e["status"] == 429]

    assert out["succeeded"] == 10
    assert throttled, "the seeded fault plan should have throttled some calls"
    assert len(starts) == len(log)  # one limiter slot per HTTP request the emulator saw
    starts.sort()
    assert max(sum(1 for s in starts if t - 60 < s <= t) for t in starts) == 4


def test_continue_on_error_against_real_503s(emulator, gemini_model):
    emulator.set_faults(match=f"/v1beta/{gemini_model}:generateContent", error_503=1.0, retry_after=0, seed=1)
    try:
        op = GenerateContentOperator(
            task_id="unavailable", model=gemini_model, prompts=["1", "3"], continue_on_error=True
        )
        out = op.execute({})
        assert (out["succeeded"], out["failed"]) == (0, 2)
        for result in out["results"]:
            assert result["text"] is None
            assert result["error"]["type"] == "ServerError"
            assert result["error"]["http_status"] == 503
            assert result["error"]["status"] == "UNAVAILABLE"

        op = GenerateContentOperator(task_id="unavailable_2", model=gemini_model, prompts=["1", "3"])
        with pytest.raises(ServerError, match="503 UNAVAILABLE"):
            op.execute({})
    finally:
        emulator.set_faults()


# --- a model that is still tuning -----------------------------------------------------------------


def test_a_creating_model_fails_clearly(emulator):
    # 15 examples x 100 epochs / batch 1 = 1500 steps: still CREATING during this test.
    name = create_tuned_model(
        emulator.url, "v1beta", tuned_model_body("models/gemini-1.0-pro-001", epochs=100, batch_size=1)
    )
    before = len(generate_requests(emulator, ":generateContent"))
    op = GenerateContentOperator(task_id="too_early", model=name, prompts=["1", "2"])
    with pytest.raises(InvalidInputError, match=rf"{name} is CREATING, not ACTIVE"):
        op.execute({})
    assert len(generate_requests(emulator, ":generateContent")) == before  # nothing was generated

    # Without the state check, the API's own error fails the task.
    op = GenerateContentOperator(task_id="too_early_2", model=name, prompts=["1"], check_model_state=False)
    with pytest.raises(
        InvalidArgumentError, match=r"400 FAILED_PRECONDITION: .*not ready for inference.*CREATING"
    ):
        op.execute({})


# --- templating: inline prompts are sent as they are, a path or a single prompt is rendered -----------

JINJA_PROMPTS = ["Say {{ ds }} back", "{% for x in y %}{{ x }}{% endfor %}", "{# kept #}"]


def rendered_context() -> dict[str, Any]:
    """A context with what the templates here use, for Airflow's own rendering."""
    return {"ds": "2024-05-01", "ds_nodash": "20240501", "run_id": "manual__2024-05-01"}


def sent_prompts(emulator, suffix: str, since: int) -> list[str]:
    """The prompt texts the emulator received after the first ``since`` requests, in order."""
    texts = []
    for entry in emulator.request_log[since:]:
        if str(_path(entry)).endswith(suffix):
            body = json.loads(entry["body"])
            texts.append(
                body["contents"][0]["parts"][0]["text"] if "contents" in body else body["prompt"]["text"]
            )
    return texts


@pytest.mark.parametrize(
    "prompts", [JINJA_PROMPTS, json.dumps(JINJA_PROMPTS), json.dumps({"prompts": JINJA_PROMPTS})]
)
def test_inline_prompts_reach_the_api_byte_for_byte(emulator, gemini_model, prompts):
    op = GenerateContentOperator(task_id="infer", model=gemini_model, prompts=prompts, concurrency=1)
    since = len(emulator.request_log)
    op.render_template_fields(rendered_context())
    out = op.execute({})
    assert [r["prompt"] for r in out["results"]] == JINJA_PROMPTS
    assert sent_prompts(emulator, ":generateContent", since) == JINJA_PROMPTS


def test_a_prompts_path_and_a_single_prompt_are_still_rendered(emulator, text_model, tmp_path):
    (tmp_path / "2024-05-01.jsonl").write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in JINJA_PROMPTS), encoding="utf-8"
    )
    from_file = GenerateTextOperator(
        task_id="infer", model=text_model, prompts=f"{tmp_path}/{{{{ ds }}}}.jsonl", concurrency=1
    )
    since = len(emulator.request_log)
    from_file.render_template_fields(rendered_context())
    from_file.execute({})
    assert sent_prompts(emulator, ":generateText", since) == JINJA_PROMPTS  # the file's text is data

    one = GenerateTextOperator(task_id="infer", model=text_model, prompts="What day is {{ ds }}?")
    since = len(emulator.request_log)
    one.render_template_fields(rendered_context())
    one.execute({})
    assert sent_prompts(emulator, ":generateText", since) == ["What day is 2024-05-01?"]
