"""The Vertex AI backend: ``projects/*/locations/*/tuningJobs/*`` (``shared/api/vertex/CONTRACT.md``).

A tuning job is a synchronous resource (no operation): a wait reads the job itself, asking only for
its state, progress counters and error (``fields``), never the dataset examples or distributions of
its statistics; the data counts (examples, billable tokens, truncated examples) only until the wait
has seen them once.
Only SUCCEEDED, FAILED, CANCELLED and EXPIRED end a wait; every other ``JOB_STATE_*`` (QUEUED,
PENDING, RUNNING, CANCELLING, PAUSED, UPDATING, ...) is still running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_tuning import validation
from airflow_provider_tuning.backends.base import ApiCall
from airflow_provider_tuning.exceptions import UnexpectedResponseError
from airflow_provider_tuning.tuning_status import RPC_CODES, DataStats, TuningStatus, strip_training_data

_JOB_FIELDS = "name,state,tuningJobState,error,tunedModel,startTime,endTime,tuningJobMetadata"
_COUNTS = "tuningStepCount,tuningDatasetExampleCount,totalBillableTokenCount"
#: The fields of a TuningJob a wait reads until it has seen the data stats.
TUNING_JOB_FIELDS = (
    f"{_JOB_FIELDS},tuningDataStats(supervisedTuningDataStats({_COUNTS},totalTruncatedExampleCount),"
    f"preferenceOptimizationDataStats({_COUNTS},droppedExampleIndices))"
)
#: The fields of a TuningJob a wait reads once it has logged the data stats.
TUNING_JOB_PROGRESS_FIELDS = (
    f"{_JOB_FIELDS},tuningDataStats(supervisedTuningDataStats(tuningStepCount),"
    "preferenceOptimizationDataStats(tuningStepCount))"
)
API_VERSION = "v1"
_ENDED = {
    "JOB_STATE_SUCCEEDED": "ACTIVE",
    "JOB_STATE_FAILED": "FAILED",
    "JOB_STATE_CANCELLED": "CANCELLED",
    "JOB_STATE_EXPIRED": "FAILED",
}
_STATE_PREFIX = "JOB_STATE_"
_SUB_STATE_PREFIX = "TUNING_JOB_STATE_"


def _int(value: Any, where: str, name: str) -> int | None:
    """An int64 field (a JSON string on output, a number on input)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UnexpectedResponseError(
            200, None, f"{where} is not an integer: {value!r}", request=f"GET {name}"
        )
    try:
        return int(value)
    except ValueError:
        raise UnexpectedResponseError(
            200, None, f"{where} is not an integer: {value!r}", request=f"GET {name}"
        ) from None


