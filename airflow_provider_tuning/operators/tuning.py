"""Operators that create, wait for, read, list, update and delete tuned models.

Failure semantics:

* Invalid operator input (:class:`~airflow_provider_tuning.exceptions.InvalidInputError`,
  :class:`~airflow_provider_tuning.exceptions.TrainingDataError`) is detected before any API call
  and fails the task **without retry**: it is raised as ``AirflowFailException`` whose
  ``__cause__`` is the specific error (a retry would meet the same input). So is a
  ``tuned_model_id`` that holds a model of another task instance or of another request (see
  :class:`CreateTunedModelOperator`).
* A tuning job that ended FAILED or was cancelled
  (:class:`~airflow_provider_tuning.exceptions.TuningFailedError`,
  :class:`~airflow_provider_tuning.exceptions.TuningCancelledError`), whether the worker waited
  for it or the trigger did (``execute_complete`` with a failed event), also fails **without
  retry**, as ``AirflowFailException`` with the specific error as ``__cause__``: a retry would
  reattach to the same FAILED model and fail the same way. With ``recreate_on_failure=True`` it
  keeps its own class and is retried as configured, because a retry creates the model again under
  the next deterministic id (once all :data:`MAX_GENERATIONS` ended FAILED, without retry again).
* Everything else keeps its own class and is retried as configured on the task: API errors
  (:class:`~airflow_provider_tuning.exceptions.ApiError` subclasses) and an expired wait
  (:class:`~airflow_provider_tuning.exceptions.TuningTimeoutError`). A retry never duplicates a
  model: it meets 409 ALREADY_EXISTS on the deterministic id and reattaches (waits again for a
  CREATING model).

Only the connection id travels: no credential is ever an argument, a template field, a trigger
argument or part of an XCom value. Heavy modules (the hook, google-auth, HTTP clients, the trigger
and the data loaders) are imported inside methods, so DAG files importing this module stay cheap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, Asset, BaseOperator, conf

from airflow_provider_tuning import validation
from airflow_provider_tuning.constants import DEFAULT_CONN_ID, DEFER_TIMEOUT_MARGIN
from airflow_provider_tuning.exceptions import (
    AlreadyExistsError,
    ApiConnectionError,
    ApiError,
    GenerativeLanguageError,
    InvalidInputError,
    NotFoundError,
    TuningFailedError,
)
from airflow_provider_tuning.operators import _validation as check
from airflow_provider_tuning.operators._ids import (
    Provenance,
    default_tuned_model_id,
    recreated_tuned_model_id,
)
from airflow_provider_tuning.operators._listing import Listing
from airflow_provider_tuning.operators._results import total_steps_of_operation, tuned_model_result
from airflow_provider_tuning.operators._templating import keep_inline_data
from airflow_provider_tuning.operators._validation import (
    failures_fail_without_retry,
    input_errors_fail_without_retry,
)
from airflow_provider_tuning.operators.links import TunedModelLink

if TYPE_CHECKING:
    from airflow_provider_tuning.datasets import ExampleLimits
    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

#: The XCom key under which :class:`CreateTunedModelOperator` pushes the ``tunedModels/<id>`` name as
#: soon as it is known (right after create or reattach), so a teardown can delete the model even
#: when the task fails later: ``ti.xcom_pull(task_ids=..., key=TUNED_MODEL_XCOM_KEY)``.
TUNED_MODEL_XCOM_KEY = "tuned_model"
#: How many models (the first one plus recreations) one task instance may create at most.
MAX_GENERATIONS = 10


def _task_instance_key(context: Any) -> tuple[str, str, str, int]:
    """Return ``(dag_id, task_id, run_id, map_index)`` of the task instance in ``context``."""
    ti = context["ti"]
    run_id = getattr(ti, "run_id", None) or context.get("run_id")
    map_index = getattr(ti, "map_index", None)
    return ti.dag_id, ti.task_id, str(run_id), -1 if map_index is None else int(map_index)


def _check_provenance(model: dict[str, Any], model_id: str, request: _CreateRequest) -> None:
    """Accept the model found under ``model_id`` only if this task instance made it from this request.

    :raises InvalidInputError: the model has no provenance marker, or another one; the message names
        the id and says whether another task instance or another request made it.
    """
    found = Provenance.parse(model.get("description"))
    if found == request.provenance:
        return
    name = f"tunedModels/{model_id}"
    if found is None:
        why = (
            "was not created by this operator: its description has no '[airflow ti=... req=...]' "
            "marker (it was made outside Airflow or by an older provider version, or the marker was "
            "edited away)"
        )
    elif found.task_instance != request.provenance.task_instance:
        why = "was created by another task instance (another DAG run, task or map index)"
    else:
        why = (
            "was created by this task instance from another request (the base model, the training "
            "data or the hyperparameters differ)"
        )
    existing_base = model.get("baseModel")
    if existing_base and existing_base != request.base_model:
        why += f"; it is a model of {existing_base}, not {request.base_model}"
    raise InvalidInputError(
        f"tuned model id {model_id!r} is taken: {name} {why}. It is not reattached: give this run its "
        "own tuned_model_id (e.g. templated with {{ run_id }}), leave tuned_model_id unset for the "
        f"deterministic per-run id, or delete {name}"
    )


def _config_float(option: str, fallback: float) -> float:
    """Read a ``[generative_language]`` option (declared with its default in ``get_provider_info``)."""
    return conf.getfloat("generative_language", option, fallback=fallback)


class _GenerativeLanguageOperator(BaseOperator):
    """Shared parts: the connection id, the API version and a lazily imported hook.

    :param conn_id: the Airflow connection id (type ``generativelanguage``).
    :param api_version: API version; ``None`` means the connection's, else ``v1beta``.
    """

    def __init__(
        self, *, conn_id: str = DEFAULT_CONN_ID, api_version: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.api_version = api_version

    def get_hook(self, api_version: str | None = None) -> GenerativeLanguageHook:
        """Return a hook on ``conn_id`` (imported here so DAG parsing never loads HTTP or auth libraries).

        :param api_version: the API version to bind the hook to; ``None`` uses ``self.api_version``.
        """
        from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

        return GenerativeLanguageHook(conn_id=self.conn_id, api_version=api_version or self.api_version)

    def _persist_link(self, context: Any, hook: GenerativeLanguageHook, api_version: str, name: str) -> None:
        try:
            TunedModelLink.persist(
                context, base_url=hook.settings.base_url, api_version=api_version, tuned_model=name
            )
        except Exception:  # a link is a convenience: it must never fail the task
            self.log.warning(
                "Could not store the %r extra link for %s", TunedModelLink.name, name, exc_info=True
            )


@dataclass
class _Attachment:
    """The tuned model this task instance works on, after create or reattach."""

    name: str
    operation: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    created: bool = False

    @property
    def operation_name(self) -> str | None:
        name = (self.operation or {}).get("name")
        return name if isinstance(name, str) else None


@dataclass(frozen=True)
class _CreateRequest:
    """A fully validated create request."""

    api_version: str
    base_model: str
    tuned_model_id: str
    body: dict[str, Any]
    provenance: Provenance


class CreateTunedModelOperator(_GenerativeLanguageOperator):
    """Create a tuned model (Gemini in ``v1beta`` or PaLM in ``v1beta3``) and wait for it.

    A retry never creates a duplicate: the default ``tuned_model_id`` is deterministic per DAG,
    task, run and map index, and a 409 ALREADY_EXISTS reattaches to the existing model (CREATING:
    wait; ACTIVE: done; FAILED: fail with the API's error, or create it again under the next
    deterministic id ``<id>-r2``, ``<id>-r3``... when ``recreate_on_failure`` is set). It reattaches
    only to a model this task instance created from this request: the description sent ends with a
    provenance marker (``[airflow ti=<hash> req=<hash>]``, see
    :class:`~airflow_provider_tuning.operators._ids.Provenance`), and a model under the id without
    it, or with another one (another run reusing an explicit ``tuned_model_id``, other training
    data), fails the task without retry, naming the id.

    Returns to XCom a plain dict: ``tuned_model``, ``base_model``, ``display_name``, ``state``,
    ``total_steps``, ``final_mean_loss``, ``snapshots``, ``create_time``, ``start_time``,
    ``complete_time``, ``operation`` and ``api_version``. When it waits, it also emits an event on
    its outlet asset with ``tuned_model``, ``base_model`` and ``final_mean_loss`` in the extra.
    As soon as the model name is known (right after create or reattach, before any wait), it is
    pushed to XCom under the key ``"tuned_model"`` (:data:`TUNED_MODEL_XCOM_KEY`), so a teardown
    can delete the model even when this task fails (a teardown's default trigger rule skips it when
    its setup failed, hence ``ALL_DONE``)::

        delete = DeleteTunedModelOperator(
            task_id="delete_model",
            tuned_model_name="{{ ti.xcom_pull(task_ids='tune', key='tuned_model') }}",
            ignore_missing=True,
        ).as_teardown(setups=tune)
        delete.trigger_rule = TriggerRule.ALL_DONE

    :param base_model: ``models/<id>`` or a bare id, e.g. ``models/gemini-1.5-flash-001-tuning`` or
        ``models/text-bison-001``. (templated)
    :param training_data: inline list of dicts, pairs or strings, a JSON string, a path or URI to a
        ``.jsonl``/``.json``/``.csv`` file, or an upstream XCom value (pass the ``XComArg``). (templated:
        a path or URI is rendered and an ``XComArg`` resolves; inline data, a list or a JSON string of
        one, is sent as it is, so ``{{ ... }}`` or ``{% ... %}`` in an example stays text)
    :param display_name: at most 40 characters. (templated)
    :param description: free text. (templated)
    :param input_field: the input column/key of the training data. (templated)
    :param output_field: the output column/key of the training data. (templated)
    :param example_limits: an ``ExampleLimits`` or a dict of its fields (max input/output characters,
        max examples, max file bytes).
    :param epoch_count: positive integer. (templated)
    :param batch_size: positive integer. (templated)
    :param learning_rate: positive float; exclusive with ``learning_rate_multiplier``. (templated)
    :param learning_rate_multiplier: positive float, ``v1beta`` only. (templated)
    :param tuned_model_id: the id to create; default: deterministic per task instance. (templated)
    :param temperature: float in [0, 1] for the tuned model. (templated)
    :param top_p: float in [0, 1] for the tuned model. (templated)
    :param top_k: positive integer for the tuned model. (templated)
    :param api_version: ``v1beta`` or ``v1beta3``; default ``v1beta3`` for PaLM ``*-bison`` base
        models, else ``v1beta``. (templated)
    :param conn_id: the Airflow connection id.
    :param wait_for_completion: wait until the job ends; when ``False`` return right after create.
    :param deferrable: wait in the triggerer instead of the worker.
    :param poll_interval: seconds between polls; default ``[generative_language] poll_interval`` (30).
    :param timeout: how long to wait for the job (seconds or timedelta); default
        ``[generative_language] default_timeout`` (86400).
    :param max_consecutive_failures: transient poll failures in a row before giving up; default
        ``[generative_language] max_consecutive_failures`` (5).
    :param recreate_on_failure: when the model found under the id ended FAILED, create a new one
        under the next deterministic id instead of failing.
    :param asset: the outlet asset to emit when the model is ready; default
        ``Asset(name="tuned_model/<dag_id>/<task_id>", uri="generative-language://tunedModels/<dag_id>.<task_id>")``.
    """

    template_fields: Sequence[str] = (
        "base_model",
        "training_data",
        "display_name",
        "description",
        "input_field",
        "output_field",
        "epoch_count",
        "batch_size",
        "learning_rate",
        "learning_rate_multiplier",
        "tuned_model_id",
        "temperature",
        "top_p",
        "top_k",
        "api_version",
    )
    operator_extra_links = (TunedModelLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        base_model: str,
        training_data: Any,
        display_name: str | None = None,
        description: str | None = None,
        input_field: str = "text_input",
        output_field: str = "output",
        example_limits: ExampleLimits | dict[str, Any] | None = None,
        epoch_count: int | str | None = None,
        batch_size: int | str | None = None,
        learning_rate: float | str | None = None,
        learning_rate_multiplier: float | str | None = None,
        tuned_model_id: str | None = None,
        temperature: float | str | None = None,
        top_p: float | str | None = None,
        top_k: int | str | None = None,
        api_version: str | None = None,
        conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        timeout: timedelta | float | None = None,
        max_consecutive_failures: int | None = None,
        recreate_on_failure: bool = False,
        asset: Asset | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, api_version=api_version, **kwargs)
        self.base_model = base_model
        self.training_data = training_data
        self.display_name = display_name
        self.description = description
        self.input_field = input_field
        self.output_field = output_field
        self.example_limits = example_limits
        self.epoch_count = epoch_count
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_multiplier = learning_rate_multiplier
        self.tuned_model_id = tuned_model_id
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        if poll_interval is None:
            poll_interval = _config_float("poll_interval", 30.0)
        if timeout is None:
            timeout = _config_float("default_timeout", 86400.0)
        if max_consecutive_failures is None:
            max_consecutive_failures = int(_config_float("max_consecutive_failures", 5))
        self.poll_interval = validation.seconds("poll_interval", poll_interval)
        self.timeout = validation.seconds("timeout", timeout)
        self.max_consecutive_failures = validation.failure_budget(max_consecutive_failures)
        self.recreate_on_failure = recreate_on_failure
        self.asset = asset or Asset(
            name=f"tuned_model/{self.dag_id}/{self.task_id}",
            uri=f"generative-language://tunedModels/{self.dag_id}.{self.task_id}",
        )
        if wait_for_completion:
            # Only a finished model is news for downstream DAGs: without waiting, no outlet.
            self.add_outlets([self.asset])

    # --- templating ------------------------------------------------------------------------------

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: Any
    ) -> None:
        """Render the template fields, except inline ``training_data`` (see ``_templating``)."""
        if parent is self:
            template_fields = keep_inline_data(self, template_fields, ("training_data",), context)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    # --- validation ------------------------------------------------------------------------------

    def _limits(self) -> ExampleLimits:
        from airflow_provider_tuning.datasets import ExampleLimits

        if self.example_limits is None:
            return ExampleLimits()
        if isinstance(self.example_limits, ExampleLimits):
            return self.example_limits
        if isinstance(self.example_limits, dict):
            try:
                return ExampleLimits(**self.example_limits)
            except TypeError as err:
                raise InvalidInputError(f"example_limits has an unknown field: {err}") from err
        raise InvalidInputError(
            f"example_limits must be an ExampleLimits or a dict, got {self.example_limits!r}"
        )

    def build_request(self, context: Any) -> _CreateRequest:
        """Validate every argument and the training data; return the create request (no API call).

        :param context: the Airflow context (for the deterministic id).
        :raises InvalidInputError: an argument is invalid.
        :raises TrainingDataError: the training data is invalid.
        """
        from airflow_provider_tuning.datasets import build_training_data, load_examples

        base_model = validation.base_model_name(self.base_model)
        api_version = check.resolve_api_version(base_model, self.api_version)
        display_name = validation.display_name(self.display_name)
        description = validation.optional_string("description", self.description)
        hyperparameters = check.build_hyperparameters(
            api_version=api_version,
            epoch_count=self.epoch_count,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            learning_rate_multiplier=self.learning_rate_multiplier,
        )
        sampling = check.build_sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        for field in ("input_field", "output_field"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise InvalidInputError(f"{field} must be a non-empty string, got {getattr(self, field)!r}")
        if self.tuned_model_id:
            model_id = validation.tuned_model_id(self.tuned_model_id)
        else:
            model_id = self.default_tuned_model_id(context)
        examples = load_examples(
            self.training_data,
            input_field=self.input_field,
            output_field=self.output_field,
            limits=self._limits(),
        )
        task: dict[str, Any] = {"trainingData": build_training_data(examples)}
        if hyperparameters:
            task["hyperparameters"] = hyperparameters
        body: dict[str, Any] = {"baseModel": base_model}
        if display_name is not None:
            body["displayName"] = display_name
        body.update(sampling)
        body["tuningTask"] = task
        provenance = Provenance.of(*_task_instance_key(context), api_version, body)
        body["description"] = provenance.describe(description)
        self.log.info(
            "Validated %d training examples for %s (%s), tuned model id %r",
            len(examples),
            base_model,
            api_version,
            model_id,
        )
        return _CreateRequest(
            api_version=api_version,
            base_model=base_model,
            tuned_model_id=model_id,
            body=body,
            provenance=provenance,
        )

    @staticmethod
    def default_tuned_model_id(context: Any) -> str:
        """Return the deterministic tuned model id of the task instance in ``context``.

        :param context: the Airflow context (``ti`` gives dag id, task id, run id and map index).
        """
        return default_tuned_model_id(*_task_instance_key(context))

    # --- create or reattach ----------------------------------------------------------------------

    def _find_operation(self, hook: GenerativeLanguageHook, name: str) -> dict[str, Any] | None:
        """Return the create operation of ``name`` if the API lists it, else ``None`` (poll the model)."""
        try:
            for operation in hook.list_operations(name, api_version="v1"):
                if isinstance(operation, dict) and isinstance(operation.get("name"), str):
                    return operation
        except (ApiError, ApiConnectionError) as err:
            self.log.info("Could not list the operations of %s (%s); polling the model instead", name, err)
        return None

    @staticmethod
    def _failure_of(hook: GenerativeLanguageHook, name: str, model: dict[str, Any]) -> TuningFailedError:
        """The error of a FAILED model, with the message of its failed operation (one lookup for all)."""
        from airflow_provider_tuning.backends import get_backend
        from airflow_provider_tuning.exceptions import TuningCancelledError
        from airflow_provider_tuning.tuning_status import TuningStatus
        from airflow_provider_tuning.waiting import explain_failure

        status = explain_failure(TuningStatus.from_tuned_model(model), get_backend("gemini"), hook.call)
        cls = TuningCancelledError if status.state == "CANCELLED" else TuningFailedError
        return cls(name, status.error_message or f"state {status.state}", status.error_code)

    @staticmethod
    def _remember(context: Any, name: str) -> None:
        """Push ``name`` to XCom under :data:`TUNED_MODEL_XCOM_KEY` (a teardown deletes it from there)."""
        context["ti"].xcom_push(key=TUNED_MODEL_XCOM_KEY, value=name)

    def _create_or_reattach(
        self, hook: GenerativeLanguageHook, request: _CreateRequest, context: Any
    ) -> _Attachment:
        ti = context["ti"]
        generations = MAX_GENERATIONS if self.recreate_on_failure else 1
        for generation in range(1, generations + 1):
            model_id = (
                request.tuned_model_id
                if generation == 1
                else recreated_tuned_model_id(request.tuned_model_id, generation)
            )
            name = f"tunedModels/{model_id}"
            try:
                operation = hook.create_tuned_model(request.body, model_id, api_version=request.api_version)
            except AlreadyExistsError:
                self.log.info(
                    "Tuned model %s already exists (try %s): reattaching instead of creating a duplicate",
                    name,
                    getattr(ti, "try_number", "?"),
                )
            else:
                metadata = operation.get("metadata")
                if isinstance(metadata, dict) and isinstance(metadata.get("tunedModel"), str):
                    name = metadata["tunedModel"]
                self.log.info("Created tuned model %s (operation %s)", name, operation.get("name"))
                self._remember(context, name)
                return _Attachment(name=name, operation=operation, created=True)

            model = hook.get_tuned_model(name, api_version=request.api_version)
            _check_provenance(model, model_id, request)
            self._remember(context, name)
            state = model.get("state")
            if state == "ACTIVE":
                self.log.info("Reattached to %s: it is already ACTIVE", name)
                return _Attachment(name=name, model=model)
            if state != "FAILED":
                listed = self._find_operation(hook, name)
                self.log.info(
                    "Reattached to %s (state %s); waiting on %s",
                    name,
                    state,
                    (listed or {}).get("name") or "the model itself",
                )
                return _Attachment(name=name, operation=listed, model=model)
            failure = self._failure_of(hook, name, model)
            message = failure.api_message
            if not self.recreate_on_failure:
                raise failure
            if generation < generations:
                self.log.warning(
                    "Tuned model %s ended FAILED (%s). recreate_on_failure=True: creating a new model as "
                    "tunedModels/%s",
                    name,
                    message,
                    recreated_tuned_model_id(request.tuned_model_id, generation + 1),
                )
        exhausted = TuningFailedError(
            f"tunedModels/{recreated_tuned_model_id(request.tuned_model_id, generations)}",
            f"all {generations} models of this task instance ended FAILED; not creating another",
        )
        raise AirflowFailException(f"{type(exhausted).__name__}: {exhausted}") from exhausted

    # --- execute ---------------------------------------------------------------------------------

    @failures_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Validate, create (or reattach to) the tuned model and wait for it as configured.

        :param context: the Airflow context.
        """
        request = self.build_request(context)
        hook = self.get_hook(request.api_version)
        attachment = self._create_or_reattach(hook, request, context)
        self._persist_link(context, hook, request.api_version, attachment.name)
        total_steps = total_steps_of_operation(attachment.operation)

        if not self.wait_for_completion:
            self.log.info("wait_for_completion=False: returning while %s tunes", attachment.name)
            model = attachment.model or hook.get_tuned_model(attachment.name, api_version=request.api_version)
            return tuned_model_result(
                model,
                api_version=request.api_version,
                operation=attachment.operation_name,
                total_steps=total_steps,
            )
        if attachment.model is not None and attachment.model.get("state") == "ACTIVE":
            return self._finish(
                context, hook, attachment.name, request.api_version, None, None, attachment.model
            )

        target = attachment.operation_name or attachment.name
        deadline = time.time() + self.timeout
        if self.deferrable:
            from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

            self.log.info("Deferring: the triggerer polls %s every %ss", target, self.poll_interval)
            self.defer(
                trigger=TuningOperationTrigger(
                    conn_id=self.conn_id,
                    name=target,
                    api_version=request.api_version,
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                    max_consecutive_failures=self.max_consecutive_failures,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
                kwargs={
                    "tuned_model": attachment.name,
                    "api_version": request.api_version,
                    "operation": attachment.operation_name,
                    "total_steps": total_steps,
                },
            )
        from airflow_provider_tuning.waiting import wait_for_tuning

        self.log.info("Waiting in the worker for %s (poll every %ss)", target, self.poll_interval)
        status = wait_for_tuning(
            hook,
            target,
            poll_interval=self.poll_interval,
            deadline=deadline,
            max_consecutive_failures=self.max_consecutive_failures,
            log=self.log,
        )
        steps = getattr(status, "total_steps", None) or total_steps
        return self._finish(
            context, hook, attachment.name, request.api_version, attachment.operation_name, steps
        )

    @failures_fail_without_retry
    def execute_complete(
        self,
        context: Any,
        event: dict[str, Any] | None = None,
        *,
        tuned_model: str | None = None,
        api_version: str | None = None,
        operation: str | None = None,
        total_steps: int | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger: check its event and return the result (or raise the outcome).

        :param context: the Airflow context.
        :param event: the trigger's event.
        :param tuned_model: the ``tunedModels/<id>`` name (from the deferral).
        :param api_version: the API version of the model (from the deferral).
        :param operation: the create operation's name, if known (from the deferral).
        :param total_steps: the total steps known at create time, if any (from the deferral).
        """
        from airflow_provider_tuning.tuning_status import status_from_event

        # Raises the outcome's own exception: TuningFailedError / TuningCancelledError with the API's
        # message, TuningTimeoutError, ApiConnectionError (N failed polls in a row), an ApiError for a
        # permanent HTTP error, or GenerativeLanguageError for an event this trigger never sends.
        status = status_from_event(event)
        name = status.tuned_model or (event or {}).get("tuned_model") or tuned_model
        if not isinstance(name, str) or not name:
            raise GenerativeLanguageError(
                f"the tuning trigger's success event names no tuned model: {event!r}"
            )
        version = api_version or check.resolve_api_version(
            validation.base_model_name(self.base_model), self.api_version
        )
        steps = status.total_steps or total_steps
        return self._finish(context, self.get_hook(version), name, version, operation, steps)

    def _finish(
        self,
        context: Any,
        hook: GenerativeLanguageHook,
        name: str,
        api_version: str,
        operation: str | None,
        total_steps: int | None,
        model: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Fetch the final model, emit the asset event and return the XCom result."""
        if model is None:
            model = hook.get_tuned_model(name, api_version=api_version)
        result = tuned_model_result(
            model, api_version=api_version, operation=operation, total_steps=total_steps
        )
        if result["state"] == "FAILED":
            raise self._failure_of(hook, name, model)
        self.log.info(
            "Tuned model %s is %s: %s steps, final mean loss %s",
            name,
            result["state"],
            result["total_steps"],
            result["final_mean_loss"],
        )
        outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
        if outlet_events is not None and self.wait_for_completion:
            outlet_events[self.asset].extra = {
                "tuned_model": result["tuned_model"],
                "base_model": result["base_model"],
                "final_mean_loss": result["final_mean_loss"],
            }
        return result


class GetTunedModelOperator(_GenerativeLanguageOperator):
    """Return a tuned model (the API's ``TunedModel`` JSON) to XCom.

    :param tuned_model_name: ``tunedModels/<id>`` or ``<id>``. (templated)
    :param api_version: API version; ``None`` means the connection's, else ``v1beta``. (templated)
    :param conn_id: the Airflow connection id.
    """

    template_fields: Sequence[str] = ("tuned_model_name", "api_version")
    operator_extra_links = (TunedModelLink(),)

    def __init__(self, *, tuned_model_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tuned_model_name = tuned_model_name

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Fetch the model.

        :param context: the Airflow context.
        """
        name = validation.tuned_model_name(self.tuned_model_name)
        hook = self.get_hook()
        model = hook.get_tuned_model(name)
        self._persist_link(context, hook, self.api_version or hook.settings.api_version, name)
        self.log.info("Tuned model %s is %s", name, model.get("state"))
        return model


class ListTunedModelsOperator(_GenerativeLanguageOperator):
    """Return the tuned models the credentials can see, as a list of ``TunedModel`` dicts.

    :param page_size: models per API page (1-1000). (templated)
    :param filter: ``v1beta`` full-text filter, e.g. ``owner:me``. (templated)
    :param max_results: stop after this many models (default: all). (templated)
    :param api_version: API version; ``None`` means the connection's, else ``v1beta``. (templated)
    :param conn_id: the Airflow connection id.
    """

    template_fields: Sequence[str] = ("page_size", "filter", "max_results", "api_version")

    def __init__(
        self,
        *,
        page_size: int | str | None = None,
        filter: str | None = None,
        max_results: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size
        self.filter = filter
        self.max_results = max_results

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> list[dict[str, Any]]:
        """List the models, following pages until ``max_results``.

        :param context: the Airflow context.
        """
        listing = Listing.from_arguments(self.page_size, self.filter, self.max_results)
        if listing.filter and self.api_version == "v1beta3":
            raise InvalidInputError("filter exists only in v1beta, not in v1beta3")
        found = self.get_hook().list_tuned_models(page_size=listing.page_size, filter=listing.filter)
        models = listing.take(found)
        self.log.info("Listed %d tuned models", len(models))
        return models


_IMMUTABLE_FIELDS = frozenset(
    {
        "name",
        "baseModel",
        "base_model",
        "tunedModelSource",
        "tuned_model_source",
        "tuningTask",
        "tuning_task",
        "state",
        "createTime",
        "create_time",
        "updateTime",
        "update_time",
    }
)


class UpdateTunedModelOperator(_GenerativeLanguageOperator):
    """Update the mutable fields of a tuned model and return the updated ``TunedModel`` JSON.

    :param tuned_model_name: ``tunedModels/<id>`` or ``<id>``. (templated)
    :param display_name: new display name (at most 40 characters). (templated)
    :param description: new description. (templated)
    :param temperature: new default temperature in [0, 1]. (templated)
    :param top_p: new default top-p in [0, 1]. (templated)
    :param top_k: new default top-k. (templated)
    :param fields: other mutable fields, in the API's JSON names (e.g. ``readerProjectNumbers``).
        (templated)
    :param update_mask: the FieldMask (string or list); default: the fields given. (templated)
    :param api_version: API version; ``None`` means the connection's, else ``v1beta``. (templated)
    :param conn_id: the Airflow connection id.
    """

    template_fields: Sequence[str] = (
        "tuned_model_name",
        "display_name",
        "description",
        "temperature",
        "top_p",
        "top_k",
        "fields",
        "update_mask",
        "api_version",
    )
    operator_extra_links = (TunedModelLink(),)

    def __init__(
        self,
        *,
        tuned_model_name: str,
        display_name: str | None = None,
        description: str | None = None,
        temperature: float | str | None = None,
        top_p: float | str | None = None,
        top_k: int | str | None = None,
        fields: dict[str, Any] | None = None,
        update_mask: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tuned_model_name = tuned_model_name
        self.display_name = display_name
        self.description = description
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.fields = fields
        self.update_mask = update_mask

    def build_update(self) -> tuple[str, dict[str, Any], list[str]]:
        """Validate the arguments; return the name, the TunedModel patch and the update mask.

        :raises InvalidInputError: an argument is invalid or nothing is to be updated.
        """
        name = validation.tuned_model_name(self.tuned_model_name)
        patch: dict[str, Any] = {}
        if self.display_name is not None:
            patch["displayName"] = validation.display_name(self.display_name)
        if self.description is not None:
            patch["description"] = validation.optional_string("description", self.description)
        patch.update(check.build_sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k))
        if self.fields is not None:
            if not isinstance(self.fields, dict):
                raise InvalidInputError(f"fields must be a dict, got {self.fields!r}")
            immutable = sorted(set(self.fields) & _IMMUTABLE_FIELDS)
            if immutable:
                raise InvalidInputError(f"fields {immutable} cannot be updated (immutable or output only)")
            patch.update(self.fields)
        if not patch:
            raise InvalidInputError(
                "nothing to update: give display_name, description, temperature, top_p, top_k or fields"
            )
        if self.update_mask is None:
            mask = list(patch)
        elif isinstance(self.update_mask, str):
            mask = [part.strip() for part in self.update_mask.split(",") if part.strip()]
        elif isinstance(self.update_mask, (list, tuple)) and all(
            isinstance(p, str) for p in self.update_mask
        ):
            mask = list(self.update_mask)
        else:
            raise InvalidInputError(
                f"update_mask must be a comma-separated string or a list, got {self.update_mask!r}"
            )
        if not mask:
            raise InvalidInputError("update_mask is empty")
        return name, patch, mask

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Patch the model.

        :param context: the Airflow context.
        """
        name, patch, mask = self.build_update()
        hook = self.get_hook()
        model = hook.update_tuned_model(name, patch, mask)
        self._persist_link(context, hook, self.api_version or hook.settings.api_version, name)
        self.log.info("Updated %s of %s", ",".join(mask), name)
        return model


class DeleteTunedModelOperator(_GenerativeLanguageOperator):
    """Delete a tuned model; returns ``{"tuned_model": name, "deleted": bool}``.

    :param tuned_model_name: ``tunedModels/<id>`` or ``<id>``. (templated)
    :param ignore_missing: a model that does not exist is not an error (it is logged; ``deleted`` is false).
    :param api_version: API version; ``None`` means the connection's, else ``v1beta``. (templated)
    :param conn_id: the Airflow connection id.
    """

    template_fields: Sequence[str] = ("tuned_model_name", "api_version")

    def __init__(self, *, tuned_model_name: str, ignore_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tuned_model_name = tuned_model_name
        self.ignore_missing = ignore_missing

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Delete the model.

        :param context: the Airflow context.
        """
        name = validation.tuned_model_name(self.tuned_model_name)
        try:
            self.get_hook().delete_tuned_model(name)
        except NotFoundError:
            if not self.ignore_missing:
                raise
            self.log.info("Tuned model %s does not exist; nothing to delete (ignore_missing=True)", name)
            return {"tuned_model": name, "deleted": False}
        self.log.info("Deleted tuned model %s", name)
        return {"tuned_model": name, "deleted": True}
