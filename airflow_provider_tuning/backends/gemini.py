"""The Generative Language API backend: ``tunedModels/<id>`` and their ``operations`` (CONTRACT.md).

A wait polls the create operation (``GET /v1/tunedModels/<id>/operations/<op>``, the route Google's
own clients poll) or, when the operation is not known, the tuned model
(``GET /{version}/tunedModels/<id>``). A poll asks only for the fields a wait needs, with the
``fields`` system parameter, so a 10,000-step job does not send every snapshot on every poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_tuning import validation
from airflow_provider_tuning.backends.base import ApiCall
from airflow_provider_tuning.exceptions import UnexpectedResponseError
from airflow_provider_tuning.tuning_status import TuningStatus

#: The fields of an Operation a wait reads: state, progress counters and the error, no snapshots.
OPERATION_FIELDS = (
    "name,done,error,response(name,state),metadata(tunedModel,totalSteps,completedSteps,completedPercent)"
)
#: The fields of a TunedModel a wait reads.
TUNED_MODEL_FIELDS = "name,state,baseModel"
#: The route operations are read on (the only version that has ``operations.cancel``).
OPERATION_API_VERSION = "v1"


class GeminiBackend:
    """Request builders and status parsing of the Generative Language API's tuning."""

    name = "gemini"

    def normalize(self, name: str) -> str:
        """``tunedModels/<id>`` or ``tunedModels/<id>/operations/<op>``.

        :param name: a tuned model (or bare id) or operation name.
        """
        return validation.tuning_name(name)

    def subject(self, name: str) -> str:
        """The tuned model a name polled belongs to (``tunedModels/<id>``).

        :param name: a normalised name.
        """
        return validation.tuned_model_of(name)

    def poll_call(
        self, name: str, *, api_version: str, partial: bool = True, data_stats: bool = True
    ) -> ApiCall:
        """``GET`` the operation (on ``v1``) or the tuned model (on ``api_version``).

        :param name: a normalised name.
        :param api_version: the version a tuned model is read with.
        :param partial: ask only for the fields a wait needs.
        :param data_stats: unused (the Gemini API gives no data stats).
        """
        if validation.is_operation_name(name):
            fields = OPERATION_FIELDS if partial else None
            return ApiCall("GET", f"/{OPERATION_API_VERSION}/{name}", {"fields": fields})
        fields = TUNED_MODEL_FIELDS if partial else None
        return ApiCall("GET", f"/{api_version}/{name}", {"fields": fields})

    def parse(self, name: str, resource: Mapping[str, Any], *, full: bool = False) -> TuningStatus:
        """Parse an Operation or a TunedModel.

        :param name: the name polled.
        :param resource: the JSON object.
        :param full: keep every snapshot and the resource (a final read), not only what a wait needs.
        :raises UnexpectedResponseError: it does not have the expected shape (or nests too deeply).
        """
        try:
            if validation.is_operation_name(name):
                return TuningStatus.from_operation(resource, request=f"GET {name}", full=full)
            return TuningStatus.from_tuned_model(resource, request=f"GET {name}", full=full)
        except RecursionError:
            raise UnexpectedResponseError(
                200, None, "the response nests too deeply", request=f"GET {name}"
            ) from None

    def cancel_call(self, name: str) -> ApiCall | None:
        """``POST /v1/<operation>:cancel``; a tuned model polled without its operation has no cancel.

        :param name: a normalised name.
        """
        if not validation.is_operation_name(name):
            return None
        return ApiCall("POST", f"/{OPERATION_API_VERSION}/{name}:cancel", body={})

    def failure_call(self, status: TuningStatus) -> ApiCall | None:
        """A FAILED TunedModel carries no message; its operations do: list them.

        :param status: the final status.
        """
        if not status.failed or status.operation is not None or not status.tuned_model:
            return None
        name = validation.tuned_model_of(status.tuned_model)
        return ApiCall("GET", f"/{OPERATION_API_VERSION}/{name}/operations", {"pageSize": 100})

    def failure_from(self, resource: Mapping[str, Any]) -> tuple[int | None, str] | None:
        """The error of the failed operation in an ``operations.list`` page (the last one that failed).

        :param resource: the ``ListOperationsResponse``.
        """
        operations = resource.get("operations")
        if not isinstance(operations, list):
            return None
        for operation in reversed(operations):
            try:
                found = TuningStatus.from_operation(operation)
            except UnexpectedResponseError:
                continue
            if found.failed and found.error_message:
                return found.error_code, found.error_message
        return None


GEMINI = GeminiBackend()