def _mapping(parent: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UnexpectedResponseError(200, None, f"TuningJob.{key} is not an object", request=f"GET {name}")
    return value


def _data_stats(stats: Mapping[str, Any], name: str) -> DataStats | None:
    """The counts of a ``supervisedTuningDataStats`` or ``preferenceOptimizationDataStats``."""
    examples = _int(stats.get("tuningDatasetExampleCount"), "tuningDatasetExampleCount", name)
    tokens = _int(stats.get("totalBillableTokenCount"), "totalBillableTokenCount", name)
    truncated = _int(stats.get("totalTruncatedExampleCount"), "totalTruncatedExampleCount", name)
    dropped = stats.get("droppedExampleIndices")
    if truncated is None and dropped is not None:
        if not isinstance(dropped, list):
            raise UnexpectedResponseError(
                200, None, "droppedExampleIndices is not a list", request=f"GET {name}"
            )
        truncated = len(dropped)
    if examples is None and tokens is None:
        return None
    return DataStats(examples, tokens, truncated)


class VertexBackend:
    """Request builders and status parsing of Vertex AI tuning jobs."""

    name = "vertex"

    def normalize(self, name: str) -> str:
        """``projects/<p>/locations/<l>/tuningJobs/<id>``.

        :param name: a tuning job name.
        """
        return validation.tuning_job_name(name, what="name")

    def subject(self, name: str) -> str:
        """The tuning job itself.

        :param name: a normalised tuning job name.
        """
        return name

    def poll_call(
        self, name: str, *, api_version: str = API_VERSION, partial: bool = True, data_stats: bool = True
    ) -> ApiCall:
        """``GET /{version}/{name}``.

        :param name: a normalised tuning job name.
        :param api_version: ``v1`` or ``v1beta1`` (a Generative Language version means ``v1``).
        :param partial: ask only for the fields a wait needs.
        :param data_stats: also ask for the data counts (a partial poll leaves them out once seen).
        """
        version = api_version if api_version in ("v1", "v1beta1") else API_VERSION
        fields = TUNING_JOB_FIELDS if data_stats else TUNING_JOB_PROGRESS_FIELDS
        return ApiCall("GET", f"/{version}/{name}", {"fields": fields if partial else None})

    def parse(self, name: str, resource: Mapping[str, Any], *, full: bool = False) -> TuningStatus:
        """Parse a TuningJob.

        :param name: the name polled.
        :param resource: the TuningJob JSON.
        :param full: keep the resource (a final read).
        :raises UnexpectedResponseError: it does not have the expected shape.
        """
        if not isinstance(resource, Mapping):
            raise UnexpectedResponseError(200, None, "TuningJob is not a JSON object", request=f"GET {name}")
        raw_state = resource.get("state")
        if not isinstance(raw_state, str) or not raw_state.startswith(_STATE_PREFIX):
            raise UnexpectedResponseError(
                200, None, f"TuningJob.state is {raw_state!r}, not a JOB_STATE_*", request=f"GET {name}"
            )
        state = _ENDED.get(raw_state, "CREATING")
        sub_state = resource.get("tuningJobState")
        phase = raw_state.removeprefix(_STATE_PREFIX)
        if isinstance(sub_state, str) and sub_state.startswith(_SUB_STATE_PREFIX):
            phase = f"{phase}/{sub_state.removeprefix(_SUB_STATE_PREFIX)}"
        metadata = _mapping(resource, "tuningJobMetadata", name)
        stats = _mapping(resource, "tuningDataStats", name)
        kind_stats = _mapping(stats, "supervisedTuningDataStats", name) or _mapping(
            stats, "preferenceOptimizationDataStats", name
        )
        total = _int(kind_stats.get("tuningStepCount"), "tuningStepCount", name)
        data_stats = _data_stats(kind_stats, name)
        completed = _int(metadata.get("completedStepCount"), "completedStepCount", name)
        epoch = _int(metadata.get("completedEpochCount"), "completedEpochCount", name)
        if state == "ACTIVE" and total is not None:
            completed = total
        percent = 100.0 * completed / total if completed is not None and total else None
        error = _mapping(resource, "error", name)
        code = error.get("code") if isinstance(error.get("code"), int) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        if raw_state == "JOB_STATE_EXPIRED" and not message:
            message = "the tuning job expired before it finished"
        if state == "CANCELLED":
            code = RPC_CODES["CANCELLED"]
        if state == "FAILED" and not message:
            message = f"tuning job {name} ended {raw_state}"
        return TuningStatus(
            state=state,  # type: ignore[arg-type]
            done=raw_state in _ENDED,
            tuned_model=name,
            total_steps=total,
            completed_steps=completed,
            completed_percent=percent,
            epoch=epoch,
            error_code=code,
            error_message=message,
            phase=phase,
            data_stats=data_stats,
            resource=strip_training_data(resource) if full else {},
        )

    def cancel_call(self, name: str) -> ApiCall | None:
        """``POST /v1/<tuning job>:cancel``.

        :param name: a normalised tuning job name.
        """
        return ApiCall("POST", f"/{API_VERSION}/{name}:cancel", body={})

    def failure_call(self, status: TuningStatus) -> ApiCall | None:
        """None: a failed TuningJob carries its own error."""
        return None

    def failure_from(self, resource: Mapping[str, Any]) -> tuple[int | None, str] | None:
        """None: see :meth:`failure_call`."""
        return None


VERTEX = VertexBackend()
