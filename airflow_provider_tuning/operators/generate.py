"""Batch inference on tuned or base models: ``generateContent`` (v1beta, v1) and ``generateText`` (v1beta3).

Both operators share :class:`BaseGenerateOperator`, which

* resolves the prompts (one string, a list, an XCom value, or a ``.jsonl``/``.json``/``.csv`` file or URI
  read through :func:`airflow_provider_tuning.datasets.load_prompts`),
* validates every generation setting before any API call,
* runs the calls over one hook with bounded concurrency (a thread pool) and an optional, exact
  requests-per-minute limit,
* returns plain JSON (per-prompt results in prompt order plus a summary) or writes the results as JSONL
  to ``output_uri`` through :class:`airflow.sdk.ObjectStoragePath`,
* optionally scores the answers against expected outputs (see
  :mod:`airflow_provider_tuning.operators.evaluation`) and fails below ``min_score``.

Failure semantics: invalid input (:class:`~airflow_provider_tuning.exceptions.InvalidInputError`,
:class:`~airflow_provider_tuning.exceptions.TrainingDataError`), detected before any API call, and a
tuned model found FAILED (:class:`~airflow_provider_tuning.exceptions.TuningFailedError`) fail the task
**without retry**: ``AirflowFailException`` with the specific error as ``__cause__``. A tuned model that
is still CREATING, API errors and a score below ``min_score`` keep their own class and are retried as
configured on the task.

Only the connection id travels: no credential is an argument, a template field or part of the XCom.
Heavy modules (the hook, requests, google-auth, the object-storage layer) are imported inside methods.
"""

from __future__ import annotations

import ast
import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_tuning import validation
from airflow_provider_tuning.constants import DEFAULT_CONN_ID, SUPPORTED_EXTENSIONS
from airflow_provider_tuning.exceptions import (
    ApiError,
    EvaluationBelowThresholdError,
    GenerativeLanguageError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TuningFailedError,
    UnauthenticatedError,
    UnexpectedResponseError,
)
from airflow_provider_tuning.hooks.ratelimit import RateLimiterAbortedError, SlidingWindowRateLimiter
from airflow_provider_tuning.operators._templating import keep_inline_data
from airflow_provider_tuning.operators._validation import input_errors_fail_without_retry
from airflow_provider_tuning.operators.evaluation import METRICS, format_table, match_flags, score

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_tuning.datasets import PromptItem
    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

#: File suffixes that make a one-word ``prompts`` string a prompt source rather than a prompt.
PROMPT_FILE_SUFFIXES = (*SUPPORTED_EXTENSIONS, *(f"{ext}.gz" for ext in SUPPORTED_EXTENSIONS))

#: Errors that concern the whole batch (credentials, permissions, a missing model): they fail the task
#: even with ``continue_on_error=True``, instead of being recorded once per prompt.
BATCH_FATAL_ERRORS: tuple[type[Exception], ...] = (UnauthenticatedError, PermissionDeniedError, NotFoundError)

GEMINI_HARM_CATEGORIES = frozenset(
    {
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    }
)
PALM_HARM_CATEGORIES = frozenset(
    {
        "HARM_CATEGORY_DEROGATORY",
        "HARM_CATEGORY_TOXICITY",
        "HARM_CATEGORY_VIOLENCE",
        "HARM_CATEGORY_SEXUAL",
        "HARM_CATEGORY_MEDICAL",
        "HARM_CATEGORY_DANGEROUS",
    }
)
#: ``HARM_BLOCK_THRESHOLD_UNSPECIFIED`` is left out: the API requires a threshold in a SafetySetting.
PALM_BLOCK_THRESHOLDS = frozenset(
    {
        "BLOCK_LOW_AND_ABOVE",
        "BLOCK_MEDIUM_AND_ABOVE",
        "BLOCK_ONLY_HIGH",
        "BLOCK_NONE",
    }
)
GEMINI_BLOCK_THRESHOLDS = PALM_BLOCK_THRESHOLDS | {"OFF"}

MAX_STOP_SEQUENCES = 5
MAX_CANDIDATE_COUNT = 8

#: Above this many results without ``output_uri`` a warning suggests writing JSONL instead of XCom.
LARGE_XCOM_RESULTS = 1000

#: Seconds added to the 60 s window of ``requests_per_minute``, so that the limit also holds where the
#: API counts (requests arrive there a few ms after they start, the first ones of a burst later still).
RATE_LIMIT_MARGIN = 1.0


# --- validation helpers (pure) --------------------------------------------------------------------------


