"""One shape for a tuning job of either backend: what the Tuning view lists and charts.

A Gemini API ``TunedModel`` and a Vertex AI ``TuningJob`` are turned into the same plain dicts
(:func:`summary`, :func:`detail`), so the pages and the list filters need not know the backend.
Pure functions of the API's JSON: no Airflow, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GEMINI = "gemini"
VERTEX = "vertex"

#: The statuses the view shows (a filter value), from each backend's own states.
STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")

_GEMINI_STATUS = {"CREATING": "running", "ACTIVE": "succeeded", "FAILED": "failed"}
_VERTEX_STATUS = {
    "JOB_STATE_QUEUED": "pending",
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_UPDATING": "running",
    "JOB_STATE_PAUSED": "running",
    "JOB_STATE_CANCELLING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
}

#: Fields :func:`summary` returns that the list can be sorted by.
SORT_KEYS = ("created", "finished", "name", "display_name", "base_model", "status", "final_loss", "progress")


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    """A JSON number or a numeric string (Vertex sends int64 as strings); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def snapshots(tuned_model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The loss curve of a Gemini tuned model: ``[{step, epoch, loss, time}]`` ordered by step.

    :param tuned_model: the ``TunedModel`` JSON (or an operation's metadata holding ``snapshots``).
    """
    task = _dict(tuned_model.get("tuningTask")) or _dict(tuned_model)
    points: list[dict[str, Any]] = []
    for raw in task.get("snapshots") or []:
        snap = _dict(raw)
        step, loss = _number(snap.get("step")), _number(snap.get("meanLoss"))
        if step is None or loss is None:
            continue
        epoch = _number(snap.get("epoch"))
        points.append(
            {
                "step": int(step),
                "epoch": int(epoch) if epoch is not None else 0,  # 0 is left out of the JSON
                "loss": loss,
                "time": snap.get("computeTime"),
            }
        )
    points.sort(key=lambda point: int(point["step"]))
    return points


def _gemini_summary(model: Mapping[str, Any]) -> dict[str, Any]:
    task = _dict(model.get("tuningTask"))
    curve = snapshots(model)
    state = str(model.get("state") or "STATE_UNSPECIFIED")
    status = _GEMINI_STATUS.get(state, "pending")
    # The TunedModel does not tell its step count (its create operation does: see detail()).
    progress = 1.0 if status == "succeeded" else None
    source = _dict(model.get("tunedModelSource"))
    return {
        "backend": GEMINI,
        "name": str(model.get("name") or ""),
        "display_name": model.get("displayName") or "",
        "base_model": model.get("baseModel") or source.get("baseModel") or source.get("tunedModel") or "",
        "state": state,
        "status": status,
        "progress": progress,
        "created": model.get("createTime"),
        "finished": task.get("completeTime"),
        "final_loss": curve[-1]["loss"] if curve else None,
        "steps": len(curve),
        "last_step": curve[-1]["step"] if curve else None,
    }


def _vertex_summary(job: Mapping[str, Any]) -> dict[str, Any]:
    state = str(job.get("state") or "JOB_STATE_UNSPECIFIED")
    status = _VERTEX_STATUS.get(state, "pending")
    stats = _dict(_dict(job.get("tuningDataStats")).get("supervisedTuningDataStats"))
    total = _number(stats.get("tuningStepCount"))
    done = _number(_dict(job.get("tuningJobMetadata")).get("completedStepCount"))
    progress: float | None = None
    if status == "succeeded":
        progress = 1.0
    elif total and done is not None:
        progress = min(1.0, max(0.0, done / total))
    return {
        "backend": VERTEX,
        "name": str(job.get("name") or ""),
        "display_name": job.get("tunedModelDisplayName") or "",
        "base_model": job.get("baseModel") or _dict(job.get("preTunedModel")).get("tunedModelName") or "",
        "state": state,
        "status": status,
        "progress": progress,
        "created": job.get("createTime"),
        "finished": job.get("endTime"),
        "final_loss": None,
        "steps": 0,
        "last_step": int(done) if done is not None else None,
    }


def summary(item: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """The list row of one job: name, display name, base model, state, progress, times, final loss.

    :param item: a ``TunedModel`` (Gemini) or ``TuningJob`` (Vertex) JSON.
    :param backend: :data:`GEMINI` or :data:`VERTEX`.
    """
    row = _gemini_summary(item) if backend == GEMINI else _vertex_summary(item)
    row["labels"] = {k: v for k, v in _dict(item.get("labels")).items() if isinstance(v, str)}
    return row


def _vertex_hyperparameters(job: Mapping[str, Any]) -> dict[str, Any]:
    for key, spec in job.items():
        if key.endswith("TuningSpec") or key.endswith("OptimizationSpec") or key == "distillationSpec":
            return _dict(_dict(spec).get("hyperParameters"))
    return {}


def detail(
    item: Mapping[str, Any], backend: str, operation: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The job page: the list row plus the curve, hyperparameters, data stats, error and outputs.

    :param item: a ``TunedModel`` (Gemini) or ``TuningJob`` (Vertex) JSON.
    :param backend: :data:`GEMINI` or :data:`VERTEX`.
    :param operation: the Gemini create operation of the model, when known (progress and error).
    """
    row = summary(item, backend)
    error: dict[str, Any] = {}
    outputs: dict[str, str] = {}
    data_stats: dict[str, Any] = {}
    if backend == GEMINI:
        task = _dict(item.get("tuningTask"))
        row["curve"] = snapshots(item)
        row["hyperparameters"] = _dict(task.get("hyperparameters"))
        row["started"] = task.get("startTime")
        if row["status"] == "succeeded":
            outputs["tuned_model"] = row["name"]
        meta = _dict((operation or {}).get("metadata"))
        total, completed = _number(meta.get("totalSteps")), _number(meta.get("completedSteps"))
        if total:
            data_stats["total_steps"] = int(total)
            if row["status"] != "succeeded":
                row["progress"] = min(1.0, (completed or 0.0) / total)
        error = _dict((operation or {}).get("error"))
    else:
        row["curve"] = []
        row["hyperparameters"] = _vertex_hyperparameters(item)
        row["started"] = item.get("startTime")
        tuned = _dict(item.get("tunedModel"))
        for key in ("model", "endpoint"):
            if isinstance(tuned.get(key), str):
                outputs[key] = tuned[key]
        stats = _dict(item.get("tuningDataStats"))
        data_stats = next((_dict(value) for value in stats.values() if isinstance(value, Mapping)), {})
        data_stats.pop("userDatasetExamples", None)  # user content: not shown as statistics
        error = _dict(item.get("error"))
        if isinstance(item.get("experiment"), str):
            outputs["experiment"] = item["experiment"]
    if row["status"] == "failed" and not error:
        error = {"message": "The API reports the job failed but gives no error message."}
    row["error"] = {"code": error.get("code"), "message": str(error.get("message") or "")} if error else None
    row["outputs"] = outputs
    row["data_stats"] = data_stats
    return row
