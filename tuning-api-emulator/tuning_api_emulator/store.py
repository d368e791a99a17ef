"""The emulator's state, optionally persisted: tuned models (with their operation and permissions),
Vertex AI tuning jobs and operations, Cloud Storage buckets and objects, and issued OAuth tokens.

Everything a tuned model's progress depends on is stored (creation time, seconds per step, total
steps, failure and cancellation marks), and progress itself is computed from the clock
(:mod:`.tuning`), so a restart on the same state file loses nothing and keeps progressing.
The file is JSON, rewritten atomically (temporary file + ``os.replace``) after every change.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_api_emulator.storage_data import Bucket, StoredObject
from tuning_api_emulator.vertex_jobs import VertexJob

STATE_FORMAT = 1


@dataclass
class PermissionRecord:
    """One permission on a tuned model."""

    id: str
    grantee_type: str
    role: str
    email_address: str = ""


@dataclass
class TunedModelRecord:
    """One tuned model and its single ``CreateTunedModel`` operation."""

    id: str
    api_version: str
    operation_id: str
    base_model: str
    examples: list[dict[str, str]]
    hyperparameters: dict[str, Any]
    create_time: float
    start_time: float
    step_seconds: float
    total_steps: int
    update_time: float
    source_tuned_model: str | None = None
    display_name: str = ""
    description: str = ""
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    reader_project_numbers: list[int] = field(default_factory=list)
    fail_at_step: int | None = None
    fail_time: float | None = None
    fail_message: str = ""
    cancel_time: float | None = None
    permissions: list[PermissionRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        """``tunedModels/<id>``."""
        return f"tunedModels/{self.id}"

    @property
    def operation_name(self) -> str:
        """``tunedModels/<id>/operations/<op id>``."""
        return f"{self.name}/operations/{self.operation_id}"

    @property
    def batch_size(self) -> int:
        return int(self.hyperparameters["batchSize"])

    @property
    def epoch_count(self) -> int:
        return int(self.hyperparameters["epochCount"])

    @property
    def sort_key(self) -> str:
        """List order: creation time, then id."""
        return f"{self.create_time:020.6f}/{self.id}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TunedModelRecord:
        values = dict(data)
        values["permissions"] = [PermissionRecord(**p) for p in values.get("permissions", [])]
        return cls(**values)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """Tuned models by id, with optional JSON persistence.

    :param path: the state file; ``None`` keeps everything in memory.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.models: dict[str, TunedModelRecord] = {}
        self.tuning_jobs: dict[str, VertexJob] = {}  # by job id
        self.vertex_operations: dict[str, dict[str, Any]] = {}  # by operation name
        self.buckets: dict[str, Bucket] = {}
        self.objects: dict[str, StoredObject] = {}  # by "bucket/name"
        self.issued_tokens: dict[str, float] = {}  # OAuth access token -> expiry (epoch seconds)

    def load(self) -> None:
        """Read the state file if it exists (a missing file is an empty state)."""
        if self.path is None or not self.path.exists():
            return
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"{self.path}: unsupported emulator state format {data.get('format')!r}")
        self.models = {m["id"]: TunedModelRecord.from_json(m) for m in data.get("tunedModels", [])}
        self.tuning_jobs = {j["id"]: VertexJob.from_json(j) for j in data.get("tuningJobs", [])}
        self.vertex_operations = {op["name"]: op for op in data.get("vertexOperations", [])}
        self.buckets = {b["name"]: Bucket(**b) for b in data.get("buckets", [])}
        objects = [StoredObject.from_json(o) for o in data.get("objects", [])]
        self.objects = {o.key: o for o in objects}
        self.issued_tokens = dict(data.get("issuedTokens", {}))

    def save(self) -> None:
        """Write the state file atomically (no-op without a state file).

        The JSON is encoded before anything is written; it goes to a temporary file in the same
        folder, is flushed and fsynced, then ``os.replace`` puts it in place (and the folder is
        fsynced), so a crash leaves the old file or the new one, never half of one.
        """
        if self.path is None:
            return
        payload = json.dumps(
            {
                "format": STATE_FORMAT,
                "tunedModels": [m.to_json() for m in self.models.values()],
                "tuningJobs": [j.to_json() for j in self.tuning_jobs.values()],
                "vertexOperations": list(self.vertex_operations.values()),
                "buckets": [b.to_json() for b in self.buckets.values()],
                "objects": [o.to_json() for o in self.objects.values()],
                "issuedTokens": self.issued_tokens,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_folder(self.path.parent)

    def clear(self) -> None:
        """Forget every tuned model, tuning job, bucket, object and issued token (and persist that)."""
        self.models.clear()
        self.tuning_jobs.clear()
        self.vertex_operations.clear()
        self.buckets.clear()
        self.objects.clear()
        self.issued_tokens.clear()
        self.save()

    def sorted_models(self) -> list[TunedModelRecord]:
        """Every tuned model in list order."""
        return sorted(self.models.values(), key=lambda m: m.sort_key)
