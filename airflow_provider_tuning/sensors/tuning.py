"""Sensor that waits for a tuned model (or its tuning operation) to finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_tuning.constants import DEFAULT_CONN_ID
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    InvalidInputError,
    TuningTimeoutError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook


class TunedModelSensor(BaseSensorOperator):
    """Wait until a tuned model is ACTIVE; fail (never succeed) when its tuning FAILED.

    Works in ``poke`` and ``reschedule`` mode (each poke is one GET through the hook) and in
    deferrable mode (the wait runs in the triggerer as
    :class:`~airflow_provider_tuning.triggers.tuning.TuningOperationTrigger`, with an absolute
    deadline of now + ``timeout``). Returns the final status as plain JSON (tuned model name,
    state, steps, last loss, snapshots).

    :param tuned_model_name: ``tunedModels/<id>`` (or a bare id) to wait for. (templated)
    :param operation_name: or the tuning operation ``tunedModels/<id>/operations/<op>``. (templated)
    :param conn_id: the Airflow connection id. (templated)
    :param api_version: API version used to read the tuned model; default: the connection's. (templated)
    :param deferrable: defer to the triggerer instead of poking
        (default: ``[operators] default_deferrable``).
    :param max_consecutive_failures: transient failed polls in a row (after the hook's own retries)
        before the sensor fails.
    """

    template_fields: Sequence[str] = ("tuned_model_name", "operation_name", "conn_id", "api_version")
    ui_color = "#d8e7fb"

    def __init__(
        self,
        *,
        tuned_model_name: str | None = None,
        operation_name: str | None = None,
        conn_id: str = DEFAULT_CONN_ID,
        api_version: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_consecutive_failures: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(tuned_model_name) == bool(operation_name):
            raise InvalidInputError("give exactly one of tuned_model_name or operation_name")
        if (
            not isinstance(max_consecutive_failures, int)
            or isinstance(max_consecutive_failures, bool)
            or max_consecutive_failures < 1
        ):
            raise InvalidInputError(
                f"max_consecutive_failures must be an integer >= 1, got {max_consecutive_failures!r}"
            )
        self.tuned_model_name = tuned_model_name
        self.operation_name = operation_name
        self.conn_id = conn_id
        self.api_version = api_version
        self.deferrable = deferrable
        self.max_consecutive_failures = max_consecutive_failures
        self._consecutive_failures = 0
        self._last_line: str | None = None

    @cached_property
    def hook(self) -> GenerativeLanguageHook:
        """The hook used by ``poke``."""
        from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

        return GenerativeLanguageHook(conn_id=self.conn_id, api_version=self.api_version)

    @property
    def target(self) -> str:
        """The (rendered) name polled: the operation if given, else the tuned model."""
        from airflow_provider_tuning.tuning_status import normalize_tuning_name

        return normalize_tuning_name(self.operation_name or self.tuned_model_name)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Poll once: done -> the status as XCom; FAILED -> TuningFailedError; else False."""
        from airflow_provider_tuning.waiting import check_tuning, is_transient, raise_for_failure

        try:
            status = check_tuning(self.hook, self.target, api_version=self.api_version)
        except (ApiError, ApiConnectionError) as err:
            if not is_transient(err):
                raise
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.max_consecutive_failures:
                raise
            self.log.warning(
                "Failed poll %d/%d of %s: %s",
                self._consecutive_failures,
                self.max_consecutive_failures,
                self.target,
                err,
            )
            return False
        self._consecutive_failures = 0
        line = status.progress_line()
        if line != self._last_line:  # in poke mode, log progress only when it changes
            self.log.info("%s: %s", status.tuned_model or self.target, line)
            self._last_line = line
        if not status.done:
            return False
        raise_for_failure(self.hook, status)
        return PokeReturnValue(is_done=True, xcom_value=status.to_dict())

    def execute(self, context: Context) -> Any:
        """Poke / reschedule as usual, or check once and defer to the trigger."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue):
            return result.xcom_value
        from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

        self.defer(
            trigger=TuningOperationTrigger(
                conn_id=self.conn_id,
                name=self.target,
                api_version=self.api_version,
                poll_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
                max_consecutive_failures=self.max_consecutive_failures,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate the trigger's event: success -> the status as plain JSON, anything else raises.

        :raises TuningFailedError: the tuning FAILED (``TuningCancelledError`` when cancelled).
        :raises AirflowSensorTimeout: the deadline passed (so ``soft_fail`` applies as for any sensor).
        :raises ApiError: polling kept failing or was refused (e.g. 404).
        """
        from airflow_provider_tuning.tuning_status import status_from_event

        try:
            status = status_from_event(event)
        except TuningTimeoutError as err:
            raise AirflowSensorTimeout(str(err)) from err
        self.log.info("%s is %s: %s", status.tuned_model, status.state, status.progress_line())
        return status.to_dict()
