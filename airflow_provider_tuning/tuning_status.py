"""The state of a tuning job, parsed from an ``Operation`` or a ``TunedModel`` (pure, no I/O).

The trigger, the in-worker wait and the sensor all decide "done / failed / still running" here, so
the three paths cannot drift apart. See CONTRACT.md sections 4 and 10 for the shapes:

* an ``Operation`` (``GET /v1/tunedModels/<id>/operations/<op>``) carries ``metadata``
  (``CreateTunedModelMetadata``: ``tunedModel``, ``totalSteps``, ``completedSteps``,
  ``completedPercent``, ``snapshots``), ``done`` (left out while false) and, once done, ``error``
  (a ``google.rpc.Status``) or ``response`` (the ``TunedModel``);
* a ``TunedModel`` (``GET /{version}/tunedModels/<id>``) carries ``state``
  (``CREATING`` -> ``ACTIVE`` or ``FAILED``) and ``tuningTask.snapshots``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    GenerativeLanguageError,
    TuningCancelledError,
    TuningFailedError,
    TuningTimeoutError,
    UnexpectedResponseError,
    api_error_from_response,
)

State = Literal["CREATING", "ACTIVE", "FAILED", "CANCELLED"]

#: ``google.rpc.Code`` name -> number (code.proto).
RPC_CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

_CANCELLED_CODE = RPC_CODES["CANCELLED"]
_MODEL_STATES = {"CREATING", "ACTIVE", "FAILED"}
_STATES = ("CREATING", "ACTIVE", "FAILED", "CANCELLED")
#: The longest API message an event or an exception carries (events are stored in the metadata DB).
MAX_MESSAGE_CHARS = 1000
_SUMMARY_FIELDS = ("total_steps", "completed_steps", "completed_percent", "epoch", "mean_loss")
_SUMMARY_TEXTS = ("tuned_model", "operation", "phase")


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters (with a marker saying how much was cut).

    :param text: a message.
    :param limit: the longest text kept whole.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def strip_training_data(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of an Operation or TunedModel without ``tuningTask.trainingData`` anywhere.

    The API never echoes training data, but an event or XCom value must stay small and must not
    carry the user's examples even if a server did.

    :param resource: an Operation or TunedModel dict.
    """

    def _clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if key in ("trainingData", "training_data"):
                    continue
                out[key] = _clean(item)
            return out
        if isinstance(value, list):
            return [_clean(item) for item in value]
        return value

    return cast("dict[str, Any]", _clean(resource))


@dataclass(frozen=True)
class Snapshot:
    """One ``TuningSnapshot``: metrics of one training step.

    :param step: the step number.
    :param epoch: the epoch (0 when the API left it out).
    :param mean_loss: the mean loss of the step, if given.
    :param compute_time: the RFC 3339 time of the step, if given.
    """

    step: int
    epoch: int = 0
    mean_loss: float | None = None
    compute_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain JSON (snake_case keys)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "mean_loss": self.mean_loss,
            "compute_time": self.compute_time,
        }


@dataclass(frozen=True)
class DataStats:
    """What the service counted in the training dataset (Vertex AI ``tuningDataStats``).

    :param examples: ``tuningDatasetExampleCount``.
    :param billable_tokens: ``totalBillableTokenCount`` (all epochs).
    :param truncated: ``totalTruncatedExampleCount`` (supervised) or the number of
        ``droppedExampleIndices`` (preference), when the service gave it.
    """

    examples: int | None = None
    billable_tokens: int | None = None
    truncated: int | None = None

    def line(self) -> str:
        """Return the log line, e.g. ``"data stats: 500 examples, 61,250 billable tokens, 0 truncated"``."""
        parts = []
        if self.examples is not None:
            parts.append(f"{self.examples:,} examples")
        if self.billable_tokens is not None:
            parts.append(f"{self.billable_tokens:,} billable tokens")
        parts.append(f"{self.truncated or 0:,} truncated")
        return "data stats: " + ", ".join(parts)

    def to_dict(self) -> dict[str, int | None]:
        """Return the counts as plain JSON."""
        return {
            "examples": self.examples,
            "billable_tokens": self.billable_tokens,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, value: Any) -> DataStats | None:
        """Rebuild the counts of :meth:`to_dict` (``None`` when ``value`` is not such a dict).

        :param value: a dict of :meth:`to_dict`.
        """
        if not isinstance(value, Mapping):
            return None
        counts = {key: value.get(key) for key in ("examples", "billable_tokens", "truncated")}
        ok = {k: v if isinstance(v, int) and not isinstance(v, bool) else None for k, v in counts.items()}
        return cls(**ok) if any(v is not None for v in ok.values()) else None


