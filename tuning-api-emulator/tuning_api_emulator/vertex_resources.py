"""The Model, Endpoint and Operation JSON of a tuned model (what a teardown reads and deletes).

A succeeded job's Model (``models/{id}@{version}``) is deployed to its own Endpoint. Deleting
an Endpoint needs its model undeployed first, and deleting a Model needs it undeployed from every
Endpoint (FAILED_PRECONDITION otherwise). Those long-running operations finish at once.
"""

from __future__ import annotations

from typing import Any

from tuning_api_emulator.jsonio import timestamp
from tuning_api_emulator.vertex_jobs import VertexJob, status


def model_display_name(job: VertexJob) -> str:
    return job.display_name or f"{job.base_model}-tuned-{job.id}"


def succeeded_at(job: VertexJob, now: float) -> float | None:
    """When the job succeeded, if it has by ``now``."""
    st = status(job, now)
    return st.end_time if st.state == "JOB_STATE_SUCCEEDED" else None


def deployed(job: VertexJob) -> bool:
    return job.undeploy_time is None and job.endpoint_delete_time is None


def render_model(versions: list[VertexJob], chosen: VertexJob, now: float) -> dict[str, Any]:
    """``Model`` for version ``chosen`` of a model whose versions are ``versions`` (oldest first)."""
    first, created = versions[0], succeeded_at(chosen, now) or chosen.create_time
    out: dict[str, Any] = {
        "name": chosen.model_name,
        "displayName": model_display_name(chosen),
        "versionId": str(chosen.model_version),
        "versionAliases": ["default"] if chosen is versions[-1] else [],
        "versionCreateTime": timestamp(created),
        "versionUpdateTime": timestamp(created),
        "createTime": timestamp(succeeded_at(first, now) or first.create_time),
        "updateTime": timestamp(created),
        "modelSourceInfo": {"sourceType": "GENIE"},
        "etag": f"AMEw9yP{chosen.id[-8:]}",
    }
    if chosen.labels:
        out["labels"] = dict(chosen.labels)
    refs = [
        {"endpoint": v.endpoint_name, "deployedModelId": v.deployed_model_id} for v in versions if deployed(v)
    ]
    if refs:
        out["deployedModels"] = refs
    if not out["versionAliases"]:
        del out["versionAliases"]
    return out


def render_endpoint(job: VertexJob, now: float) -> dict[str, Any]:
    """``Endpoint`` serving ``job``'s tuned model."""
    created = timestamp(succeeded_at(job, now) or job.create_time)
    out: dict[str, Any] = {
        "name": job.endpoint_name,
        "displayName": model_display_name(job),
        "createTime": created,
        "updateTime": timestamp(job.undeploy_time) if job.undeploy_time is not None else created,
        "etag": f"AMEw9yP{job.endpoint_id[-8:]}",
    }
    if job.labels:
        out["labels"] = dict(job.labels)
    if deployed(job):
        out["deployedModels"] = [
            {
                "id": job.deployed_model_id,
                "model": job.model_name,
                "modelVersionId": str(job.model_version),
                "displayName": model_display_name(job),
                "createTime": created,
            }
        ]
        out["trafficSplit"] = {job.deployed_model_id: 100}
    return out


def operation(name: str, version: str, metadata_type: str, response_type: str, now: float) -> dict[str, Any]:
    """A finished ``Operation`` with ``genericMetadata`` and an (empty) response."""
    pkg = f"type.googleapis.com/google.cloud.aiplatform.{version}"
    moment = timestamp(now)
    response = (
        "type.googleapis.com/google.protobuf.Empty" if response_type == "Empty" else f"{pkg}.{response_type}"
    )
    return {
        "name": name,
        "metadata": {
            "@type": f"{pkg}.{metadata_type}",
            "genericMetadata": {"createTime": moment, "updateTime": moment},
        },
        "done": True,
        "response": {"@type": response},
    }
