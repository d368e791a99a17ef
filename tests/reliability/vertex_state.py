"""What a Vertex AI run left at the emulator: its tuning jobs (by label), models, endpoints, tokens.

Read from the in-process emulator's store (or a stopped emulator's state file), not through the
API: the count of jobs must not depend on the ``list`` filter the operator itself relies on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from airflow_provider_tuning.operators._ids import digest
from tuning_api_emulator import Emulator
from tuning_api_emulator.vertex_jobs import VertexJob


def tuning_jobs(emulator: Emulator) -> list[VertexJob]:
    """Every tuning job the emulator holds (deleted models and endpoints included), oldest first."""
    runtime = emulator.runtime
    with runtime.lock:
        jobs = [copy.deepcopy(job) for job in runtime.store.tuning_jobs.values()]
    return sorted(jobs, key=lambda job: job.sort_key)


def tuning_jobs_in_state_file(path: Path) -> list[VertexJob]:
    """The tuning jobs of an emulator state file (what a stopped emulator left), oldest first."""
    data = json.loads(path.read_text())
    jobs = [VertexJob.from_json(job) for job in data.get("tuningJobs", [])]
    return sorted(jobs, key=lambda job: job.sort_key)


def ti_label(dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> str:
    """The ``airflow-ti`` label ``CreateVertexTuningJobOperator`` puts on a task instance's jobs,
    recomputed here from the task instance's key."""
    return digest([dag_id, task_id, run_id, map_index])


def jobs_of(jobs: list[VertexJob], dag_id: str, task_id: str, run_id: str) -> list[VertexJob]:
    """The jobs labelled with one task instance."""
    label = ti_label(dag_id, task_id, run_id)
    return [job for job in jobs if job.labels.get("airflow-ti") == label]


def issued_tokens(emulator: Emulator) -> list[str]:
    """The access tokens the emulator's ``POST /token`` issued (and still remembers)."""
    runtime = emulator.runtime
    with runtime.lock:
        return sorted(runtime.store.issued_tokens)
