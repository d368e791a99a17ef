"""Sensor that waits for a tuned model (or its tuning operation) to finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_tuning.constants import DEFAULT_CONN_ID, DEFER_TIMEOUT_MARGIN
from airflow_provider_tuning.exceptions import (
    GenerativeLanguageError,
    InvalidInputError,
    TuningTimeoutError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
    from airflow_provider_tuning.tuning_status import TuningStatus
    from airflow_provider_tuning.waiting import WaitPolicy, WaitState


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
        from airflow_provider_tuning.validation import failure_budget

        if bool(tuned_model_name) == bool(operation_name):
            raise InvalidInputError("give exactly one of tuned_model_name or operation_name")
        self.tuned_model_name = tuned_model_name
        self.operation_name = operation_name
        self.conn_id = conn_id
        self.api_version = api_version
        self.deferrable = deferrable
        self.max_consecutive_failures = failure_budget(max_consecutive_failures)
        self._state: WaitState | None = None

    @cached_property
    def hook(self) -> GenerativeLanguageHook:
        """The hook used by ``poke``."""
        from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

        return GenerativeLanguageHook(conn_id=self.conn_id, api_version=self.api_version)

    @property
    def target(self) -> str:
        """The (rendered) name polled: the operation if given, else the tuned model."""
        from airflow_provider_tuning.validation import tuning_name

        return tuning_name(self.operation_name or self.tuned_model_name)

    @cached_property
    def policy(self) -> WaitPolicy:
        """The shared wait policy: the failure budget and the backoff after a failed poll.

        The sensor's own ``poke_interval`` and ``timeout`` pace the pokes, as for any sensor.
        """
        from airflow_provider_tuning.waiting import WaitPolicy

        return WaitPolicy(
            poll_interval=self.poke_interval, max_consecutive_failures=self.max_consecutive_failures
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Poll once: done -> the status as XCom; FAILED -> TuningFailedError; else False.

        A transient failure counts against ``max_consecutive_failures``. In ``poke`` mode the
        count lives on the sensor across pokes; a rescheduled poke is a new process that keeps
        nothing, so in ``reschedule`` mode a failed poll is repeated within the same poke (with
        the policy's backoff) until it succeeds or the budget runs out.
        """
        from airflow_provider_tuning.waiting import Done, GiveUp, Sleep, WaitState, check_tuning

        if self._state is None:
            self._state = WaitState()
        state = self._state
        while True:
            try:
                status = check_tuning(self.hook, self.target, api_version=self.api_version, state=state)
            except GenerativeLanguageError as err:
                decision = self.policy.after_error(state, err, time.time())
                if isinstance(decision, GiveUp):  # a final error, or the budget is spent
                    raise decision.error from None
                self.log.warning(
                    "Failed poll %d/%d of %s: %s",
                    state.failures,
                    self.max_consecutive_failures,
                    self.target,
                    err,
                )
                if not self.reschedule or not isinstance(decision, Sleep):
                    return False
                time.sleep(decision.seconds)
                continue
            self.policy.log_status(state, status, self.log, self.target)
            if not isinstance(self.policy.after_status(state, status, time.time()), Done):
                return False
            return PokeReturnValue(is_done=True, xcom_value=self._final(status))

    def _final(self, status: TuningStatus) -> dict[str, Any]:
        """Raise the failure of a failed job; return a finished job's full status (with snapshots)."""
        from airflow_provider_tuning.backends import get_backend
        from airflow_provider_tuning.waiting import explain_failure

        backend = get_backend("gemini")
        if status.failed:
            explain_failure(status, backend, self.hook.call).raise_for_failure()
        version = self.api_version or self.hook.default_api_version()
        full = self.hook.call(backend.poll_call(self.target, api_version=version, partial=False))
        return backend.parse(self.target, full, full=True).to_dict()

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
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate the trigger's event: success -> the full final status as plain JSON, else raise.

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
        return self._final(status)
