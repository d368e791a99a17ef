"""Tuning progress as a pure function of the stored record and the clock (no background task).

* ``totalSteps = ceil(examples * epochs / batch)`` (observed in the seeds: 38, 19, 23, 12).
* Step ``i`` completes at ``start + i * step_seconds``; ``epoch = floor(i * batch / examples)``.
* ``meanLoss`` follows a decreasing trend with deterministic per-model noise.
* The job ends at the earliest of: completion (ACTIVE), a requested failure (FAILED, operation
  error INTERNAL) or a cancellation (FAILED, operation error CANCELLED).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from tuning_api_emulator.jsonio import f32, timestamp
from tuning_api_emulator.store import TunedModelRecord

CANCELLED_MESSAGE = "Operation cancelled by the caller."

#: Datasets with fewer examples than this get the "small dataset" defaults (the protos say only that
#: the defaults depend on the number of examples; the threshold is the emulator's choice).
SMALL_DATASET_MAX_EXAMPLES = 500


def default_hyperparameters(api_version: str, examples: int) -> dict[str, Any]:
    """Each version's defaults (CONTRACT.md section 4).

    * v1beta: 5 epochs; batch 4 and learning rate 0.001 below 500 examples, else 16 and 0.0002.
    * v1beta3: 10 epochs; batch 16 and learning rate 0.0002 below 500 examples, else 64 and 0.002.
    """
    small = examples < SMALL_DATASET_MAX_EXAMPLES
    if api_version == "v1beta3":
        return {
            "epochCount": 10,
            "batchSize": 16 if small else 64,
            "learningRate": 0.0002 if small else 0.002,
        }
    return {"epochCount": 5, "batchSize": 4 if small else 16, "learningRate": 0.001 if small else 0.0002}


def total_steps(examples: int, epochs: int, batch_size: int) -> int:
    """``ceil(examples * epochs / batch_size)`` (at least 1)."""
    return max(1, math.ceil(examples * epochs / batch_size))


def epoch_of(step: int, batch_size: int, examples: int) -> int:
    """``floor(step * batch_size / examples)``."""
    return (step * batch_size) // examples


def _unit_noise(model_id: str, salt: int) -> float:
    """A deterministic number in [0, 1) per model and salt."""
    return zlib.crc32(f"{model_id}:{salt}".encode()) / 2**32


def mean_loss(model_id: str, step: int, total: int) -> float:
    """A decreasing-trend loss curve with deterministic noise, as a float32 value."""
    start = 3.0 + 5.0 * _unit_noise(model_id, -1)
    floor = 0.02 + 0.2 * _unit_noise(model_id, -2)
    trend = floor + (start - floor) * math.exp(-4.0 * step / max(total, 1))
    noise = 0.85 + 0.3 * _unit_noise(model_id, step)
    return f32(trend * noise)


@dataclass(frozen=True)
class Progress:
    """Where a tuning job stands at one instant."""

    state: str  # CREATING | ACTIVE | FAILED
    completed_steps: int
    done: bool
    end_time: float | None = None
    error_status: str | None = None  # google.rpc.Code name when FAILED
    error_message: str | None = None


def steps_at(record: TunedModelRecord, moment: float) -> int:
    """Steps completed by ``moment`` if nothing stopped the job."""
    if moment <= record.start_time:
        return 0
    # A margin in seconds well above the float rounding of epoch seconds (~2.4e-7 s), so the moment
    # a step completes (start + step * step_seconds) counts that step whatever step_seconds is.
    steps = math.floor((moment - record.start_time + _TIME_MARGIN) / record.step_seconds)
    return max(0, min(record.total_steps, steps))


_TIME_MARGIN = 1e-6


def _step_time(record: TunedModelRecord, step: int) -> float:
    return record.start_time + step * record.step_seconds


def _first_end(record: TunedModelRecord) -> tuple[float, str, int]:
    """The event that ends the job first: ``(time, kind, completed steps then)``.

    A failure at step ``N`` ends with exactly ``N`` steps done (not a count recomputed from the
    clock, which float rounding can put one step short).
    """
    total = record.total_steps
    events: list[tuple[float, str, int]] = [(_step_time(record, total), "complete", total)]
    if record.fail_at_step is not None:
        at = min(record.fail_at_step, total)
        events.append((_step_time(record, at), "fail", at))
    for moment, kind in ((record.fail_time, "fail"), (record.cancel_time, "cancel")):
        if moment is not None:
            events.append((moment, kind, steps_at(record, moment)))
    priority = {"cancel": 0, "fail": 1, "complete": 2}
    return min(events, key=lambda event: (event[0], priority[event[1]]))


def progress(record: TunedModelRecord, now: float) -> Progress:
    """The job's state at ``now``."""
    when, kind, steps = _first_end(record)
    if when > now:
        return Progress("CREATING", steps_at(record, now), False)
    if kind == "complete":
        return Progress("ACTIVE", record.total_steps, True, end_time=when)
    if kind == "cancel":
        return Progress("FAILED", steps, True, when, "CANCELLED", CANCELLED_MESSAGE)
    message = (
        record.fail_message
        or f"Tuning job failed at step {steps} of {record.total_steps} (emulated failure)."
    )
    return Progress("FAILED", steps, True, when, "INTERNAL", message)


_SNAPSHOT_CACHE: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
_SNAPSHOT_CACHE_MODELS = 4096


def snapshots(record: TunedModelRecord, upto: int) -> list[dict[str, Any]]:
    """``TuningSnapshot`` JSON for steps 1..``upto`` (``epoch`` left out when 0).

    Snapshots depend only on fields fixed at creation, so they are computed once per step and
    cached (pollers ask for the same ones again and again); callers must not mutate them.
    """
    key = (
        record.id,
        record.start_time,
        record.step_seconds,
        record.batch_size,
        len(record.examples),
        record.total_steps,
    )
    cached = _SNAPSHOT_CACHE.get(key)
    if cached is None:
        if len(_SNAPSHOT_CACHE) >= _SNAPSHOT_CACHE_MODELS:
            _SNAPSHOT_CACHE.clear()
        cached = _SNAPSHOT_CACHE[key] = []
    examples = len(record.examples)
    for step in range(len(cached) + 1, upto + 1):
        snap: dict[str, Any] = {"step": step}
        epoch = epoch_of(step, record.batch_size, examples)
        if epoch:
            snap["epoch"] = epoch
        snap["meanLoss"] = mean_loss(record.id, step, record.total_steps)
        snap["computeTime"] = timestamp(_step_time(record, step))
        cached.append(snap)
    return cached[:upto]


def completed_percent(steps: int, total: int) -> float:
    """``completedPercent`` as a float32 value."""
    return f32(100.0 * steps / total)