@dataclass(frozen=True)
class TuningStatus:
    """Where a tuning job stands.

    :param state: ``CREATING``, ``ACTIVE``, ``FAILED`` or ``CANCELLED``.
    :param done: whether the job has finished (successfully or not).
    :param tuned_model: the ``tunedModels/<id>`` name, if known.
    :param operation: the operation name, when parsed from an Operation.
    :param total_steps: ``totalSteps`` of the operation metadata, if known.
    :param completed_steps: steps done so far (the last snapshot's step for a TunedModel).
    :param completed_percent: percent done, if it can be known.
    :param epoch: epoch of the last snapshot.
    :param mean_loss: mean loss of the last snapshot.
    :param snapshots: every snapshot seen.
    :param error_code: ``google.rpc.Code`` number of the operation's error, if any.
    :param error_message: the API's error message, if any.
    :param phase: the service's own state while it runs, when it says more than ``state`` (for
        Vertex AI, e.g. ``RUNNING/TUNING``); shown in the progress line.
    :param data_stats: what the service counted in the dataset (Vertex AI), once it has.
    :param resource: the parsed Operation or TunedModel, without training data.
    """

    state: State
    done: bool
    tuned_model: str | None = None
    operation: str | None = None
    total_steps: int | None = None
    completed_steps: int | None = None
    completed_percent: float | None = None
    epoch: int | None = None
    mean_loss: float | None = None
    snapshots: tuple[Snapshot, ...] = ()
    error_code: int | None = None
    error_message: str | None = None
    phase: str | None = None
    data_stats: DataStats | None = None
    resource: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- parsing ---------------------------------------------------------------------------------

    @classmethod
    def from_operation(cls, op: Any, *, request: str | None = None, full: bool = True) -> TuningStatus:
        """Parse a ``google.longrunning.Operation`` of ``tunedModels.create``.

        :param op: the Operation as a dict.
        :param request: ``"METHOD /path"`` the Operation came from, for error messages.
        :param full: keep every snapshot and the resource; ``False`` (a wait's poll) keeps only the
            last snapshot and no resource, so a 10,000-step job parses in microseconds.
        :raises UnexpectedResponseError: if the Operation does not have the expected shape.
        """
        what = "Operation"
        _require(isinstance(op, Mapping), f"{what} is not a JSON object: {_kind(op)}", request)
        name = _opt_str(op, "name", what, request)
        done = op.get("done", False)
        _require(isinstance(done, bool), f"{what}.done is not a boolean: {_kind(done)}", request)
        metadata = op.get("metadata")
        metadata = {} if metadata is None else metadata
        _require(isinstance(metadata, Mapping), f"{what}.metadata is not an object", request)
        error = op.get("error")
        response = op.get("response")
        _require(error is None or isinstance(error, Mapping), f"{what}.error is not an object", request)
        _require(
            response is None or isinstance(response, Mapping), f"{what}.response is not an object", request
        )

        meta = "Operation.metadata"
        tuned_model = _opt_str(metadata, "tunedModel", meta, request)
        total = _opt_int(metadata, "totalSteps", meta, request)
        completed = _opt_int(metadata, "completedSteps", meta, request)
        percent = _opt_float(metadata, "completedPercent", meta, request)
        snapshots = _snapshots(metadata.get("snapshots"), f"{meta}.snapshots", request, full)

        model_state: str | None = None
        if isinstance(response, Mapping):
            tuned_model = tuned_model or _opt_str(response, "name", "Operation.response", request)
            model_state = _opt_str(response, "state", "Operation.response", request)
            if not snapshots:
                task = response.get("tuningTask")
                task = {} if task is None else task
                _require(isinstance(task, Mapping), "Operation.response.tuningTask is not an object", request)
                snapshots = _snapshots(
                    task.get("snapshots"), "TunedModel.tuningTask.snapshots", request, full
                )
        if tuned_model is None and name and validation.is_operation_name(name):
            tuned_model = name.rsplit("/operations/", 1)[0]

        error_code: int | None = None
        error_message: str | None = None
        state: State
        if error is not None:
            error_code = _opt_int(error, "code", "Operation.error", request)
            error_message = _opt_str(error, "message", "Operation.error", request) or "no message"
            state = "CANCELLED" if error_code == _CANCELLED_CODE else "FAILED"
            done = True
        elif done or response is not None:
            done = True
            if model_state == "FAILED":
                state = "FAILED"
                error_message = "the operation finished with the tuned model in state FAILED"
            else:
                state = "ACTIVE"
        else:
            state = "CREATING"

        if snapshots:
            last = snapshots[-1]
            if completed is None or last.step > completed:
                completed = last.step
        if total is not None:
            completed = completed or 0
            if percent is None:
                percent = 100.0 * completed / total if total > 0 else 0.0
        if state == "ACTIVE" and total is not None:
            completed, percent = max(completed or 0, total), 100.0
        return cls(
            state=state,
            done=done,
            tuned_model=tuned_model,
            operation=name,
            total_steps=total,
            completed_steps=completed,
            completed_percent=percent,
            epoch=snapshots[-1].epoch if snapshots else None,
            mean_loss=snapshots[-1].mean_loss if snapshots else None,
            snapshots=snapshots,
            error_code=error_code,
            error_message=error_message,
            resource=strip_training_data(op) if full else {},
        )

    @classmethod
    def from_tuned_model(cls, model: Any, *, request: str | None = None, full: bool = True) -> TuningStatus:
        """Parse a ``TunedModel`` (the Gemini-API-style flow polls only the model).

        :param model: the TunedModel as a dict.
        :param request: ``"METHOD /path"`` the TunedModel came from, for error messages.
        :param full: keep every snapshot and the resource (see :meth:`from_operation`).
        :raises UnexpectedResponseError: if the TunedModel does not have the expected shape.
        """
        what = "TunedModel"
        _require(isinstance(model, Mapping), f"{what} is not a JSON object: {_kind(model)}", request)
        name = _opt_str(model, "name", what, request)
        state = model.get("state")
        _require(
            state in _MODEL_STATES,
            f"{what}.state is {state!r}, expected one of {', '.join(sorted(_MODEL_STATES))}",
            request,
        )
        task = model.get("tuningTask")
        task = {} if task is None else task
        _require(isinstance(task, Mapping), f"{what}.tuningTask is not an object", request)
        snapshots = _snapshots(task.get("snapshots"), f"{what}.tuningTask.snapshots", request, full)
        error_message = f"tuned model {name or '?'} is in state FAILED" if state == "FAILED" else None
        return cls(
            state=state,
            done=state != "CREATING",
            tuned_model=name,
            completed_steps=snapshots[-1].step if snapshots else None,
            epoch=snapshots[-1].epoch if snapshots else None,
            mean_loss=snapshots[-1].mean_loss if snapshots else None,
            snapshots=snapshots,
            error_message=error_message,
            resource=strip_training_data(model) if full else {},
        )

    # -- views -----------------------------------------------------------------------------------

    @property
    def succeeded(self) -> bool:
        """Whether the job finished and the tuned model is ACTIVE."""
        return self.done and self.state == "ACTIVE"

    @property
    def failed(self) -> bool:
        """Whether the job finished FAILED or CANCELLED."""
        return self.state in ("FAILED", "CANCELLED")

    def progress_line(self) -> str:
        """Return a one-line progress summary, e.g. ``"47% step 18/38 epoch 2 loss 0.53"``.

        Parts that are not known are left out; with nothing known it is the state.
        """
        parts: list[str] = [self.phase] if self.phase and not self.done else []
        if self.completed_percent is not None:
            parts.append(f"{math.floor(self.completed_percent + 1e-9):d}%")
        if self.completed_steps is not None:
            total = f"/{self.total_steps}" if self.total_steps is not None else ""
            parts.append(f"step {self.completed_steps}{total}")
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}")
        if self.mean_loss is not None:
            parts.append(f"loss {self.mean_loss:.3g}")
        if self.done or not parts:
            parts.append(self.state)
        return " ".join(parts)

    def summary(self) -> dict[str, Any]:
        """Return the few facts a trigger event carries: name, state, progress and error (no snapshots).

        Small by construction (a few hundred bytes): Airflow stores events in its metadata database
        and prints them in the task log.
        """
        summary: dict[str, Any] = {key: getattr(self, key) for key in _SUMMARY_TEXTS}
        summary.update(state=self.state, done=self.done)
        summary.update({key: getattr(self, key) for key in _SUMMARY_FIELDS})
        if self.error_message is not None or self.error_code is not None:
            message = shorten(self.error_message) if self.error_message else None
            summary["error"] = {"code": self.error_code, "message": message}
        if self.data_stats is not None:
            summary["data_stats"] = self.data_stats.to_dict()
        return summary

    @classmethod
    def from_summary(cls, summary: Any) -> TuningStatus:
        """Rebuild a status (without snapshots or resource) from :meth:`summary`.

        :param summary: the dict :meth:`summary` returned.
        :raises GenerativeLanguageError: it is not such a dict.
        """
        if not isinstance(summary, Mapping) or summary.get("state") not in _STATES:
            raise GenerativeLanguageError(f"unexpected tuning summary: {_short(summary)}")
        raw_error = summary.get("error")
        error: Mapping[str, Any] = raw_error if isinstance(raw_error, Mapping) else {}
        values: dict[str, Any] = {}
        for key in _SUMMARY_FIELDS:
            value = summary.get(key)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            values[key] = value if ok else None
        code = error.get("code")
        texts: dict[str, Any] = {
            key: summary.get(key) if isinstance(summary.get(key), str) else None for key in _SUMMARY_TEXTS
        }
        return cls(
            state=summary["state"],
            done=bool(summary.get("done")),
            **texts,
            error_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            error_message=str(error["message"]) if error.get("message") else None,
            data_stats=DataStats.from_dict(summary.get("data_stats")),
            **values,
        )

    def with_failure(self, code: int | None, message: str) -> TuningStatus:
        """Return a copy carrying the failure's code and message (found elsewhere, e.g. in an operation).

        :param code: the ``google.rpc.Code`` number, if known (1, CANCELLED, makes the state CANCELLED).
        :param message: the API's message.
        """
        state: State = "CANCELLED" if code == _CANCELLED_CODE else self.state
        return replace(self, state=state, error_code=code, error_message=message)

    def raise_for_failure(self) -> None:
        """Raise :class:`TuningCancelledError` or :class:`TuningFailedError` if the job failed."""
        if not self.failed:
            return
        name = self.tuned_model or self.operation or "the tuned model"
        cls = TuningCancelledError if self.state == "CANCELLED" else TuningFailedError
        raise cls(name, self.error_message or f"state {self.state}", self.error_code)

    def to_dict(self) -> dict[str, Any]:
        """Return the status as plain JSON (for XCom and trigger events)."""
        error = None
        if self.error_message is not None or self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message}
        return {
            "tuned_model": self.tuned_model,
            "operation": self.operation,
            "state": self.state,
            "done": self.done,
            "total_steps": self.total_steps,
            "completed_steps": self.completed_steps,
            "completed_percent": self.completed_percent,
            "epoch": self.epoch,
            "mean_loss": self.mean_loss,
            "snapshots": [snapshot.to_dict() for snapshot in self.snapshots],
            "error": error,
            "data_stats": self.data_stats.to_dict() if self.data_stats else None,
        }


