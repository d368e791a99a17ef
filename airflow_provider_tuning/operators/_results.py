"""The plain-JSON summary of a tuned model that the tuning operators return to XCom."""

from __future__ import annotations

from typing import Any


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def snapshot_summaries(snapshots: Any) -> list[dict[str, Any]]:
    """Return the ``TuningSnapshot`` list as plain dicts with snake_case keys (``epoch`` 0 when left out).

    :param snapshots: ``tuningTask.snapshots`` (or the operation metadata's ``snapshots``).
    """
    result: list[dict[str, Any]] = []
    for snap in snapshots if isinstance(snapshots, list) else []:
        if not isinstance(snap, dict):
            continue
        result.append(
            {
                "step": _as_int(snap.get("step")) or 0,
                "epoch": _as_int(snap.get("epoch")) or 0,
                "mean_loss": _as_float(snap.get("meanLoss", snap.get("mean_loss"))),
                "compute_time": snap.get("computeTime", snap.get("compute_time")),
            }
        )
    return result


def total_steps_of_operation(operation: dict[str, Any] | None) -> int | None:
    """Return ``metadata.totalSteps`` of a create operation, if present.

    :param operation: an ``Operation`` JSON or ``None``.
    """
    metadata = (operation or {}).get("metadata")
    return _as_int(metadata.get("totalSteps")) if isinstance(metadata, dict) else None


def tuned_model_result(
    model: dict[str, Any],
    *,
    api_version: str,
    operation: str | None = None,
    total_steps: int | None = None,
) -> dict[str, Any]:
    """Return the XCom summary of a tuned model.

    Keys: ``tuned_model``, ``base_model``, ``display_name``, ``state``, ``total_steps``,
    ``final_mean_loss``, ``snapshots``, ``create_time``, ``start_time``, ``complete_time``,
    ``operation`` and ``api_version``. ``total_steps`` falls back to the last snapshot's step once
    the model is ACTIVE (the job ran every step), since a TunedModel does not carry it.

    :param model: the ``TunedModel`` JSON from ``tunedModels.get``.
    :param api_version: the API version the model was tuned with.
    :param operation: the create operation's name, if known.
    :param total_steps: ``totalSteps`` from the operation metadata, if known.
    """
    raw_task = model.get("tuningTask")
    task: dict[str, Any] = raw_task if isinstance(raw_task, dict) else {}
    snapshots = snapshot_summaries(task.get("snapshots"))
    state = model.get("state")
    if total_steps is None and state == "ACTIVE" and snapshots:
        total_steps = snapshots[-1]["step"]
    raw_source = model.get("tunedModelSource")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    return {
        "tuned_model": model.get("name"),
        "base_model": model.get("baseModel") or source.get("baseModel"),
        "display_name": model.get("displayName"),
        "state": state,
        "total_steps": total_steps,
        "final_mean_loss": snapshots[-1]["mean_loss"] if snapshots else None,
        "snapshots": snapshots,
        "create_time": model.get("createTime"),
        "start_time": task.get("startTime"),
        "complete_time": task.get("completeTime"),
        "operation": operation,
        "api_version": api_version,
    }
