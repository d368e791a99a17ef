"""Vertex AI tuning jobs: the stored record, its timeline and its ``TuningJob`` JSON.

Timeline, ``s`` = seconds per step and ``N`` = ``tuningStepCount``, all computed from the clock
(so progress survives a restart on the same state file)::

    [0, s)          JOB_STATE_PENDING
    [s, 2s)         JOB_STATE_RUNNING  tuningJobState TUNING_JOB_STATE_PROCESSING_DATASET
    [2s, (2+N)s)    JOB_STATE_RUNNING  TUNING_JOB_STATE_TUNING (tuningJobMetadata counts steps)
    [(2+N)s, (3+N)s) JOB_STATE_RUNNING TUNING_JOB_STATE_POST_PROCESSING
    (3+N)s          JOB_STATE_SUCCEEDED, with tunedModel {model, endpoint, checkpoints}

``tuningJobState`` and ``tuningJobMetadata`` are v1beta1 (discovery) fields; ``tuningDataStats``
appears once the dataset is processed. A dataset problem fails the job at ``2s`` with
``error.code`` 3; an emulated failure (``emulator:fail``, the control path) with 13; a cancel
ends it ``JOB_STATE_CANCELLED`` with ``error.code`` 1.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from tuning_api_emulator.errors import rpc_status
from tuning_api_emulator.jsonio import timestamp

TERMINAL = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
CANCELLED_MESSAGE = "CANCELLED"
_MARGIN = 1e-6


def project_number(project: str) -> str:
    """The project number for a project id (a number stays itself); stable across runs."""
    if project.isdigit():
        return project
    return str(100_000_000_000 + zlib.crc32(project.encode()) % 900_000_000_000)


@dataclass
class VertexJob:
    """One tuning job and the Model and Endpoint it produces."""

    id: str
    project_number: str
    location: str
    base_model: str
    spec_kind: str  # the TuningJob field holding the spec, e.g. "supervisedTuningSpec"
    spec: dict[str, Any]  # as rendered (hyperparameters with the server's defaults)
    create_time: float
    step_seconds: float
    total_steps: int
    epochs: int
    model_id: str
    endpoint_id: str
    deployed_model_id: str
    model_version: int = 1
    display_name: str = ""
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    echo: dict[str, Any] = field(default_factory=dict)  # encryptionSpec, serviceAccount, preTunedModel, ...
    examples: list[dict[str, str]] = field(default_factory=list)  # {"textInput", "output"} for inference
    data_stats: dict[str, Any] = field(default_factory=dict)
    dataset_error: str = ""
    fail_at_step: int | None = None
    fail_time: float | None = None
    fail_message: str = ""
    cancel_time: float | None = None
    undeploy_time: float | None = None
    model_delete_time: float | None = None
    endpoint_delete_time: float | None = None

    @property
    def parent(self) -> str:
        return f"projects/{self.project_number}/locations/{self.location}"

    @property
    def name(self) -> str:
        return f"{self.parent}/tuningJobs/{self.id}"

    @property
    def model_name(self) -> str:
        return f"{self.parent}/models/{self.model_id}"

    @property
    def endpoint_name(self) -> str:
        return f"{self.parent}/endpoints/{self.endpoint_id}"

    @property
    def sort_key(self) -> str:
        return f"{self.create_time:020.6f}/{self.id}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VertexJob:
        return cls(**data)


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands at one instant."""

    state: str
    sub_state: str | None
    completed_steps: int
    update_time: float
    start_time: float | None = None
    end_time: float | None = None
    error: dict[str, Any] | None = None
    stats_ready: bool = False

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


def _end(job: VertexJob) -> tuple[float, str, int]:
    """The event that ends the job first: ``(time, kind, completed steps)``."""
    s = job.step_seconds
    tune_at = job.create_time + 2 * s
    events: list[tuple[float, str, int]] = [(tune_at + (job.total_steps + 1) * s, "succeed", job.total_steps)]
    if job.dataset_error:
        events.append((tune_at, "dataset", 0))
    if job.fail_at_step is not None:
        at = min(job.fail_at_step, job.total_steps)
        events.append((tune_at + at * s, "fail", at))
    for moment, kind in ((job.fail_time, "fail"), (job.cancel_time, "cancel")):
        if moment is not None:
            events.append((moment, kind, _steps(job, moment)))
    priority = {"cancel": 0, "dataset": 1, "fail": 2, "succeed": 3}
    return min(events, key=lambda event: (event[0], priority[event[1]]))