def status_from_event(event: Any) -> TuningStatus:
    """Validate a :class:`~airflow_provider_tuning.triggers.tuning.TuningOperationTrigger` event.

    :param event: the event payload given to ``execute_complete``.
    :return: the final status (without snapshots: a success event carries a summary only).
    :raises TuningFailedError: (or :class:`TuningCancelledError`) when the job failed.
    :raises TuningTimeoutError: when the trigger's deadline passed.
    :raises ApiError: the matching subclass when polling failed with an HTTP error.
    :raises ApiConnectionError: when the API could not be reached N consecutive times.
    :raises GenerativeLanguageError: when the event is not one this trigger yields.
    """
    if not isinstance(event, Mapping) or event.get("status") not in ("success", "failed", "timeout", "error"):
        raise GenerativeLanguageError(f"unexpected trigger event: {_short(event)}")
    kind = event["status"]
    tuned_model = str(event.get("tuned_model") or "the tuned model")
    message = str(event.get("message") or "no message")
    http_status = event.get("http_status")
    if kind == "success":
        status = _status_of_success(event)
        if not status.succeeded:
            status.raise_for_failure()
            raise GenerativeLanguageError(f"success event for an unfinished job: {status.progress_line()}")
        return status
    if kind == "timeout":
        raise TuningTimeoutError(message)
    if isinstance(http_status, int) and not isinstance(http_status, bool):
        if http_status == 200:
            raise UnexpectedResponseError(200, None, message)
        raise api_error_from_response(
            http_status, {"error": {"message": message, "status": event.get("rpc_status")}}
        )
    if kind == "error":
        raise ApiConnectionError(message)
    code = event.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    cls = (
        TuningCancelledError
        if code == _CANCELLED_CODE or event.get("state") == "CANCELLED"
        else TuningFailedError
    )
    raise cls(tuned_model, message, code)


