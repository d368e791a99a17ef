"""JSON renderings of tuned models, their operations and permissions, per API version.

Output follows proto3 JSON: camelCase, default values left out (``done`` while false, ``epoch`` 0,
``completedSteps`` 0), enums as strings, RFC 3339 timestamps, ``int64`` as strings, floats as the
shortest float32 decimal. ``trainingData`` is input only and never rendered. ``Operation.metadata``
and ``response`` carry the ``@type`` of the version the call used (``v1`` has no tuning types, so a
``v1`` call gets the version the model was created with).
"""

from __future__ import annotations

from typing import Any

from tuning_api_emulator.errors import rpc_status
from tuning_api_emulator.jsonio import f32, timestamp
from tuning_api_emulator.store import PermissionRecord, TunedModelRecord
from tuning_api_emulator.tuning import (
    completed_percent,
    default_hyperparameters,
    progress,
    snapshots,
)

TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage"


def types_version(record: TunedModelRecord, api_version: str) -> str:
    """The package version whose message types describe ``record`` in an ``api_version`` call."""
    return api_version if api_version in ("v1beta", "v1beta3") else record.api_version


def render_hyperparameters(record: TunedModelRecord, api_version: str) -> dict[str, Any]:
    """``Hyperparameters`` JSON (``learningRateMultiplier`` exists only in v1beta)."""
    hyper = record.hyperparameters
    out: dict[str, Any] = {"epochCount": hyper["epochCount"], "batchSize": hyper["batchSize"]}
    if "learningRateMultiplier" in hyper:
        if api_version == "v1beta":
            out["learningRateMultiplier"] = f32(hyper["learningRateMultiplier"])
        else:
            base = default_hyperparameters(record.api_version, len(record.examples))["learningRate"]
            out["learningRate"] = f32(base * hyper["learningRateMultiplier"])
    elif "learningRate" in hyper:
        out["learningRate"] = f32(hyper["learningRate"])
    return out


def render_tuned_model(record: TunedModelRecord, api_version: str, now: float) -> dict[str, Any]:
    """``TunedModel`` JSON as ``api_version`` shows it at ``now``."""
    state = progress(record, now)
    body: dict[str, Any] = {"name": record.name}
    if record.source_tuned_model:
        body["tunedModelSource"] = {"tunedModel": record.source_tuned_model, "baseModel": record.base_model}
    else:
        body["baseModel"] = record.base_model
    if record.display_name:
        body["displayName"] = record.display_name
    if record.description:
        body["description"] = record.description
    body["state"] = state.state
    body["createTime"] = timestamp(record.create_time)
    body["updateTime"] = timestamp(max(record.update_time, state.end_time or 0.0))
    task: dict[str, Any] = {"startTime": timestamp(record.start_time)}
    if state.state == "ACTIVE" and state.end_time is not None:
        task["completeTime"] = timestamp(state.end_time)
    snaps = snapshots(record, state.completed_steps)
    if snaps:
        task["snapshots"] = snaps
    task["hyperparameters"] = render_hyperparameters(record, api_version)
    body["tuningTask"] = task
    if record.temperature is not None:
        body["temperature"] = f32(record.temperature)
    if record.top_p is not None:
        body["topP"] = f32(record.top_p)
    if record.top_k is not None:
        body["topK"] = record.top_k
    if record.reader_project_numbers and api_version == "v1beta":
        body["readerProjectNumbers"] = [str(number) for number in record.reader_project_numbers]
    return body


def render_operation(record: TunedModelRecord, api_version: str, now: float) -> dict[str, Any]:
    """The ``google.longrunning.Operation`` of ``record``'s tuning job at ``now``."""
    version = types_version(record, api_version)
    state = progress(record, now)
    metadata: dict[str, Any] = {
        "@type": f"{TYPE_PREFIX}.{version}.CreateTunedModelMetadata",
        "totalSteps": record.total_steps,
        "tunedModel": record.name,
    }
    if state.completed_steps:
        metadata["completedSteps"] = state.completed_steps
        metadata["completedPercent"] = completed_percent(state.completed_steps, record.total_steps)
        metadata["snapshots"] = snapshots(record, state.completed_steps)
    operation: dict[str, Any] = {"name": record.operation_name, "metadata": metadata}
    if state.done:
        operation["done"] = True
        if state.state == "ACTIVE":
            operation["response"] = {
                "@type": f"{TYPE_PREFIX}.{version}.TunedModel",
                **render_tuned_model(record, version, now),
            }
        else:
            assert state.error_status is not None
            assert state.error_message is not None
            operation["error"] = rpc_status(state.error_status, state.error_message)
    return operation


def render_permission(record: TunedModelRecord, permission: PermissionRecord) -> dict[str, Any]:
    """``Permission`` JSON."""
    body: dict[str, Any] = {
        "name": f"{record.name}/permissions/{permission.id}",
        "granteeType": permission.grantee_type,
    }
    if permission.email_address:
        body["emailAddress"] = permission.email_address
    body["role"] = permission.role
    return body