def _stop_sequences(value: Any) -> list[str]:
    """Validate ``stop_sequences``: a string or a list of at most 5 non-empty strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InvalidInputError(f"stop_sequences must be a string or a list of strings, got {value!r}")
    if len(items) > MAX_STOP_SEQUENCES:
        raise InvalidInputError(
            f"stop_sequences may hold at most {MAX_STOP_SEQUENCES} sequences, got {len(items)}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, str) or item == "":
            raise InvalidInputError(f"stop_sequences[{i}] must be a non-empty string, got {item!r}")
        validation.check_text(f"stop_sequences[{i}]", item)
    return list(items)


def _safety_settings(value: Any, *, categories: frozenset[str], thresholds: frozenset[str]) -> list[dict]:
    """Validate ``safety_settings``: a list of ``{category, threshold}``, at most one per category.

    A category may be given without its ``HARM_CATEGORY_`` prefix (``"HARASSMENT"``).
    """
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, (list, tuple)):
        raise InvalidInputError(f"safety_settings must be a list of {{category, threshold}}, got {value!r}")
    out: list[dict] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) != {"category", "threshold"}:
            raise InvalidInputError(
                f"safety_settings[{i}] must be a mapping with exactly the keys 'category' and 'threshold', "
                f"got {item!r}"
            )
        category, threshold = item["category"], item["threshold"]
        if isinstance(category, str) and not category.startswith("HARM_CATEGORY_"):
            category = f"HARM_CATEGORY_{category}"
        if category not in categories:
            raise InvalidInputError(
                f"safety_settings[{i}].category {item['category']!r} is not one of {sorted(categories)}"
            )
        if threshold not in thresholds:
            raise InvalidInputError(
                f"safety_settings[{i}].threshold {threshold!r} is not one of {sorted(thresholds)}"
            )
        if category in seen:
            raise InvalidInputError(f"safety_settings has more than one setting for {category}")
        seen.add(category)
        out.append({"category": category, "threshold": threshold})
    return out


def _looks_like_prompt_source(text: str) -> bool:
    """True when a ``prompts`` string names a file/URI or holds a list, not a prompt.

    A list is a JSON list, a Python-literal list (what Jinja renders from an ``xcom_pull``) or an object
    with a ``"prompts"`` list; a file or URI is one word that contains ``://`` or ends in a supported
    suffix.
    """
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            value = json.loads(stripped)
        except RecursionError:
            return True  # nested too deeply: load_prompts names the problem
        except ValueError:
            try:
                value = ast.literal_eval(stripped)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return False
        return isinstance(value, list) or (isinstance(value, dict) and isinstance(value.get("prompts"), list))
    if not stripped or any(ch.isspace() for ch in stripped):
        return False
    return "://" in stripped or stripped.lower().endswith(PROMPT_FILE_SUFFIXES)


def _error_record(err: BaseException) -> dict[str, Any]:
    """Plain-JSON description of a failed call (messages never carry credentials, see exceptions.py)."""
    record: dict[str, Any] = {"type": type(err).__name__, "message": str(err)}
    if isinstance(err, ApiError):
        record["http_status"] = err.http_status
        record["status"] = err.status
    return record


def _usage(metadata: Any) -> dict[str, int] | None:
    """Token counts of a ``usageMetadata`` (proto3 JSON leaves zero counts out)."""
    if not isinstance(metadata, Mapping):
        return None
    usage = {
        "prompt_tokens": int(metadata.get("promptTokenCount", 0)),
        "output_tokens": int(metadata.get("candidatesTokenCount", 0)),
        "total_tokens": int(metadata.get("totalTokenCount", 0)),
    }
    for key, name in (
        ("cachedContentTokenCount", "cached_tokens"),
        ("thoughtsTokenCount", "thoughts_tokens"),
        ("toolUsePromptTokenCount", "tool_use_prompt_tokens"),
    ):
        if key in metadata:
            usage[name] = int(metadata[key])
    return usage


def _content_text(candidate: Mapping[str, Any]) -> str | None:
    """The text of a ``Candidate``: its text parts joined (thought parts left out); None without content."""
    parts = (candidate.get("content") or {}).get("parts")
    if not isinstance(parts, list):
        return None
    texts = [
        p.get("text", "") for p in parts if isinstance(p, Mapping) and "text" in p and not p.get("thought")
    ]
    return "".join(texts) if texts else None


def parse_generate_content_response(response: Any) -> dict[str, Any]:
    """Reduce a ``GenerateContentResponse`` to the plain-JSON fields of one result.

    :param response: the parsed JSON response.
    :return: ``text`` (first candidate), ``candidates`` (texts), ``finish_reason``, ``safety_ratings``,
        ``block_reason`` (``promptFeedback.blockReason``) and ``usage``.
    """
    if not isinstance(response, Mapping):
        raise UnexpectedResponseError(
            200, None, f"generateContent returned {type(response).__name__}, not an object"
        )
    candidates = [c for c in response.get("candidates") or [] if isinstance(c, Mapping)]
    first = candidates[0] if candidates else {}
    texts = [_content_text(c) for c in candidates]
    return {
        "text": texts[0] if texts else None,
        "candidates": texts,
        "finish_reason": first.get("finishReason"),
        "safety_ratings": list(first.get("safetyRatings") or []),
        "block_reason": (response.get("promptFeedback") or {}).get("blockReason"),
        "usage": _usage(response.get("usageMetadata")),
    }


def parse_generate_text_response(response: Any) -> dict[str, Any]:
    """Reduce a PaLM ``GenerateTextResponse`` to the plain-JSON fields of one result.

    ``generateText`` reports no finish reason and no token usage (both are ``None``); when the prompt was
    filtered, ``block_reason`` is the first ``filters[].reason``.

    :param response: the parsed JSON response.
    """
    if not isinstance(response, Mapping):
        raise UnexpectedResponseError(
            200, None, f"generateText returned {type(response).__name__}, not an object"
        )
    candidates = [c for c in response.get("candidates") or [] if isinstance(c, Mapping)]
    first = candidates[0] if candidates else {}
    # proto3 JSON leaves an empty ``output`` out: a candidate without it answered "".
    texts = [str(c.get("output", "")) for c in candidates]
    filters = [f for f in response.get("filters") or [] if isinstance(f, Mapping)]
    return {
        "text": texts[0] if texts else None,
        "candidates": texts,
        "finish_reason": None,
        "safety_ratings": list(first.get("safetyRatings") or []),
        "block_reason": (filters[0].get("reason") or "BLOCKED_REASON_UNSPECIFIED")
        if filters and not texts
        else None,
        "usage": None,
    }


# --- the operators --------------------------------------------------------------------------------------


class BaseGenerateOperator(BaseOperator):
    """Shared machinery of :class:`GenerateContentOperator` and :class:`GenerateTextOperator`.

    :param model: ``"tunedModels/<id>"`` or ``"models/<id>"``. (templated)
    :param prompts: one prompt (a string), or many: a list of strings or of ``{prompt_field: ...,
        expected_field: ...}`` dicts (an upstream XCom value works: pass ``upstream_task.output``), a
        JSON (or Python-literal) string of such a list, or a path/URI (or
        :class:`~airflow.sdk.ObjectStoragePath`) to a ``.jsonl``, ``.ndjson``, ``.json`` or ``.csv`` file,
        optionally ``.gz``; read by :func:`airflow_provider_tuning.datasets.load_prompts`. A string is
        taken as a file/URI when it is one word that contains ``://`` or ends in one of those suffixes,
        and as a list when it parses as a list (or as an object with a ``"prompts"`` list); otherwise it
        is one prompt. Set ``prompts_kind`` to override the guess. (templated: a path, a URI or a single
        prompt string is rendered and an ``XComArg`` resolves; inline data, a list or a JSON string of
        one, is sent as it is, so ``{{ ... }}`` or ``{% ... %}`` in a prompt of a list stays text)
    :param prompts_kind: ``"auto"`` (the rule above), ``"text"`` (a string is always one prompt) or
        ``"source"`` (a string is always a file, URI or JSON list).
    :param prompt_field: the prompt's field or column in structured prompts. (templated)
    :param expected_field: the expected output's field or column, to evaluate against. (templated)
    :param max_prompt_chars: the longest prompt accepted, in characters.
    :param conn_id: the Airflow connection (type ``generativelanguage``).
    :param api_version: the API version of the calls. (templated)
    :param temperature: sampling temperature. (templated)
    :param top_p: nucleus sampling probability, in [0, 1]. (templated)
    :param top_k: top-k sampling, >= 1. (templated)
    :param candidate_count: answers per prompt, 1 to 8. (templated)
    :param max_output_tokens: the longest answer, in tokens, >= 1. (templated)
    :param stop_sequences: at most 5 strings that end the answer. (templated)
    :param safety_settings: a list of ``{"category": ..., "threshold": ...}``, at most one per category;
        the ``HARM_CATEGORY_`` prefix may be left out. (templated)
    :param concurrency: the most calls in flight at once (default 8), all over one hook and one
        connection pool of at least this size.
    :param requests_per_minute: if set, at most this many HTTP requests start in any sliding 60-second
        window, the hook's retries included.
    :param continue_on_error: record a failed prompt's error in its result and go on, instead of failing
        the task on the first failure (after the hook's retries). Authentication, permission and
        not-found errors fail the task either way.
    :param output_uri: if set, write the results as JSONL (one result per line, in prompt order) to this
        path or URI through ``ObjectStoragePath``, and return only the summary and the URI. (templated)
    :param min_score: fail with :class:`~airflow_provider_tuning.exceptions.EvaluationBelowThresholdError`
        when the ``min_score_metric`` score is below this fraction (0 to 1). The results are written,
        logged and pushed to XCom first.
    :param min_score_metric: ``"normalized"`` (default) or ``"exact"``.
    :param check_model_state: before the batch, read a ``tunedModels/`` model once and fail at once
        unless it is ACTIVE (a CREATING or FAILED model cannot answer).
    """

    template_fields: Sequence[str] = (
        "model",
        "prompts",
        "prompt_field",
        "expected_field",
        "api_version",
        "temperature",
        "top_p",
        "top_k",
        "candidate_count",
        "max_output_tokens",
        "stop_sequences",
        "safety_settings",
        "output_uri",
    )
    ui_color = "#e8f0fe"

    #: The REST method name, for logs and the summary.
    method_name: ClassVar[str] = ""
    #: API versions that serve the method.
    allowed_api_versions: ClassVar[tuple[str, ...]] = ()
    default_api_version: ClassVar[str] = ""
    max_temperature: ClassVar[float] = 1.0
    harm_categories: ClassVar[frozenset[str]] = frozenset()
    block_thresholds: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        model: str,
        prompts: Any,
        prompts_kind: str = "auto",
        prompt_field: str = "prompt",
        expected_field: str | None = None,
        max_prompt_chars: int = 40_000,
        conn_id: str = DEFAULT_CONN_ID,
        api_version: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        candidate_count: int | None = None,
        max_output_tokens: int | None = None,
        stop_sequences: str | Sequence[str] | None = None,
        safety_settings: Sequence[Mapping[str, str]] | None = None,
        concurrency: int = 8,
        requests_per_minute: int | None = None,
        continue_on_error: bool = False,
        output_uri: str | None = None,
        min_score: float | None = None,
        min_score_metric: str = "normalized",
        check_model_state: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.prompts = prompts
        self.prompts_kind = prompts_kind
        self.prompt_field = prompt_field
        self.expected_field = expected_field
        self.max_prompt_chars = max_prompt_chars
        self.conn_id = conn_id
        self.api_version = api_version if api_version is not None else self.default_api_version
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.candidate_count = candidate_count
        self.max_output_tokens = max_output_tokens
        self.stop_sequences = stop_sequences
        self.safety_settings = safety_settings
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.continue_on_error = continue_on_error
        self.output_uri = output_uri
        self.min_score = min_score
        self.min_score_metric = min_score_metric
        self.check_model_state = check_model_state
        # Per-run state, made in execute() (an Event cannot be deep-copied with the operator).
        self._stop: threading.Event | None = None
        self._limiter: SlidingWindowRateLimiter | None = None
        # Arguments that are not templated are checked when the DAG is parsed.
        if prompts_kind not in ("auto", "text", "source"):
            raise InvalidInputError(f"prompts_kind must be 'auto', 'text' or 'source', got {prompts_kind!r}")
        validation.positive_int("concurrency", concurrency)
        validation.positive_int("max_prompt_chars", max_prompt_chars)
        if requests_per_minute is not None:
            validation.positive_int("requests_per_minute", requests_per_minute)
        if min_score is not None:
            validation.number("min_score", min_score, minimum=0.0, maximum=1.0)
        if min_score_metric not in METRICS:
            raise InvalidInputError(
                f"min_score_metric must be one of {list(METRICS)}, got {min_score_metric!r}"
            )

    # -- templating -------------------------------------------------------------------------------------

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: Any
    ) -> None:
        """Render the template fields, except inline ``prompts`` (see ``_templating``)."""
        if parent is self:
            template_fields = keep_inline_data(self, template_fields, ("prompts",), context)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    # -- hooks for subclasses ---------------------------------------------------------------------------

    def build_request(self) -> dict[str, Any]:
        """Validate the (rendered) generation settings; return the keyword arguments of the hook call."""
        raise NotImplementedError

    def call(self, hook: GenerativeLanguageHook, prompt: str, request: Mapping[str, Any]) -> Any:
        """Make one API call for one prompt and return the parsed JSON response."""
        raise NotImplementedError

    def parse_response(self, response: Any) -> dict[str, Any]:
        """Reduce one response to the plain-JSON fields of its result."""
        raise NotImplementedError

    # -- validation ---------------------------------------------------------------------------------------

    def _validate_model_and_version(self) -> None:
        self.model = validation.model_name(self.model)
        if self.api_version not in self.allowed_api_versions:
            raise InvalidInputError(
                f"{type(self).__name__} calls {self.method_name}, which api_version "
                f"{self.api_version!r} does not serve; use one of {list(self.allowed_api_versions)}"
            )

    def _common_settings(self) -> dict[str, Any]:
        """Validate the settings both methods share; keys are the hook's keyword names."""
        settings: dict[str, Any] = {}
        if self.temperature is not None:
            settings["temperature"] = validation.number(
                "temperature", self.temperature, minimum=0.0, maximum=self.max_temperature
            )
        if self.top_p is not None:
            settings["top_p"] = validation.number("top_p", self.top_p, minimum=0.0, maximum=1.0)
        if self.top_k is not None:
            settings["top_k"] = validation.positive_int("top_k", self.top_k)
        if self.candidate_count is not None:
            settings["candidate_count"] = validation.positive_int(
                "candidate_count", self.candidate_count, maximum=MAX_CANDIDATE_COUNT
            )
        if self.max_output_tokens is not None:
            settings["max_output_tokens"] = validation.positive_int(
                "max_output_tokens", self.max_output_tokens
            )
        if self.stop_sequences is not None:
            settings["stop_sequences"] = _stop_sequences(self.stop_sequences)
        if self.safety_settings is not None:
            settings["safety_settings"] = _safety_settings(
                self.safety_settings, categories=self.harm_categories, thresholds=self.block_thresholds
            )
        return settings

    def load_prompt_items(self) -> list[PromptItem]:
        """Resolve ``prompts`` into validated :class:`~airflow_provider_tuning.datasets.PromptItem` s."""
        from airflow_provider_tuning.datasets import PromptItem, load_prompts

        prompts = self.prompts
        if isinstance(prompts, str):
            as_source = self.prompts_kind == "source" or (
                self.prompts_kind == "auto" and _looks_like_prompt_source(prompts)
            )
            if not as_source:
                validation.check_text("prompts", prompts)
                if not prompts.strip():
                    raise InvalidInputError("prompts: the prompt is empty")
                if len(prompts) > self.max_prompt_chars:
                    raise InvalidInputError(
                        f"prompts: the prompt has {len(prompts)} characters, more than max_prompt_chars="
                        f"{self.max_prompt_chars}"
                    )
                return [PromptItem(prompt=prompts)]
        elif prompts is None:
            raise InvalidInputError("prompts is required: a prompt, a list of prompts, or a file or URI")
        elif isinstance(prompts, Mapping):
            raise InvalidInputError(
                "prompts must be a prompt, a list or a file/URI, not a mapping; wrap one item in a list"
            )
        elif isinstance(prompts, tuple):
            prompts = list(prompts)
        kwargs: dict[str, Any] = {"prompt_field": self.prompt_field, "max_chars": self.max_prompt_chars}
        if self.expected_field:
            kwargs["expected_field"] = self.expected_field
        if isinstance(prompts, os.PathLike):
            prompts = os.fspath(prompts) if not hasattr(prompts, "protocol") else prompts
        return load_prompts(prompts, **kwargs)

    # -- execution ----------------------------------------------------------------------------------------

    def get_hook(self) -> GenerativeLanguageHook:
        """The one hook every call of this task goes through: its pool holds ``concurrency``
        connections and its requests (retries included) pass this run's rate limiter, if any."""
        from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

        return GenerativeLanguageHook(
            conn_id=self.conn_id,
            api_version=self.api_version,
            pool_size=self.concurrency,
            rate_limiter=self._limiter,
        )

    def make_limiter(self) -> SlidingWindowRateLimiter | None:
        """The limiter of ``requests_per_minute`` (one per task run), or ``None`` without a limit."""
        if not self.requests_per_minute:
            return None
        return SlidingWindowRateLimiter(int(self.requests_per_minute), 60.0, margin=RATE_LIMIT_MARGIN)

    @input_errors_fail_without_retry
    def validate_inputs(self) -> tuple[dict[str, Any], list[PromptItem], Any]:
        """Check everything that can be checked without the network, in order; input errors fail the
        task without retry (``AirflowFailException`` with the specific error as ``__cause__``).

        :return: the hook call's keyword arguments, the prompts and the output path (or ``None``).
        """
        self._validate_model_and_version()
        request = self.build_request()
        items = self.load_prompt_items()
        has_expected = any(item.expected is not None for item in items)
        if self.min_score is not None and not has_expected:
            raise InvalidInputError(
                "min_score is set but no prompt has an expected output: set expected_field (and give "
                "records that have it)"
            )
        return request, items, self._output_path()

    def execute(self, context: Context) -> dict[str, Any]:
        # 1. Everything that can be checked without the network, in order.
        request, items, output_path = self.validate_inputs()

        # 2. One hook, one pool, optional rate limit.
        self._stop = threading.Event()
        self._limiter = self.make_limiter()
        hook = self.get_hook()
        try:
            if self.check_model_state:
                self._check_model_ready(hook)
            self.log.info(
                "%s on %s (%s): %d prompt(s), concurrency %d%s",
                self.method_name,
                self.model,
                self.api_version,
                len(items),
                min(self.concurrency, len(items)),
                f", at most {self.requests_per_minute} requests/minute" if self.requests_per_minute else "",
            )
            results = self.run_batch(hook, items, request)
        finally:
            close = getattr(hook, "close", None)
            if callable(close):
                close()  # the pooled connections
            self._stop, self._limiter = None, None

        # 3. Summary, evaluation, output.
        summary = self._summary(results)
        evaluation = summary.get("evaluation")
        if evaluation is not None:
            self.log.info("%s", format_table(results, evaluation))
        if output_path is not None:
            self._write_jsonl(output_path, results)
            output: dict[str, Any] = {"output_uri": str(output_path), **summary}
        else:
            if len(results) > LARGE_XCOM_RESULTS:
                self.log.warning(
                    "Returning %d results through XCom; set output_uri to write them as JSONL instead",
                    len(results),
                )
            output = {**summary, "results": results}
        self.log.info(
            "%s done: %d succeeded, %d failed, %d without text",
            self.method_name,
            summary["succeeded"],
            summary["failed"],
            summary["without_text"],
        )

        if self.min_score is not None and evaluation is not None:
            value = evaluation[self.min_score_metric]
            if value < float(self.min_score):
                self._push_return_value(context, output)
                matches = evaluation[f"{self.min_score_metric}_matches"]
                raise EvaluationBelowThresholdError(
                    f"{self.min_score_metric} score {value:.4f} ({matches}/{evaluation['total']}) is below "
                    f"min_score {float(self.min_score):g}"
                )
        return output

    def run_batch(
        self, hook: GenerativeLanguageHook, items: Sequence[PromptItem], request: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Call the API once per prompt with at most ``concurrency`` calls in flight; keep prompt order.

        On the first failure (unless ``continue_on_error``), calls not yet started are cancelled, the
        calls in flight finish, and the failure is raised.
        """
        results: list[dict[str, Any] | None] = [None] * len(items)
        if not items:
            return []
        if self._stop is None:
            self._stop = threading.Event()
        stop = self._stop
        total = len(items)
        step = max(1, total // 10)
        done = failed = 0

        def work(index: int) -> dict[str, Any]:
            if stop.is_set():
                raise _Cancelled
            try:
                return self.parse_response(self.call(hook, items[index].prompt, request))
            except RateLimiterAbortedError:
                raise _Cancelled from None
            except GenerativeLanguageError as err:
                if self._fails_batch(err):
                    # Stop here, in the worker, so no queued call starts after the failure.
                    self._halt()
                raise

        workers = min(int(self.concurrency), total)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"generate-{self.task_id}") as pool:
            futures: dict[Future[dict[str, Any]], int] = {pool.submit(work, i): i for i in range(total)}
            try:
                for future in as_completed(futures):
                    index = futures[future]
                    try:
                        fields = future.result()
                    except _Cancelled:
                        continue  # the failure that stopped the batch is raised when its future comes up
                    except GenerativeLanguageError as err:
                        if self._fails_batch(err):
                            self.log.error("Prompt #%d failed: %s", index, err)
                            raise
                        self.log.warning("Prompt #%d failed (continue_on_error): %s", index, err)
                        fields = self._failed_fields(err)
                        failed += 1
                    results[index] = self._result(index, items[index], fields)
                    done += 1
                    if done % step == 0 or done == total:
                        self.log.info("%s: %d/%d done (%d failed)", self.method_name, done, total, failed)
            except BaseException:
                self._halt()
                for pending in futures:
                    pending.cancel()
                raise
        if done < total:
            raise RuntimeError(
                f"{self.method_name} batch stopped after {done} of {total} prompts (task killed)"
            )
        return [r for r in results if r is not None]

    def _fails_batch(self, err: BaseException) -> bool:
        """Whether a failed call fails the whole task (always for auth, permission and not-found errors)."""
        return not self.continue_on_error or isinstance(err, BATCH_FATAL_ERRORS)

    def _halt(self) -> None:
        """Stop starting calls: queued ones are skipped and rate-limit waits end."""
        if self._stop is not None:
            self._stop.set()
        if self._limiter is not None:
            self._limiter.abort()

    def on_kill(self) -> None:
        """Stop starting calls (the ones in flight end with their request timeout)."""
        self._halt()

    # -- helpers --------------------------------------------------------------------------------------------

    def _check_model_ready(self, hook: GenerativeLanguageHook) -> None:
        """Fail before the batch when a tuned model is not ACTIVE (one GET; v1 has no tunedModels.get)."""
        if not self.model.startswith("tunedModels/"):
            return
        version = "v1beta" if self.api_version == "v1" else self.api_version
        model = hook.get_tuned_model(self.model, api_version=version)
        state = model.get("state") if isinstance(model, Mapping) else None
        if state == "FAILED":
            # A FAILED model stays FAILED: a retry would fail the same way.
            failed = TuningFailedError(self.model, "the tuned model is FAILED and cannot generate")
            raise AirflowFailException(f"{type(failed).__name__}: {failed}") from failed
        if state not in (None, "ACTIVE", "STATE_UNSPECIFIED"):
            raise InvalidInputError(
                f"{self.model} is {state}, not ACTIVE: it cannot generate yet; wait for the tuning to finish "
                "(for example with TunedModelSensor or CreateTunedModelOperator(wait_for_completion=True))"
            )

    def _failed_fields(self, err: BaseException) -> dict[str, Any]:
        return {
            "text": None,
            "candidates": [],
            "finish_reason": None,
            "safety_ratings": [],
            "block_reason": None,
            "usage": None,
            "error": _error_record(err),
        }

    @staticmethod
    def _result(index: int, item: PromptItem, fields: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"index": index, "prompt": item.prompt}
        result.update(fields)
        result.setdefault("error", None)
        if item.expected is not None:
            result["expected"] = item.expected
            result.update(match_flags(result["text"], item.expected))
        return result

    def _summary(self, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        failed = sum(1 for r in results if r.get("error") is not None)
        without_text = sum(1 for r in results if r.get("error") is None and r.get("text") is None)
        usage: dict[str, int] | None = None
        for r in results:
            if r.get("usage"):
                usage = usage or {}
                for key, value in r["usage"].items():
                    usage[key] = usage.get(key, 0) + int(value)
        summary: dict[str, Any] = {
            "model": self.model,
            "api_version": self.api_version,
            "method": self.method_name,
            "count": len(results),
            "succeeded": len(results) - failed,
            "failed": failed,
            "without_text": without_text,
            "usage": usage,
        }
        evaluation = score(results)
        if evaluation is not None:
            summary["evaluation"] = evaluation
        return summary

    def _output_path(self) -> Any:
        """``output_uri`` as an ``ObjectStoragePath`` (checked before any call), or ``None``."""
        if self.output_uri is None or self.output_uri == "":
            return None
        if not isinstance(self.output_uri, (str, os.PathLike)):
            raise InvalidInputError(f"output_uri must be a path or URI string, got {self.output_uri!r}")
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        uri = self.output_uri if isinstance(self.output_uri, str) else os.fspath(self.output_uri)
        # ObjectStoragePath and abspath drop a trailing slash: check the text as given.
        names_folder = uri.endswith(("/", os.sep))
        if "://" not in uri:
            uri = "file://" + os.path.abspath(os.path.expanduser(uri))
        try:
            path = ObjectStoragePath(uri)
        except Exception as err:
            raise InvalidInputError(
                f"output_uri {self.output_uri!r} is not a usable path or URI: {err}"
            ) from err
        if names_folder or str(path).endswith("/"):
            raise InvalidInputError(f"output_uri {self.output_uri!r} names a folder; give a file name")
        return path

    def _write_jsonl(self, path: Any, results: Sequence[Mapping[str, Any]]) -> None:
        if path.protocol in ("file", "local"):
            path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for result in results:
                handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        self.log.info("Wrote %d result(s) to %s", len(results), path)

    @staticmethod
    def _push_return_value(context: Context, value: Any) -> None:
        """Push the output before failing on ``min_score``, so the numbers stay in XCom."""
        ti = context.get("ti") if isinstance(context, Mapping) else None
        if ti is not None and hasattr(ti, "xcom_push"):
            ti.xcom_push(key="return_value", value=value)


class _Cancelled(Exception):
    """A queued call skipped because the batch already failed."""


class GenerateContentOperator(BaseGenerateOperator):
    """Run ``generateContent`` (v1beta or v1) for each prompt on a tuned (``tunedModels/``) or base
    (``models/``) model, as the Gemini tuning quickstart does.

    Each result (in prompt order) is ``{"index", "prompt", "text" (first candidate), "candidates"
    (texts), "finish_reason", "safety_ratings" (first candidate), "block_reason"
    (``promptFeedback.blockReason``), "usage" ({"prompt_tokens", "output_tokens", "total_tokens", ...}),
    "error" (None, or {"type", "message", "http_status", "status"} with continue_on_error)}``, plus
    ``"expected"``, ``"exact_match"`` and ``"normalized_match"`` when the prompt has an expected output.

    The returned XCom is the summary ``{"model", "api_version", "method", "count", "succeeded", "failed",
    "without_text", "usage" (totals), "evaluation" (if expected outputs)}`` plus either ``"results"`` or,
    with ``output_uri``, ``"output_uri"``.

    ``temperature`` is in [0, 2]. Safety categories are the Gemini ones (HARASSMENT, HATE_SPEECH,
    SEXUALLY_EXPLICIT, DANGEROUS_CONTENT, CIVIC_INTEGRITY).

    On **Vertex AI**, give the tuned model's endpoint as ``model``
    (``projects/*/locations/*/endpoints/*``, what ``CreateVertexTuningJobOperator`` returns as
    ``endpoint``): the calls go to ``…/endpoints/*:generateContent`` through ``gcp_conn_id`` (a
    ``google_cloud_platform`` connection), with the same batching, rate limit and evaluation;
    ``api_version`` is then ``v1`` (default) or ``v1beta1``.

    :param system_instruction: a text system instruction (v1beta, or Vertex AI). (templated)
    :param gcp_conn_id: the ``google_cloud_platform`` connection used for a Vertex AI endpoint.

    See :class:`BaseGenerateOperator` for the other parameters.
    """

    template_fields: Sequence[str] = (*BaseGenerateOperator.template_fields, "system_instruction")
    method_name = "generateContent"
    allowed_api_versions = ("v1beta", "v1")
    default_api_version = "v1beta"
    max_temperature = 2.0
    harm_categories = GEMINI_HARM_CATEGORIES
    block_thresholds = GEMINI_BLOCK_THRESHOLDS

    vertex_api_versions = ("v1", "v1beta1")

    def __init__(
        self,
        *,
        system_instruction: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ) -> None:
        self._version_given = kwargs.get("api_version") is not None
        super().__init__(**kwargs)
        self.system_instruction = system_instruction
        self.gcp_conn_id = gcp_conn_id

    @property
    def on_vertex(self) -> bool:
        """Whether ``model`` is a Vertex AI endpoint (``projects/*/locations/*/endpoints/*``)."""
        return isinstance(self.model, str) and self.model.startswith("projects/")

    def _validate_model_and_version(self) -> None:
        if not self.on_vertex:
            super()._validate_model_and_version()
            return
        self.model = validation.cloud_resource_name(self.model, "endpoints", what="model")
        if not self._version_given:  # the model may be a template: the version is chosen once rendered
            self.api_version = "v1"
        if self.api_version not in self.vertex_api_versions:
            raise InvalidInputError(
                f"a Vertex AI endpoint is called with api_version 'v1' or 'v1beta1', got {self.api_version!r}"
            )

    def get_hook(self) -> Any:
        """The Generative Language hook, or for a Vertex AI endpoint the Vertex hook in its region;
        either way one pool of ``concurrency`` connections behind this run's rate limiter."""
        if not self.on_vertex:
            return super().get_hook()
        from airflow_provider_tuning.hooks.vertex import VertexTuningHook

        return VertexTuningHook(
            self.gcp_conn_id,
            location=self.model.split("/")[3],
            api_version=self.api_version,
            pool_size=self.concurrency,
            rate_limiter=self._limiter,
        )

    def build_request(self) -> dict[str, Any]:
        settings = self._common_settings()
        safety = settings.pop("safety_settings", None)
        names = {
            "candidate_count": "candidateCount",
            "stop_sequences": "stopSequences",
            "max_output_tokens": "maxOutputTokens",
            "temperature": "temperature",
            "top_p": "topP",
            "top_k": "topK",
        }
        request: dict[str, Any] = {}
        if settings:
            request["generation_config"] = {names[key]: value for key, value in settings.items()}
        if safety:
            request["safety_settings"] = safety
        if self.system_instruction is not None:
            validation.optional_string("system_instruction", self.system_instruction)
            if not self.system_instruction.strip():
                raise InvalidInputError("system_instruction must be a non-empty string")
            if self.api_version == "v1" and not self.on_vertex:
                raise InvalidInputError(
                    "system_instruction needs api_version 'v1beta' (v1 has no systemInstruction)"
                )
            request["system_instruction"] = {"parts": [{"text": self.system_instruction}]}
        return request

    def call(self, hook: Any, prompt: str, request: Mapping[str, Any]) -> Any:
        contents = [{"role": "user", "parts": [{"text": prompt}]}]
        if self.on_vertex:
            keys = {
                "generation_config": "generationConfig",
                "safety_settings": "safetySettings",
                "system_instruction": "systemInstruction",
            }
            body = {"contents": contents, **{keys[key]: value for key, value in request.items()}}
            return hook.generate_content(self.model, body)
        return hook.generate_content(self.model, contents, api_version=self.api_version, **request)

    def parse_response(self, response: Any) -> dict[str, Any]:
        return parse_generate_content_response(response)


class GenerateTextOperator(BaseGenerateOperator):
    """Run PaLM ``generateText`` (v1beta3, or v1beta) for each prompt, as the PaLM tuning quickstart does
    (``{"prompt": {"text": ...}, "temperature": 1.0, "candidate_count": 2}``).

    Results and the returned XCom have the shape described in :class:`GenerateContentOperator`;
    ``finish_reason`` and ``usage`` are always ``None`` (``generateText`` reports neither), and
    ``block_reason`` is the first ``filters[].reason`` of a prompt that got no candidate.

    ``temperature`` is in [0, 1]. Safety categories are the PaLM ones (DEROGATORY, TOXICITY, VIOLENCE,
    SEXUAL, MEDICAL, DANGEROUS).

    See :class:`BaseGenerateOperator` for the parameters.
    """

    method_name = "generateText"
    allowed_api_versions = ("v1beta3", "v1beta")
    default_api_version = "v1beta3"
    max_temperature = 1.0
    harm_categories = PALM_HARM_CATEGORIES
    block_thresholds = PALM_BLOCK_THRESHOLDS

    def build_request(self) -> dict[str, Any]:
        return self._common_settings()

    def call(self, hook: GenerativeLanguageHook, prompt: str, request: Mapping[str, Any]) -> Any:
        return hook.generate_text(self.model, prompt, api_version=self.api_version, **request)

    def parse_response(self, response: Any) -> dict[str, Any]:
        return parse_generate_text_response(response)
