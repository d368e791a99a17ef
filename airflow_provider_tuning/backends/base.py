"""The contract between the shared wait machinery and one tuning service (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow_provider_tuning.tuning_status import TuningStatus


@dataclass(frozen=True)
class ApiCall:
    """One REST call, described as data: the sync and the async hook both send it.

    :param method: the HTTP method.
    :param path: the API path, starting with ``/``.
    :param params: query parameters (``None`` values are left out).
    :param body: the JSON body, if any.
    :param idempotent: whether it may be sent again after a connection error.
    """

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    idempotent: bool = True


class TuningBackend(Protocol):
    """What a tuning service adds to the shared wait: how to poll a job and how to read the answer."""

    name: str

    def normalize(self, name: str) -> str:
        """Return the canonical name of the job (or of what is polled for it).

        :param name: the user-given name.
        :raises InvalidInputError: it is not a name of this backend.
        """

    def subject(self, name: str) -> str:
        """What a wait's events name as ``tuned_model``: the tuned model or the job polled.

        :param name: the canonical name.
        """

    def poll_call(
        self, name: str, *, api_version: str, partial: bool = True, data_stats: bool = True
    ) -> ApiCall:
        """Return the call that reads the job's state.

        :param name: the canonical name.
        :param api_version: the API version to read a job resource with.
        :param partial: ask only for the fields a wait needs (the ``fields`` system parameter).
        :param data_stats: also ask for the dataset's counts, where the service has them (a wait
            stops asking once it has logged them).
        """

    def parse(self, name: str, resource: Mapping[str, Any], *, full: bool = False) -> TuningStatus:
        """Parse what :meth:`poll_call` returned.

        :param name: the canonical name polled.
        :param resource: the JSON object.
        :param full: keep everything (a final read), not only what a wait needs.
        :raises UnexpectedResponseError: it does not have the expected shape.
        """

    def cancel_call(self, name: str) -> ApiCall | None:
        """Return the call that cancels the job polled as ``name``, if the service has one.

        :param name: the canonical name.
        """

    def failure_call(self, status: TuningStatus) -> ApiCall | None:
        """Return the call that tells why a failed job failed, when its status does not say."""

    def failure_from(self, resource: Mapping[str, Any]) -> tuple[int | None, str] | None:
        """Return ``(code, message)`` of the failure in what :meth:`failure_call` returned."""
