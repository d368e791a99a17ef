"""Tuning datasets in Cloud Storage: JSONL parsing and the data stats the service reports.

Formats (CONTRACT section 10): supervised, full fine-tuning and distillation examples are
``{"systemInstruction"?, "contents": [...], "tools"?}``; preference examples add ``completions``
(exactly one with score 1 and one with score 0) and their ``contents`` end with a user turn.
Both JSON spellings (``system_instruction``) are accepted. A problem fails the job with a message
naming the dataset URI and the line; examples over the token limit are dropped, not rejected.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from tuning_api_emulator.inference import count_tokens

#: Maximum input plus output training tokens per example (Gemini 2.5 Flash).
MAX_EXAMPLE_TOKENS = 131_072
MAX_VALIDATION_EXAMPLES = 5_000
#: How many examples ``userDatasetExamples`` shows.
SAMPLE_EXAMPLES = 3


class DatasetError(Exception):
    """A dataset the job cannot use; the message names the URI (and line)."""


@dataclass
class Example:
    """One usable training example."""

    contents: list[dict[str, Any]]
    prompt: str  # the last user text before the answer
    answer: str  # the (preferred) model text
    input_tokens: int
    output_tokens: int
    characters: int
    completions: list[dict[str, Any]] = field(default_factory=list)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _texts(content: dict[str, Any]) -> list[str]:
    parts = content.get("parts")
    return (
        [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if isinstance(parts, list)
        else []
    )


def _check_content(content: Any, where: str, roles: tuple[str, ...] = ("user", "model")) -> str:
    if not isinstance(content, dict):
        raise ValueError(f"{where} must be an object")
    role = content.get("role", "user")
    if role not in roles:
        raise ValueError(f'{where}.role must be one of {", ".join(roles)}, got "{role}"')
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"{where}.parts must be a non-empty list")
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not part:
            raise ValueError(f"{where}.parts[{index}] must be a non-empty object")
    return str(role)


def _example(line: Any, kind: str) -> Example:
    if not isinstance(line, dict):
        raise ValueError("each line must be a JSON object")
    if "messages" in line:
        raise ValueError('the "messages" format is retired; use "contents" (and "systemInstruction")')
    contents = line.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ValueError('"contents" must be a non-empty list')
    roles = [_check_content(c, f"contents[{i}]") for i, c in enumerate(contents)]
    instruction = _get(line, "systemInstruction", "system_instruction")
    if instruction is not None:
        _check_content(instruction, "systemInstruction", roles=("user", "model", "system"))
    texts = [" ".join(_texts(c)) for c in contents]
    completions: list[dict[str, Any]] = []
    if kind == "preferenceOptimizationSpec":
        if roles[-1] != "user":
            raise ValueError('"contents" must end with a user turn')
        completions = line.get("completions")  # type: ignore[assignment]
        if not isinstance(completions, list) or len(completions) != 2:
            raise ValueError('"completions" must hold exactly two completions')
        scores = []
        for index, item in enumerate(completions):
            if not isinstance(item, dict) or not isinstance(item.get("completion"), dict):
                raise ValueError(f'completions[{index}] must be {{"score": ..., "completion": {{...}}}}')
            _check_content(item["completion"], f"completions[{index}].completion")
            scores.append(item.get("score"))
        if sorted(scores, key=str) != [0, 1]:
            raise ValueError("the completions must have scores 1 (preferred) and 0 (dispreferred)")
        preferred = next(c for c in completions if c.get("score") == 1)
        answer = " ".join(_texts(preferred["completion"]))
        prompt = texts[-1]
        output_tokens = sum(count_tokens(" ".join(_texts(c["completion"]))) for c in completions)
        input_texts = texts
    elif kind in ("distillationSpec", "reinforcementTuningSpec"):
        answer_at = max((i for i, r in enumerate(roles) if r == "model"), default=None)
        answer = texts[answer_at] if answer_at is not None else ""
        prompt_at = answer_at if answer_at is not None else len(texts)
        prompt = next((texts[i] for i in range(prompt_at - 1, -1, -1) if roles[i] == "user"), "")
        output_tokens = count_tokens(answer)
        input_texts = texts[:prompt_at]
    else:
        if roles[-1] != "model":
            raise ValueError('"contents" must end with a model turn (the answer to train on)')
        answer = texts[-1]
        prompt = next((texts[i] for i in range(len(texts) - 2, -1, -1) if roles[i] == "user"), "")
        output_tokens = count_tokens(answer)
        input_texts = texts[:-1]
    if instruction is not None:
        input_texts = [*input_texts, " ".join(_texts(instruction))]
    input_tokens = sum(count_tokens(text) for text in input_texts)
    characters = sum(len(text) for text in texts) + len(answer if completions else "")
    return Example(contents, prompt, answer, input_tokens, output_tokens, characters, completions)


@dataclass
class Dataset:
    """A parsed dataset: usable examples and the (1-based) lines dropped, with why."""

    examples: list[Example]
    dropped: list[tuple[int, str]]


def parse_jsonl(uri: str, data: bytes, kind: str, role: str = "training") -> Dataset:
    """Parse a JSONL dataset for tuning spec ``kind``.

    :raises DatasetError: on a line that is not valid JSON or not a valid example, naming ``uri``
        and the line; on an empty dataset; on too large a validation dataset.
    """
    try:
        text = data.decode("utf-8-sig")  # a byte order mark is tolerated
    except UnicodeDecodeError as err:
        raise DatasetError(f"The {role} dataset {uri} is not valid UTF-8 (byte {err.start}).") from None
    examples: list[Example] = []
    dropped: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            example = _example(json.loads(raw), kind)
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"Invalid JSON in the {role} dataset {uri} at line {number}: {err.msg} (column {err.colno})."
            ) from None
        except ValueError as err:
            raise DatasetError(
                f"Invalid example in the {role} dataset {uri} at line {number}: {err}."
            ) from None
        if example.input_tokens + example.output_tokens > MAX_EXAMPLE_TOKENS:
            dropped.append((number, f"Example exceeds the limit of {MAX_EXAMPLE_TOKENS} tokens."))
            continue
        examples.append(example)
    if not examples:
        raise DatasetError(f"The {role} dataset {uri} contains no usable examples.")
    if role == "validation" and len(examples) > MAX_VALIDATION_EXAMPLES:
        raise DatasetError(
            f"The validation dataset {uri} has {len(examples)} examples; "
            f"the maximum is {MAX_VALIDATION_EXAMPLES}."
        )
    return Dataset(examples, dropped)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def _nonzero(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (0, 0.0, "0", "", None, [])}


def distribution(values: list[int], *, int_sum: bool, billable_factor: int = 1) -> dict[str, Any]:
    """A token or message distribution; ``int_sum`` renders ``SupervisedTuningDatasetDistribution``
    (int64 ``sum``, double bucket counts), otherwise ``DatasetDistribution`` (double ``sum``, int64
    bucket counts)."""
    low, high = min(values), max(values)
    total = sum(values)
    count = len(values)
    bucket: dict[str, Any] = {"left": float(low), "right": float(high)}
    bucket["count"] = float(count) if int_sum else str(count)
    out: dict[str, Any] = {
        "sum": str(total) if int_sum else float(total),
        "min": float(low),
        "max": float(high),
        "mean": total / count,
        "median": float(statistics.median(values)),
        "p5": float(_percentile([float(v) for v in values], 0.05)),
        "p95": float(_percentile([float(v) for v in values], 0.95)),
        "buckets": [_nonzero(bucket)],
    }
    if int_sum:
        out["billableSum"] = str(total * billable_factor)
    return _nonzero(out)


def data_stats(kind: str, dataset: Dataset, epochs: int, steps: int) -> dict[str, Any]:
    """``tuningDataStats`` for a parsed training dataset."""
    examples = dataset.examples
    inputs = [e.input_tokens for e in examples]
    outputs = [e.output_tokens for e in examples]
    messages = [len(e.contents) for e in examples]
    tokens = sum(inputs) + sum(outputs)
    dropped = {
        "droppedExampleIndices": [str(line) for line, _ in dataset.dropped],
        "droppedExampleReasons": [reason for _, reason in dataset.dropped],
    }
    if kind == "preferenceOptimizationSpec":
        stats = {
            "tuningDatasetExampleCount": str(len(examples)),
            "totalBillableTokenCount": str(tokens * epochs),
            "tuningStepCount": str(steps),
            "userInputTokenDistribution": distribution(inputs, int_sum=False),
            "userOutputTokenDistribution": distribution(outputs, int_sum=False),
            "scoresDistribution": distribution([0, 1] * len(examples), int_sum=False),
            "userDatasetExamples": [
                {"contents": e.contents, "completions": e.completions} for e in examples[:SAMPLE_EXAMPLES]
            ],
            **dropped,
        }
        return {"preferenceOptimizationDataStats": _nonzero(stats)}
    sample = [content for e in examples[:SAMPLE_EXAMPLES] for content in e.contents]
    if kind in ("distillationSpec", "reinforcementTuningSpec"):
        stats = {
            "tuningDatasetExampleCount": str(len(examples)),
            "totalTuningCharacterCount": str(sum(e.characters for e in examples)),
            "totalBillableTokenCount": str(tokens * epochs),
            "tuningStepCount": str(steps),
            "userInputTokenDistribution": distribution(inputs, int_sum=False),
            "userOutputTokenDistribution": distribution(outputs, int_sum=False),
            "userMessagePerExampleDistribution": distribution(messages, int_sum=False),
            "userDatasetExamples": sample,
            **dropped,
        }
        if kind == "distillationSpec":
            return {"distillationDataStats": {"trainingDatasetStats": _nonzero(stats)}}
        return {"reinforcementTuningDataStats": _nonzero(stats)}
    stats = {
        "tuningDatasetExampleCount": str(len(examples)),
        "totalTuningCharacterCount": str(sum(e.characters for e in examples)),
        "totalBillableTokenCount": str(tokens * epochs),
        "tuningStepCount": str(steps),
        "userInputTokenDistribution": distribution(inputs, int_sum=True, billable_factor=epochs),
        "userOutputTokenDistribution": distribution(outputs, int_sum=True, billable_factor=epochs),
        "userMessagePerExampleDistribution": distribution(messages, int_sum=True),
        "userDatasetExamples": sample,
        "totalTruncatedExampleCount": str(len(dataset.dropped)),
        "truncatedExampleIndices": [str(line) for line, _ in dataset.dropped],
        "droppedExampleReasons": [reason for _, reason in dataset.dropped],
    }
    return {"supervisedTuningDataStats": _nonzero(stats)}
