"""``CreateVertexTuningJobOperator``: tune Gemini on Vertex AI, never paying for a job twice.

Vertex AI takes no client-chosen job id, so every job this operator creates carries labels that
name its task instance and its request (``airflow-ti``, ``airflow-req``: hashes, and the DAG and
task as readable slugs). Before creating, and after any create whose answer was lost, it lists the
jobs with its ``airflow-ti`` label and reattaches to the one made from the same request; a new DAG
run has another ``airflow-ti`` and never reattaches to an old run's job. The training data is
validated (file and line named) before any call, written as the JSONL the service reads, and
uploaded to a content-addressed object under ``staging_uri`` (a retry uploads nothing new).

Heavy modules (hooks, HTTP, google-auth, the data loaders) load only when a task runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, BaseOperator, conf

from airflow_provider_tuning import validation
from airflow_provider_tuning.constants import DEFER_TIMEOUT_MARGIN
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    GenerativeLanguageError,
    InvalidInputError,
    TuningFailedError,
)
from airflow_provider_tuning.operators._templating import keep_inline_data
from airflow_provider_tuning.operators._validation import failures_fail_without_retry

if TYPE_CHECKING:
    from airflow_provider_tuning.hooks.vertex import VertexTuningHook
    from airflow_provider_tuning.tuning_status import TuningStatus

#: The XCom key under which the tuning job's name is pushed as soon as it is known.
TUNING_JOB_XCOM_KEY = "tuning_job"
#: The XCom keys of the endpoint and the tuned model, pushed when the job has succeeded.
ENDPOINT_XCOM_KEY = "endpoint"
TUNED_MODEL_XCOM_KEY = "tuned_model"
ADAPTER_SIZES = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
    32: "ADAPTER_SIZE_THIRTY_TWO",
}
METHODS = ("supervised", "preference")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_RESERVED_LABELS = ("airflow-ti", "airflow-req", "airflow-dag", "airflow-task")


def _label_slug(text: str) -> str:
    """A label value from free text: lower-case, ``[a-z0-9_-]``, at most 63 characters."""
    slug = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "-" for ch in text.lower())
    return slug.strip("-")[:63]


@dataclass(frozen=True)
class _Plan:
    """A validated tuning job, ready to upload and create."""

    body: dict[str, Any]
    uploads: list[tuple[str, str, bytes]]  # (body field, gs:// URI, content)
    labels: dict[str, str]


class CreateVertexTuningJobOperator(BaseOperator):
    """Create a Vertex AI tuning job (or reattach to the one this task instance made) and wait for it.

    Returns to XCom: ``tuning_job``, ``state``, ``base_model``, ``tuned_model`` (the Model),
    ``endpoint`` (where to call it), ``checkpoints``, ``tuning_steps``, ``create_time``,
    ``end_time``. The job's name is pushed under the key ``"tuning_job"`` as soon as it exists, and
    the endpoint and model under ``"endpoint"`` and ``"tuned_model"`` when it has succeeded (so a
    downstream task can take ``tune.output["endpoint"]``).

    :param base_model: the model to tune, e.g. ``gemini-2.5-flash``. (templated)
    :param pre_tuned_model: or an earlier tuned model to continue from
        (``projects/*/locations/*/models/*[@version]``). (templated)
    :param training_data: a ``gs://`` JSONL URI used as is, or data to upload: inline records, a
        JSON string, a path or URI to a ``.jsonl``/``.json``/``.csv`` file, an XCom value. (templated)
    :param validation_data: the same kinds, optional. (templated)
    :param staging_uri: ``gs://<bucket>/<prefix>`` where data to upload goes. (templated)
    :param method: ``supervised`` or ``preference``.
    :param epoch_count: positive integer. (templated)
    :param learning_rate_multiplier: positive number. (templated)
    :param adapter_size: 1, 2, 4, 8, 16 or 32. (templated)
    :param beta: the preference-tuning strength (``preference`` only). (templated)
    :param tuned_model_display_name: at most 128 characters. (templated)
    :param description: free text. (templated)
    :param labels: labels of the job (and its model and endpoint). (templated)
    :param service_account: the service account the job runs as. (templated)
    :param kms_key_name: a Cloud KMS key (CMEK). (templated)
    :param input_field: the input field of input/output examples.
    :param output_field: the output field of input/output examples.
    :param system_instruction: a system instruction added to input/output examples. (templated)
    :param gcp_conn_id: a ``google_cloud_platform`` connection.
    :param project_id: the project; default: the connection's. (templated)
    :param location: the region; default: the connection's, else ``us-central1``. (templated)
    :param wait_for_completion: wait until the job ends.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls (default ``[generative_language] poll_interval``).
    :param timeout: how long to wait (default ``[generative_language] default_timeout``).
    :param max_consecutive_failures: transient poll failures in a row before giving up.
    :param cancel_on_kill: cancel the job when the task is killed while it waits, in the worker or
        deferred (the trigger's ``on_kill``).
    :param asset: the outlet asset emitted when the job succeeds.
    """

    template_fields: Sequence[str] = (
        "base_model",
        "pre_tuned_model",
        "training_data",
        "validation_data",
        "staging_uri",
        "epoch_count",
        "learning_rate_multiplier",
        "adapter_size",
        "beta",
        "tuned_model_display_name",
        "description",
        "labels",
        "service_account",
        "kms_key_name",
        "system_instruction",
        "project_id",
        "location",
    )
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        training_data: Any,
        base_model: str | None = None,
        pre_tuned_model: str | None = None,
        validation_data: Any = None,
        staging_uri: str | None = None,
        method: str = "supervised",
        epoch_count: int | str | None = None,
        learning_rate_multiplier: float | str | None = None,
        adapter_size: int | str | None = None,
        beta: float | str | None = None,
        tuned_model_display_name: str | None = None,
        description: str | None = None,
        labels: dict[str, str] | None = None,
        service_account: str | None = None,
        kms_key_name: str | None = None,
        input_field: str = "text_input",
        output_field: str = "output",
        system_instruction: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        project_id: str | None = None,
        location: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        timeout: timedelta | float | None = None,
        max_consecutive_failures: int | None = None,
        cancel_on_kill: bool = True,
        asset: Asset | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if method not in METHODS:
            raise InvalidInputError(
                f"method must be one of {', '.join(METHODS)}, got {validation.quote(method)}"
            )
        self.training_data = training_data
        self.base_model = base_model
        self.pre_tuned_model = pre_tuned_model
        self.validation_data = validation_data
        self.staging_uri = staging_uri
        self.method = method
        self.epoch_count = epoch_count
        self.learning_rate_multiplier = learning_rate_multiplier
        self.adapter_size = adapter_size
        self.beta = beta
        self.tuned_model_display_name = tuned_model_display_name
        self.description = description
        self.labels = labels
        self.service_account = service_account
        self.kms_key_name = kms_key_name
        self.input_field = input_field
        self.output_field = output_field
        self.system_instruction = system_instruction
        self.gcp_conn_id = gcp_conn_id
        self.project_id = project_id
        self.location = location
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        option = conf.getfloat
        self.poll_interval = validation.seconds(
            "poll_interval",
            option("generative_language", "poll_interval", fallback=30.0)
            if poll_interval is None
            else poll_interval,
        )
        self.timeout = validation.seconds(
            "timeout",
            option("generative_language", "default_timeout", fallback=86400.0)
            if timeout is None
            else timeout,
        )
        self.max_consecutive_failures = validation.failure_budget(
            int(option("generative_language", "max_consecutive_failures", fallback=5))
            if max_consecutive_failures is None
            else max_consecutive_failures
        )
        self.cancel_on_kill = cancel_on_kill
        self.asset = asset or Asset(
            name=f"vertex_tuning_job/{self.dag_id}/{self.task_id}",
            uri=f"vertex-ai://tuningJobs/{self.dag_id}.{self.task_id}",
        )
        if wait_for_completion:
            self.add_outlets([self.asset])
        self._job_name: str | None = None
        self._hook: VertexTuningHook | None = None

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: Any
    ) -> None:
        """Render the template fields, except inline ``training_data``/``validation_data``."""
        if parent is self:
            fields = ("training_data", "validation_data")
            template_fields = keep_inline_data(self, template_fields, fields, context)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    def get_hook(self) -> VertexTuningHook:
        """The hook on ``gcp_conn_id`` (imported here: DAG parsing loads no HTTP or auth library)."""
        if self._hook is None:
            from airflow_provider_tuning.hooks.vertex import VertexTuningHook

            self._hook = VertexTuningHook(
                self.gcp_conn_id, project_id=self.project_id, location=self.location
            )
        return self._hook

    # --- validation, before any call ----------------------------------------------------------------

    def _source_model(self) -> dict[str, Any]:
        if bool(self.base_model) == bool(self.pre_tuned_model):
            raise InvalidInputError("give exactly one of base_model or pre_tuned_model")
        if self.pre_tuned_model:
            name = validation.cloud_resource_name(
                self.pre_tuned_model, "models", what="pre_tuned_model", version_suffix=True
            )
            return {"preTunedModel": {"tunedModelName": name}}
        return {"baseModel": validation.vertex_base_model(self.base_model)}

    def _hyperparameters(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.epoch_count is not None:
            result["epochCount"] = str(validation.positive_int("epoch_count", self.epoch_count))
        if self.learning_rate_multiplier is not None:
            result["learningRateMultiplier"] = validation.number(
                "learning_rate_multiplier", self.learning_rate_multiplier, minimum=0, exclusive_minimum=True
            )
        if self.adapter_size is not None:
            size = validation.positive_int("adapter_size", self.adapter_size)
            if size not in ADAPTER_SIZES:
                raise InvalidInputError(f"adapter_size must be one of 1, 2, 4, 8, 16, 32, got {size}")
            result["adapterSize"] = ADAPTER_SIZES[size]
        if self.beta is not None:
            if self.method != "preference":
                raise InvalidInputError("beta is a preference-tuning setting; set method='preference'")
            result["beta"] = validation.number("beta", self.beta, minimum=0, exclusive_minimum=True)
        return result

    def _labels(self, context: Any, request_digest: str) -> dict[str, str]:
        from airflow_provider_tuning.operators._ids import digest

        labels: dict[str, str] = {}
        for key, value in (self.labels or {}).items():
            if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key) or key in _RESERVED_LABELS:
                raise InvalidInputError(
                    f"label key {validation.quote(key)} is invalid: lower-case letters, digits, '_' and "
                    f"'-', starting with a letter, at most 63 (and not {', '.join(_RESERVED_LABELS)})"
                )
            if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
                raise InvalidInputError(
                    f"label {key!r} has an invalid value {validation.quote(value)}: lower-case letters, "
                    "digits, '_' and '-', at most 63"
                )
            labels[key] = value
        ti = context["ti"]
        run_id = getattr(ti, "run_id", None) or context.get("run_id")
        map_index = getattr(ti, "map_index", None)
        ti_key = [ti.dag_id, ti.task_id, str(run_id), -1 if map_index is None else int(map_index)]
        labels.update(
            {
                "airflow-dag": _label_slug(ti.dag_id),
                "airflow-task": _label_slug(ti.task_id),
                "airflow-ti": digest(ti_key),
                "airflow-req": request_digest,
            }
        )
        if len(labels) > 64:
            raise InvalidInputError(f"at most 60 labels of your own, got {len(labels) - 4}")
        return labels

    def _dataset(self, source: Any, field: str, prefix: str | None) -> tuple[str, bytes | None]:
        """A ``gs://`` URI given as is, or the data to upload (validated, as JSONL) and its URI."""
        from airflow_provider_tuning.hooks.vertex import content_addressed_name, gcs_uri, split_gcs_uri
        from airflow_provider_tuning.vertex_datasets import load_training_records, to_jsonl

        if isinstance(source, str) and source.startswith("gs://"):
            split_gcs_uri(source, what=field)
            return source, None
        if prefix is None:
            raise InvalidInputError(
                f"{field} is not a gs:// URI, so it is uploaded: set staging_uri to gs://<bucket>/<prefix>"
            )
        records = load_training_records(
            source,
            kind=self.method,
            input_field=self.input_field,
            output_field=self.output_field,
            system_instruction=self.system_instruction,
        )
        data = to_jsonl(records)
        bucket, folder = split_gcs_uri(prefix, what="staging_uri")
        return gcs_uri(bucket, content_addressed_name(folder, data)), data

    def build_plan(self, context: Any) -> _Plan:
        """Validate every argument and the data; return the job to create (no API call).

        :param context: the Airflow context.
        :raises InvalidInputError: an argument is invalid.
        :raises TrainingDataError: the data is invalid (source, line and field named).
        """
        from airflow_provider_tuning.operators._ids import digest

        body: dict[str, Any] = self._source_model()
        hyperparameters = self._hyperparameters()
        prefix = self.staging_uri.rstrip("/") if isinstance(self.staging_uri, str) else None
        if self.staging_uri is not None and not isinstance(self.staging_uri, str):
            raise InvalidInputError(
                f"staging_uri must be a gs:// URI string, got {validation.quote(self.staging_uri)}"
            )
        uploads: list[tuple[str, str, bytes]] = []
        spec: dict[str, Any] = {}
        for field, source, key in (
            ("training_data", self.training_data, "trainingDatasetUri"),
            ("validation_data", self.validation_data, "validationDatasetUri"),
        ):
            if source is None:
                if field == "training_data":
                    raise InvalidInputError("training_data is required")
                continue
            uri, data = self._dataset(source, field, prefix)
            spec[key] = uri
            if data is not None:
                uploads.append((field, uri, data))
        if hyperparameters:
            spec["hyperParameters"] = hyperparameters
        body["supervisedTuningSpec" if self.method == "supervised" else "preferenceOptimizationSpec"] = spec
        texts = {
            "tunedModelDisplayName": validation.optional_string(
                "tuned_model_display_name", self.tuned_model_display_name, max_length=128
            ),
            "description": validation.optional_string("description", self.description),
            "serviceAccount": validation.optional_string("service_account", self.service_account),
        }
        body.update({key: value for key, value in texts.items() if value})
        if self.kms_key_name:
            kms_key = validation.optional_string("kms_key_name", self.kms_key_name)
            body["encryptionSpec"] = {"kmsKeyName": kms_key}
        body["labels"] = self._labels(context, digest([self.method, body]))
        return _Plan(body=body, uploads=uploads, labels=body["labels"])

    # --- create or reattach --------------------------------------------------------------------------

    def _find(self, hook: VertexTuningHook, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The job this task instance made from this request, if any; another request is an error."""
        label = f'labels.airflow-ti="{labels["airflow-ti"]}"'
        mine = [
            job
            for job in hook.list_tuning_jobs(filter=label)
            if (job.get("labels") or {}).get("airflow-ti") == labels["airflow-ti"]  # whatever the filter did
        ]
        same = [job for job in mine if job["labels"].get("airflow-req") == labels["airflow-req"]]
        if same:
            return max(same, key=lambda job: str(job.get("createTime", "")))
        if mine:
            raise InvalidInputError(
                f"this task instance already made tuning job {mine[0].get('name')} from another request "
                "(the base model, the data or the hyperparameters differ); it is not reattached. Clear "
                "the task in a new DAG run, or cancel that job first"
            )
        return None

    def _create_or_reattach(self, hook: VertexTuningHook, plan: _Plan, context: Any) -> dict[str, Any]:
        found = self._find(hook, plan.labels)
        if found is not None:
            self.log.info(
                "Reattached to tuning job %s (%s), made by this task instance",
                found["name"],
                found.get("state"),
            )
            return found
        from airflow_provider_tuning.hooks.vertex import split_gcs_uri

        for field, uri, data in plan.uploads:
            bucket, name = split_gcs_uri(uri)
            hook.upload_object(bucket, name, data, content_type="application/jsonl")
            self.log.info("Uploaded %s (%d bytes) to %s", field, len(data), uri)
        try:
            job = hook.create_tuning_job(plan.body)
        except ApiConnectionError:
            self.log.warning("The create's answer was lost; looking the job up by its labels")
            lost = self._find(hook, plan.labels)
            if lost is None:
                raise
            job = lost
        self.log.info("Created tuning job %s", job.get("name"))
        return job

    # --- execute -----------------------------------------------------------------------------------

    @failures_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Validate, create (or reattach to) the tuning job and wait for it as configured.

        :param context: the Airflow context.
        """
        plan = self.build_plan(context)
        hook = self.get_hook()
        job = self._create_or_reattach(hook, plan, context)
        name = validation.tuning_job_name(job.get("name"), what="the created job's name")
        self._job_name = name
        context["ti"].xcom_push(key=TUNING_JOB_XCOM_KEY, value=name)
        if not self.wait_for_completion:
            return self._result(job)
        deadline = time.time() + self.timeout
        if self.deferrable:
            from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

            self.defer(
                trigger=TuningOperationTrigger(
                    conn_id=self.gcp_conn_id,
                    name=name,
                    api_version=hook.api_version,
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                    max_consecutive_failures=self.max_consecutive_failures,
                    backend="vertex",
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
            )
        from airflow_provider_tuning.waiting import wait_for_tuning

        wait_for_tuning(
            hook,
            name,
            poll_interval=self.poll_interval,
            deadline=deadline,
            max_consecutive_failures=self.max_consecutive_failures,
            log=self.log,
            backend="vertex",
        )
        return self._finish(context, hook, name)

    @failures_fail_without_retry
    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the outcome's exception, or the result.

        :param context: the Airflow context.
        :param event: the trigger's event.
        """
        from airflow_provider_tuning.tuning_status import status_from_event

        status: TuningStatus = status_from_event(event)
        name = status.tuned_model or (event or {}).get("name")
        if not isinstance(name, str):
            raise GenerativeLanguageError(f"the tuning trigger's event names no tuning job: {event!r}")
        return self._finish(context, self.get_hook(), name)

    def _finish(self, context: Any, hook: VertexTuningHook, name: str) -> dict[str, Any]:
        job = hook.get_tuning_job(name)
        if job.get("state") != "JOB_STATE_SUCCEEDED":
            from airflow_provider_tuning.backends import get_backend

            status = get_backend("vertex").parse(name, job)
            status.raise_for_failure()
            raise TuningFailedError(name, f"the job is {job.get('state')}, not SUCCEEDED")
        result = self._result(job)
        self.log.info("Tuning job %s SUCCEEDED: endpoint %s", name, result["endpoint"])
        for key in ENDPOINT_XCOM_KEY, TUNED_MODEL_XCOM_KEY:  # so ``tune.output["endpoint"]`` works
            context["ti"].xcom_push(key=key, value=result[key])
        outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
        if outlet_events is not None and self.wait_for_completion:
            outlet_events[self.asset].extra = {
                "tuning_job": name,
                "tuned_model": result["tuned_model"],
                "endpoint": result["endpoint"],
            }
        return result

    @staticmethod
    def _result(job: Mapping[str, Any]) -> dict[str, Any]:
        found = job.get("tunedModel")
        tuned: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        stats = (job.get("tuningDataStats") or {}).get("supervisedTuningDataStats") or {}
        steps = stats.get("tuningStepCount")
        return {
            "tuning_job": job.get("name"),
            "state": job.get("state"),
            "base_model": job.get("baseModel"),
            "tuned_model": tuned.get("model"),
            "endpoint": tuned.get("endpoint"),
            "checkpoints": [dict(c) for c in tuned.get("checkpoints") or [] if isinstance(c, Mapping)],
            "tuning_steps": int(steps) if isinstance(steps, (int, str)) and str(steps).isdigit() else None,
            "create_time": job.get("createTime"),
            "end_time": job.get("endTime"),
        }

    def on_kill(self) -> None:
        """Cancel the job when the task is killed while it waits in the worker (``cancel_on_kill``)."""
        if not (self.cancel_on_kill and self._job_name):
            return
        try:
            self.get_hook().cancel_tuning_job(self._job_name)
            self.log.info("Cancelled tuning job %s (the task was killed)", self._job_name)
        except Exception:  # on_kill must not raise
            self.log.warning("Could not cancel tuning job %s", self._job_name, exc_info=True)