def _status_of_success(event: Mapping[str, Any]) -> TuningStatus:
    if "summary" in event:
        return TuningStatus.from_summary(event["summary"])
    # An event of an earlier release, which carried the whole resource.
    if isinstance(event.get("operation"), Mapping):
        return TuningStatus.from_operation(event["operation"])
    if isinstance(event.get("model"), Mapping):
        return TuningStatus.from_tuned_model(event["model"])
    raise GenerativeLanguageError(f"success event without a summary: {_short(event)}")


# -- shape checks -----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _require(condition: bool, message: str, request: str | None) -> None:
    if not condition:
        raise UnexpectedResponseError(200, None, f"unexpected response shape: {message}", request=request)


def _opt_str(obj: Mapping[str, Any], key: str, where: str, request: str | None) -> str | None:
    value = obj.get(key)
    _require(
        value is None or isinstance(value, str), f"{where}.{key} is not a string: {_kind(value)}", request
    )
    return value or None


def _opt_int(obj: Mapping[str, Any], key: str, where: str, request: str | None) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.lstrip("-").isdigit():  # proto3 JSON accepts ints as strings
        return int(value)
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok or (isinstance(value, float) and value.is_integer())
    _require(ok, f"{where}.{key} is not an integer: {value!r}", request)
    return int(value)


def _opt_float(obj: Mapping[str, Any], key: str, where: str, request: str | None) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    _require(ok, f"{where}.{key} is not a number: {value!r}", request)
    return float(value)


def _snapshots(value: Any, where: str, request: str | None, full: bool = True) -> tuple[Snapshot, ...]:
    """Parse the snapshots; with ``full=False`` only the last one (what a wait reports)."""
    if value is None:
        return ()
    _require(isinstance(value, list), f"{where} is not a list: {_kind(value)}", request)
    result = []
    first = 0 if full else max(0, len(value) - 1)
    for index, item in enumerate(value[first:], start=first):
        here = f"{where}[{index}]"
        _require(isinstance(item, Mapping), f"{here} is not an object: {_kind(item)}", request)
        result.append(
            Snapshot(
                step=_opt_int(item, "step", here, request) or 0,
                epoch=_opt_int(item, "epoch", here, request) or 0,
                mean_loss=_opt_float(item, "meanLoss", here, request),
                compute_time=_opt_str(item, "computeTime", here, request),
            )
        )
    return tuple(result)
