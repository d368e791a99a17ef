"""Inference on tuned and base models: deterministic answers from the training examples,
candidateCount, maxOutputTokens, stopSequences, streaming, token counts, and Status errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.emulator.emulator_support import Api, FakeClock
from tuning_api_emulator.inference import count_tokens

EXAMPLES = [
    {"textInput": "one", "output": "two"},
    {"textInput": "three", "output": "four"},
    {"textInput": "seven", "output": "eight words make a long answer here ok"},
    {"textInput": "ninety nine", "output": "one hundred"},
]


def _tuned(api: Api, clock: FakeClock, model_id: str, base: str, version: str) -> str:
    body = {
        "baseModel": base,
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 4},
            "trainingData": {"examples": {"examples": EXAMPLES}},
        },
    }
    api.post(f"/{version}/tunedModels", body, params={"tunedModelId": model_id})
    clock.advance(10)
    return f"tunedModels/{model_id}"


@pytest.fixture
def gemini(api: Api, clock: FakeClock) -> str:
    return _tuned(api, clock, "gemini-tuned", "models/gemini-1.5-flash-001-tuning", "v1beta")


@pytest.fixture
def palm(api: Api, clock: FakeClock) -> str:
    return _tuned(api, clock, "palm-tuned", "models/text-bison-001", "v1beta3")


def _content(text: str, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if config:
        body["generationConfig"] = config
    return body


def _texts(reply: dict[str, Any]) -> list[str]:
    return ["".join(p["text"] for p in c["content"].get("parts", [])) for c in reply["candidates"]]


def test_answers_come_from_the_most_similar_example(api: Api, gemini: str) -> None:
    assert _texts(api.post(f"/v1beta/{gemini}:generateContent", _content("three")))[0] == "four"
    assert _texts(api.post(f"/v1/{gemini}:generateContent", _content("ninety-nine")))[0] == "one hundred"
    first = api.post(f"/v1beta/{gemini}:generateContent", _content("LXIII"))
    assert first == api.post(f"/v1beta/{gemini}:generateContent", _content("LXIII"))  # deterministic


def test_candidate_count_and_usage(api: Api, gemini: str) -> None:
    reply = api.post(f"/v1beta/{gemini}:generateContent", _content("one", candidateCount=3, temperature=1.0))
    assert [c["index"] for c in reply["candidates"]] == [0, 1, 2]
    texts = _texts(reply)
    assert texts[0] == "two"
    assert len(set(texts)) == 3
    usage = reply["usageMetadata"]
    assert usage["promptTokenCount"] == 1
    assert usage["candidatesTokenCount"] == sum(count_tokens(t) for t in texts)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert reply["modelVersion"] == gemini
    for bad in (0, 9):
        error = api.error(
            "POST", f"/v1beta/{gemini}:generateContent", 400, json=_content("one", candidateCount=bad)
        )
        assert "candidate_count" in error["message"]


def test_max_output_tokens_and_stop_sequences(api: Api, gemini: str) -> None:
    reply = api.post(f"/v1beta/{gemini}:generateContent", _content("seven", maxOutputTokens=3))
    assert _texts(reply) == ["eight words make"]
    assert reply["candidates"][0]["finishReason"] == "MAX_TOKENS"
    reply = api.post(f"/v1beta/{gemini}:generateContent", _content("seven", stopSequences=[" long"]))
    assert _texts(reply) == ["eight words make a"]
    assert reply["candidates"][0]["finishReason"] == "STOP"
    error = api.error(
        "POST", f"/v1beta/{gemini}:generateContent", 400, json=_content("seven", stopSequences=list("abcdef"))
    )
    assert "stop_sequences" in error["message"]
    assert (
        "max_output_tokens"
        in api.error("POST", f"/v1beta/{gemini}:generateContent", 400, json=_content("x", maxOutputTokens=0))[
            "message"
        ]
    )
    assert (
        "temperature"
        in api.error("POST", f"/v1beta/{gemini}:generateContent", 400, json=_content("x", temperature=2.5))[
            "message"
        ]
    )


def test_request_checks(api: Api, gemini: str) -> None:
    error = api.error("POST", f"/v1beta/{gemini}:generateContent", 400, json={})
    assert error["message"] == "* GenerateContentRequest.contents: contents is not specified\n"
    error = api.error("POST", f"/v1beta/{gemini}:generateContent", 400, json={"contents": [{"role": "user"}]})
    assert "contents.parts must not be empty" in error["message"]
    error = api.error(
        "POST", f"/v1beta/{gemini}:generateContent", 400, json={"contents": [{"parts": [{"txt": "x"}]}]}
    )
    assert 'Unknown name "txt"' in error["message"]
    settings = [{"category": "HARM_CATEGORY_TOXICITY", "threshold": "BLOCK_NONE"}]
    error = api.error(
        "POST", f"/v1beta/{gemini}:generateContent", 400, json={**_content("x"), "safetySettings": settings}
    )
    assert "HARM_CATEGORY_TOXICITY" in error["message"]
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}] * 2
    assert (
        "at most one"
        in api.error(
            "POST",
            f"/v1beta/{gemini}:generateContent",
            400,
            json={**_content("x"), "safetySettings": settings},
        )["message"]
    )
    ok = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}]
    api.post(
        f"/v1beta/{gemini}:generateContent",
        {**_content("one"), "safetySettings": ok, "systemInstruction": {"parts": [{"text": "be brief"}]}},
    )


def test_generate_text(api: Api, palm: str) -> None:
    reply = api.post(
        f"/v1beta3/{palm}:generateText",
        {"prompt": {"text": "three"}, "temperature": 1.0, "candidate_count": 2},
    )
    assert [c["output"] for c in reply["candidates"]] == [
        "four",
        EXAMPLES[2]["output"],
    ]  # "seven" is next closest
    assert len(reply["candidates"][0]["safetyRatings"]) == 6
    beta = api.post(f"/v1beta/{palm}:generateText", {"prompt": {"text": "three"}})
    assert [c["output"] for c in beta["candidates"]] == ["four"]
    cut = api.post(f"/v1beta3/{palm}:generateText", {"prompt": {"text": "seven"}, "maxOutputTokens": 2})
    assert cut["candidates"][0]["output"] == "eight words"
    assert "prompt" in api.error("POST", f"/v1beta3/{palm}:generateText", 400, json={})["message"]
    assert (
        "candidate_count"
        in api.error(
            "POST", f"/v1beta3/{palm}:generateText", 400, json={"prompt": {"text": "a"}, "candidateCount": 9}
        )["message"]
    )
    assert (
        "temperature"
        in api.error(
            "POST", f"/v1beta3/{palm}:generateText", 400, json={"prompt": {"text": "a"}, "temperature": 1.5}
        )["message"]
    )


def test_wrong_method_for_the_model(api: Api, gemini: str, palm: str) -> None:
    error = api.error("POST", f"/v1beta/{palm}:generateContent", 404, json=_content("x"))
    assert "is not supported for generateContent" in error["message"]
    error = api.error("POST", f"/v1beta/{gemini}:generateText", 404, json={"prompt": {"text": "x"}})
    assert "is not supported for generateText" in error["message"]
    assert (
        api.error("POST", "/v1beta/models/text-bison-001:generateContent", 404, json=_content("x"))["status"]
        == "NOT_FOUND"
    )
    # v1beta3 has no generateContent at all; v1 has no generateText.
    assert (
        api.error("POST", f"/v1beta3/{palm}:generateContent", 404, json=_content("x"))["message"]
        == "Method not found."
    )
    assert (
        api.error("POST", f"/v1/{palm}:generateText", 404, json={"prompt": {"text": "x"}})["message"]
        == "Method not found."
    )


def test_creating_and_failed_models_answer_failed_precondition(api: Api, clock: FakeClock) -> None:
    body = {
        "baseModel": "models/gemini-1.0-pro-001",
        "tuningTask": {"trainingData": {"examples": {"examples": EXAMPLES}}},
    }
    api.post("/v1beta/tunedModels", body, params={"tunedModelId": "busy"})
    error = api.error("POST", "/v1beta/tunedModels/busy:generateContent", 400, json=_content("one"))
    assert error["status"] == "FAILED_PRECONDITION"
    assert "CREATING" in error["message"]
    api.post(
        "/v1beta/tunedModels",
        {**body, "description": "emulator:fail-at=0"},
        params={"tunedModelId": "broken"},
    )
    clock.advance(1)
    error = api.error("POST", "/v1beta/tunedModels/broken:generateContent", 400, json=_content("one"))
    assert (error["status"], "FAILED" in error["message"]) == ("FAILED_PRECONDITION", True)
    assert (
        api.error("POST", "/v1beta/tunedModels/absent:generateContent", 404, json=_content("one"))["status"]
        == "NOT_FOUND"
    )


def test_base_models_answer(api: Api) -> None:
    reply = api.post(
        "/v1beta/models/gemini-1.5-flash-001:generateContent", _content("hello there", candidateCount=2)
    )
    texts = _texts(reply)
    assert texts[0] == "[gemini-1.5-flash-001] hello there"
    assert len(set(texts)) == 2
    assert (
        api.post("/v1/models/gemini-1.0-pro-001:generateContent", _content("hi"))["candidates"][0][
            "finishReason"
        ]
        == "STOP"
    )
    text = api.post("/v1beta3/models/text-bison-001:generateText", {"prompt": {"text": "hi"}})
    assert text["candidates"][0]["output"] == "[text-bison-001] hi"


def test_token_counts(api: Api) -> None:
    assert api.post("/v1beta/models/gemini-1.0-pro-001:countTokens", _content("one, two three")) == {
        "totalTokens": 4
    }
    inner = {"generateContentRequest": {"model": "models/gemini-1.0-pro-001", **_content("a b")}}
    assert api.post("/v1/models/gemini-1.0-pro-001:countTokens", inner) == {"totalTokens": 2}
    both = {**_content("a"), **inner}
    assert (
        api.error("POST", "/v1beta/models/gemini-1.0-pro-001:countTokens", 400, json=both)["status"]
        == "INVALID_ARGUMENT"
    )
    assert api.post("/v1beta3/models/text-bison-001:countTextTokens", {"prompt": {"text": "1,001 六"}}) == {
        "tokenCount": 4
    }
    assert (
        api.error("POST", "/v1beta/models/text-bison-001:countTokens", 404, json=_content("a"))["status"]
        == "NOT_FOUND"
    )
    assert (
        api.error("POST", "/v1beta/tunedModels/x:countTokens", 404, json=_content("a"))["message"]
        == "Method not found."
    )


def test_stream_generate_content(api: Api, gemini: str) -> None:
    response = api.request("POST", f"/v1beta/{gemini}:streamGenerateContent", json=_content("seven"))
    chunks = response.json()
    assert isinstance(chunks, list)
    assert len(chunks) >= 2
    assert "".join(_texts(chunk)[0] for chunk in chunks) == EXAMPLES[2]["output"]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    sse = api.request(
        "POST", f"/v1/{gemini}:streamGenerateContent", params={"alt": "sse"}, json=_content("seven")
    )
    assert sse.headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in sse.text.split("\r\n\r\n") if line.startswith("data: ")]
    assert events == chunks


def test_int_enum_encoding(api: Api, gemini: str) -> None:
    """google-api-core REST transports send $alt=json;enum-encoding=int and expect numbers back."""
    reply = api.post(
        f"/v1beta/{gemini}:generateContent", _content("one"), params={"$alt": "json;enum-encoding=int"}
    )
    candidate = reply["candidates"][0]
    assert candidate["finishReason"] == 1
    assert [r["category"] for r in candidate["safetyRatings"]] == [9, 8, 7, 10]
    assert candidate["content"]["role"] == "model"  # a string field, not an enum
    model = api.get(f"/v1beta/{gemini}", params={"$alt": "json;enum-encoding=int"})
    assert model["state"] == 2
    assert api.get(f"/v1beta/{gemini}", params={"alt": "json"})["state"] == "ACTIVE"
    assert api.error("GET", f"/v1beta/{gemini}", 400, params={"alt": "proto"})["status"] == "INVALID_ARGUMENT"
    compact = api.request("GET", f"/v1beta/{gemini}", params={"prettyPrint": "false"}).text
    assert "\n" not in compact
