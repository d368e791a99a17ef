"""Deterministic inference: ``generateContent``, ``streamGenerateContent``, ``generateText`` and token counts.

The emulator tests pipelines, not model quality. A tuned model answers with the ``output`` of its
training example whose ``textInput`` is most similar to the prompt (``difflib`` ratio, ties broken
by example order); candidate ``i`` is the ``i``-th most similar example. A base model answers with
an echo of the prompt. Tokens are counted as runs of word characters plus each other non-space
character (so ``"1,001"`` is 3 tokens); ``maxOutputTokens`` truncates to that many tokens
(``finishReason`` ``MAX_TOKENS``) and a stop sequence cuts the answer before it (``STOP``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from tuning_api_emulator.errors import bad_request
from tuning_api_emulator.schema import GEMINI_CATEGORIES, PALM_CATEGORIES

_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5
_GEMINI_SETTING_CATEGORIES = (*GEMINI_CATEGORIES, "HARM_CATEGORY_CIVIC_INTEGRITY")


@dataclass(frozen=True)
class Target:
    """The model a generation call addresses.

    :param name: ``models/...`` or ``tunedModels/...``.
    :param examples: a tuned model's training examples; ``None`` for a base model.
    :param output_token_limit: the default ``maxOutputTokens``.
    :param model_version: what ``modelVersion`` reports.
    """

    name: str
    examples: list[dict[str, str]] | None
    output_token_limit: int
    model_version: str


def count_tokens(text: str) -> int:
    """The emulator's token count of ``text``."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut after ``limit`` tokens, and whether it was cut."""
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= limit:
        return text, False
    return (text[: matches[limit - 1].end()] if limit > 0 else ""), True


def ranked_outputs(prompt: str, examples: list[dict[str, str]]) -> list[str]:
    """Training outputs, most similar ``textInput`` first."""
    scored = [
        (-difflib.SequenceMatcher(None, prompt, example["textInput"]).ratio(), index, example["output"])
        for index, example in enumerate(examples)
    ]
    scored.sort()
    return [output for _, _, output in scored]


def answers(target: Target, prompt: str, count: int) -> list[str]:
    """``count`` deterministic answers to ``prompt``."""
    if target.examples:
        ranked = ranked_outputs(prompt, target.examples)
        return [ranked[i % len(ranked)] for i in range(count)]
    echo = f"[{target.name.split('/', 1)[-1]}] {prompt}".strip()
    return [echo if i == 0 else f"{echo} ({i + 1})" for i in range(count)]


def _finish(text: str, stops: list[str], max_tokens: int) -> tuple[str, str]:
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    text, cut = truncate_tokens(text, max_tokens)
    return text, "MAX_TOKENS" if cut else "STOP"


def _ratings(categories: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"category": category, "probability": "NEGLIGIBLE"} for category in categories]


def _check_common(
    prefix: str,
    *,
    candidate_count: int | None,
    stop_sequences: list[str],
    max_output_tokens: int | None,
    temperature: float | None,
    max_temperature: float,
    top_p: float | None,
    top_k: int | None,
) -> None:
    if candidate_count is not None and not 1 <= candidate_count <= MAX_CANDIDATES:
        raise bad_request(
            f"* {prefix}.candidate_count: must be in [1, {MAX_CANDIDATES}], got {candidate_count}\n",
            f"{prefix}.candidate_count",
        )
    if len(stop_sequences) > MAX_STOP_SEQUENCES:
        raise bad_request(
            f"* {prefix}.stop_sequences: at most {MAX_STOP_SEQUENCES} stop sequences are allowed, "
            f"got {len(stop_sequences)}\n",
            f"{prefix}.stop_sequences",
        )
    if max_output_tokens is not None and max_output_tokens < 1:
        raise bad_request(
            f"* {prefix}.max_output_tokens: must be positive, got {max_output_tokens}\n",
            f"{prefix}.max_output_tokens",
        )
    if temperature is not None and not 0.0 <= temperature <= max_temperature:
        raise bad_request(
            f"* {prefix}.temperature: must be in [0.0, {max_temperature}], got {temperature}\n",
            f"{prefix}.temperature",
        )
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise bad_request(f"* {prefix}.top_p: must be in [0.0, 1.0], got {top_p}\n", f"{prefix}.top_p")
    if top_k is not None and top_k < 0:
        raise bad_request(f"* {prefix}.top_k: must not be negative, got {top_k}\n", f"{prefix}.top_k")