def _steps(job: VertexJob, moment: float) -> int:
    tune_at = job.create_time + 2 * job.step_seconds
    if moment < tune_at:
        return 0
    return min(job.total_steps, int((moment - tune_at + _MARGIN) // job.step_seconds))


def status(job: VertexJob, now: float) -> JobStatus:
    """The job's state at ``now``."""
    s = job.step_seconds
    run_at, tune_at = job.create_time + s, job.create_time + 2 * s
    post_at = tune_at + job.total_steps * s
    when, kind, steps = _end(job)
    if when <= now + _MARGIN:
        start = run_at if when >= run_at else None
        stats = when >= tune_at and not job.dataset_error
        if kind == "succeed":
            return JobStatus("JOB_STATE_SUCCEEDED", None, steps, when, start, when, None, True)
        if kind == "cancel":
            error = rpc_status("CANCELLED", CANCELLED_MESSAGE)
            return JobStatus("JOB_STATE_CANCELLED", None, steps, when, start, when, error, stats)
        if kind == "dataset":
            error = rpc_status("INVALID_ARGUMENT", job.dataset_error)
            return JobStatus("JOB_STATE_FAILED", None, 0, when, start, when, error, False)
        message = (
            job.fail_message or f"Tuning job failed at step {steps} of {job.total_steps} (emulated failure)."
        )
        return JobStatus(
            "JOB_STATE_FAILED", None, steps, when, start, when, rpc_status("INTERNAL", message), stats
        )
    if now + _MARGIN < run_at:
        return JobStatus("JOB_STATE_PENDING", None, 0, job.create_time)
    if now + _MARGIN < tune_at:
        return JobStatus("JOB_STATE_RUNNING", "TUNING_JOB_STATE_PROCESSING_DATASET", 0, run_at, run_at)
    if now + _MARGIN < post_at:
        return JobStatus(
            "JOB_STATE_RUNNING",
            "TUNING_JOB_STATE_TUNING",
            _steps(job, now),
            tune_at,
            run_at,
            stats_ready=True,
        )
    return JobStatus(
        "JOB_STATE_RUNNING",
        "TUNING_JOB_STATE_POST_PROCESSING",
        job.total_steps,
        post_at,
        run_at,
        stats_ready=True,
    )


def checkpoints(job: VertexJob) -> list[dict[str, Any]]:
    """One checkpoint per epoch (none with ``exportLastCheckpointOnly``); the last one is deployed."""
    if job.spec.get("exportLastCheckpointOnly"):
        return []
    out = []
    for epoch in range(1, job.epochs + 1):
        step = -(-epoch * job.total_steps // job.epochs)
        checkpoint: dict[str, Any] = {"checkpointId": str(epoch), "epoch": str(epoch), "step": str(step)}
        if epoch == job.epochs:
            checkpoint["endpoint"] = job.endpoint_name
        out.append(checkpoint)
    return out


def completed_epochs(job: VertexJob, steps: int) -> int:
    return steps * job.epochs // job.total_steps if job.total_steps else 0


def render_job(job: VertexJob, version: str, now: float) -> dict[str, Any]:
    """The ``TuningJob`` JSON in ``version`` at ``now``."""
    st = status(job, now)
    out: dict[str, Any] = {"name": job.name}
    pre_tuned = job.echo.get("preTunedModel")
    if pre_tuned is not None:
        out["preTunedModel"] = {**pre_tuned, "baseModel": job.base_model}
    else:
        out["baseModel"] = job.base_model
    out[job.spec_kind] = copy.deepcopy(job.spec)
    if job.display_name:
        out["tunedModelDisplayName"] = job.display_name
    if job.description:
        out["description"] = job.description
    out["state"] = st.state
    out["createTime"] = timestamp(job.create_time)
    if st.start_time is not None:
        out["startTime"] = timestamp(st.start_time)
    if st.end_time is not None:
        out["endTime"] = timestamp(st.end_time)
    out["updateTime"] = timestamp(st.update_time)
    if st.error is not None:
        out["error"] = st.error
    if job.labels:
        out["labels"] = dict(job.labels)
    if st.start_time is not None:
        out["experiment"] = f"{job.parent}/metadataStores/default/contexts/tuning-experiment-{job.id}"
    if st.state == "JOB_STATE_SUCCEEDED":
        tuned: dict[str, Any] = {
            "model": f"{job.model_name}@{job.model_version}",
            "endpoint": job.endpoint_name,
        }
        if points := checkpoints(job):
            tuned["checkpoints"] = points
        out["tunedModel"] = tuned
    if st.stats_ready and job.data_stats:
        out["tuningDataStats"] = copy.deepcopy(job.data_stats)
    for key in ("encryptionSpec", "serviceAccount"):
        if key in job.echo:
            out[key] = copy.deepcopy(job.echo[key])
    if version == "v1beta1":
        if st.sub_state is not None:
            out["tuningJobState"] = st.sub_state
        if st.completed_steps:
            out["tuningJobMetadata"] = {
                "completedEpochCount": str(completed_epochs(job, st.completed_steps)),
                "completedStepCount": str(st.completed_steps),
            }
            if out["tuningJobMetadata"]["completedEpochCount"] == "0":
                del out["tuningJobMetadata"]["completedEpochCount"]
    return out