def _check_safety(prefix: str, settings: list[dict[str, Any]], allowed: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for index, setting in enumerate(settings):
        field = f"{prefix}.safety_settings[{index}]"
        category = setting.get("category", "HARM_CATEGORY_UNSPECIFIED")
        if category not in allowed:
            raise bad_request(f"* {field}.category: {category} is not supported by this model\n", field)
        if category in seen:
            raise bad_request(f"* {field}: at most one safety setting per category ({category})\n", field)
        if setting.get("threshold", "HARM_BLOCK_THRESHOLD_UNSPECIFIED") == "HARM_BLOCK_THRESHOLD_UNSPECIFIED":
            raise bad_request(f"* {field}.threshold: threshold is required\n", field)
        seen.add(category)


def _content_texts(content: dict[str, Any]) -> list[str]:
    return [part["text"] for part in content.get("parts", []) if part.get("text")]


def check_contents(contents: list[dict[str, Any]], prefix: str = "GenerateContentRequest") -> None:
    """Google's checks on ``contents``: present, and every content has parts."""
    if not contents:
        raise bad_request(f"* {prefix}.contents: contents is not specified\n", f"{prefix}.contents")
    for index, content in enumerate(contents):
        if not content.get("parts"):
            field = f"{prefix}.contents[{index}].parts"
            raise bad_request(f"* {field}: contents.parts must not be empty.\n", field)


def prompt_text(contents: list[dict[str, Any]]) -> str:
    """The text the model answers: the last user (or role-less) content's text parts."""
    for content in reversed(contents):
        if content.get("role", "user") == "user":
            return "\n".join(_content_texts(content))
    return "\n".join(_content_texts(contents[-1]))


def prompt_tokens(request: dict[str, Any]) -> int:
    """Tokens of every text part in ``contents`` and ``systemInstruction``."""
    total = sum(
        count_tokens(text) for content in request.get("contents", []) for text in _content_texts(content)
    )
    instruction = request.get("systemInstruction")
    if instruction:
        total += sum(count_tokens(text) for text in _content_texts(instruction))
    return total


def _content_plan(target: Target, request: dict[str, Any], api_version: str) -> list[tuple[str, str]]:
    """Validate a GenerateContentRequest; the (text, finishReason) of each candidate."""
    prefix = "GenerateContentRequest"
    contents = request.get("contents", [])
    check_contents(contents)
    config = request.get("generationConfig", {})
    _check_common(
        f"{prefix}.generation_config",
        candidate_count=config.get("candidateCount"),
        stop_sequences=config.get("stopSequences", []),
        max_output_tokens=config.get("maxOutputTokens"),
        temperature=config.get("temperature"),
        max_temperature=2.0,
        top_p=config.get("topP"),
        top_k=config.get("topK"),
    )
    _check_safety(prefix, request.get("safetySettings", []), _GEMINI_SETTING_CATEGORIES)
    count = config.get("candidateCount") or 1
    max_tokens = config.get("maxOutputTokens") or target.output_token_limit
    stops = config.get("stopSequences", [])
    return [_finish(text, stops, max_tokens) for text in answers(target, prompt_text(contents), count)]


def generate_content(target: Target, request: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A ``GenerateContentResponse`` for a parsed ``GenerateContentRequest``."""
    plan = _content_plan(target, request, api_version)
    candidates = []
    for index, (text, reason) in enumerate(plan):
        candidates.append(
            {
                "content": _model_content(text),
                "finishReason": reason,
                "index": index,
                "safetyRatings": _ratings(GEMINI_CATEGORIES),
            }
        )
    return {
        "candidates": candidates,
        "promptFeedback": {"safetyRatings": _ratings(GEMINI_CATEGORIES)},
        "usageMetadata": _usage(prompt_tokens(request), sum(count_tokens(text) for text, _ in plan)),
        "modelVersion": target.model_version,
    }


def _model_content(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}], "role": "model"} if text else {"role": "model"}


def _usage(prompt: int, candidates: int) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    if prompt:
        usage["promptTokenCount"] = prompt
    if candidates:
        usage["candidatesTokenCount"] = candidates
    if prompt + candidates:
        usage["totalTokenCount"] = prompt + candidates
    return usage


def stream_generate_content(
    target: Target, request: dict[str, Any], api_version: str
) -> list[dict[str, Any]]:
    """The chunks of ``streamGenerateContent``: the answer a few words at a time; the last chunk
    carries ``finishReason`` and the full ``usageMetadata``."""
    plan = _content_plan(target, request, api_version)
    pieces = [re.findall(r"\S+\s*", text) or [""] for text, _ in plan]
    groups = [["".join(words[i : i + 4]) for i in range(0, len(words), 4)] for words in pieces]
    chunk_count = max(len(group) for group in groups)
    tokens_in = prompt_tokens(request)
    chunks: list[dict[str, Any]] = []
    for position in range(chunk_count):
        last = position == chunk_count - 1
        candidates = []
        for index, group in enumerate(groups):
            text = group[position] if position < len(group) else ""
            candidate: dict[str, Any] = {"content": _model_content(text)}
            if last:
                candidate["finishReason"] = plan[index][1]
            candidate["index"] = index
            candidate["safetyRatings"] = _ratings(GEMINI_CATEGORIES)
            candidates.append(candidate)
        chunk: dict[str, Any] = {"candidates": candidates}
        if position == 0:
            chunk["promptFeedback"] = {"safetyRatings": _ratings(GEMINI_CATEGORIES)}
        out_tokens = sum(count_tokens(text) for text, _ in plan) if last else 0
        chunk["usageMetadata"] = _usage(tokens_in, out_tokens)
        chunk["modelVersion"] = target.model_version
        chunks.append(chunk)
    return chunks


def generate_text(target: Target, request: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A ``GenerateTextResponse`` for a parsed ``GenerateTextRequest``."""
    prefix = "GenerateTextRequest"
    prompt = request.get("prompt", {}).get("text", "")
    if not prompt:
        raise bad_request(f"* {prefix}.prompt.text: prompt is required\n", f"{prefix}.prompt.text")
    _check_common(
        prefix,
        candidate_count=request.get("candidateCount"),
        stop_sequences=request.get("stopSequences", []),
        max_output_tokens=request.get("maxOutputTokens"),
        temperature=request.get("temperature"),
        max_temperature=1.0,
        top_p=request.get("topP"),
        top_k=request.get("topK"),
    )
    _check_safety(prefix, request.get("safetySettings", []), PALM_CATEGORIES)
    count = request.get("candidateCount") or 1
    max_tokens = request.get("maxOutputTokens") or target.output_token_limit
    stops = request.get("stopSequences", [])
    candidates = []
    for text in answers(target, prompt, count):
        output, _ = _finish(text, stops, max_tokens)
        candidate: dict[str, Any] = {"output": output} if output else {}
        candidate["safetyRatings"] = _ratings(PALM_CATEGORIES)
        candidates.append(candidate)
    return {"candidates": candidates}


def count_content_tokens(request: dict[str, Any]) -> dict[str, Any]:
    """A ``CountTokensResponse`` for ``contents`` or a whole ``generateContentRequest``."""
    contents = request.get("contents")
    inner = request.get("generateContentRequest")
    if contents and inner:
        raise bad_request(
            "* CountTokensRequest: contents and generate_content_request cannot both be set\n", "contents"
        )
    if inner is not None:
        check_contents(inner.get("contents", []), "CountTokensRequest.generate_content_request")
        total = prompt_tokens(inner)
    else:
        check_contents(contents or [], "CountTokensRequest")
        total = prompt_tokens({"contents": contents})
    return {"totalTokens": total} if total else {}


def count_text_tokens(request: dict[str, Any]) -> dict[str, Any]:
    """A ``CountTextTokensResponse``."""
    text = request.get("prompt", {}).get("text", "")
    if not text:
        raise bad_request("* CountTextTokensRequest.prompt.text: prompt is required\n", "prompt.text")
    return {"tokenCount": count_tokens(text)}
