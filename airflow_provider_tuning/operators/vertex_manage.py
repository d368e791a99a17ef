"""Read, list, cancel and tear down Vertex AI tuning jobs and what they made.

A forgotten endpoint keeps costing money: :class:`DeleteVertexTunedModelOperator` is the teardown of a
tuning DAG (undeploy every model of the endpoint, delete the endpoint, delete the model), and it
succeeds when they are already gone (``ignore_missing``), so it can run after any failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import NotFoundError
from airflow_provider_tuning.operators._listing import Listing
from airflow_provider_tuning.operators._validation import input_errors_fail_without_retry

if TYPE_CHECKING:
    from airflow_provider_tuning.hooks.vertex import VertexTuningHook


class _VertexOperator(BaseOperator):
    """Shared parts: the connection, project and location, and a lazily imported hook.

    :param gcp_conn_id: a ``google_cloud_platform`` connection.
    :param project_id: the project; default: the connection's. (templated)
    :param location: the region; default: the one in the resource name, else the connection's.
        (templated)
    """

    def __init__(
        self,
        *,
        gcp_conn_id: str = "google_cloud_default",
        project_id: str | None = None,
        location: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.project_id = project_id
        self.location = location

    def get_hook(self, name: str | None = None) -> VertexTuningHook:
        """A hook in the region of ``name`` (a resource name), else ``location``.

        :param name: a ``projects/*/locations/*/...`` name whose region the hook should call.
        """
        from airflow_provider_tuning.hooks.vertex import VertexTuningHook

        location = name.split("/")[3] if name else self.location
        return VertexTuningHook(self.gcp_conn_id, project_id=self.project_id, location=location)


class _TuningJobOperator(_VertexOperator):
    """An operator on one tuning job.

    :param tuning_job_name: ``projects/*/locations/*/tuningJobs/*``. (templated)
    """

    template_fields: Sequence[str] = ("tuning_job_name", "project_id", "location")

    def __init__(self, *, tuning_job_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tuning_job_name = tuning_job_name


class GetVertexTuningJobOperator(_TuningJobOperator):
    """Return a tuning job (the API's ``TuningJob`` JSON) to XCom.

    :param tuning_job_name: ``projects/*/locations/*/tuningJobs/*``. (templated)
    """

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Fetch the job.

        :param context: the Airflow context.
        """
        name = validation.tuning_job_name(self.tuning_job_name)
        job = self.get_hook(name).get_tuning_job(name)
        self.log.info("Tuning job %s is %s", name, job.get("state"))
        return job


class ListVertexTuningJobsOperator(_VertexOperator):
    """Return the tuning jobs of the project and region, as a list of ``TuningJob`` dicts.

    :param filter: an AIP-160 filter, e.g. ``labels.team="data"``. (templated)
    :param page_size: jobs per API page. (templated)
    :param max_results: stop after this many jobs (default: all). (templated)
    """

    template_fields: Sequence[str] = ("filter", "page_size", "max_results", "project_id", "location")

    def __init__(
        self,
        *,
        filter: str | None = None,
        page_size: int | str | None = None,
        max_results: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filter = filter
        self.page_size = page_size
        self.max_results = max_results

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> list[dict[str, Any]]:
        """List the jobs, following pages until ``max_results``.

        :param context: the Airflow context.
        """
        listing = Listing.from_arguments(self.page_size, self.filter, self.max_results)
        found = self.get_hook().list_tuning_jobs(filter=listing.filter, page_size=listing.page_size)
        jobs = listing.take(found)
        self.log.info("Listed %d tuning jobs", len(jobs))
        return jobs


class CancelVertexTuningJobOperator(_TuningJobOperator):
    """Ask Vertex AI to cancel a tuning job (asynchronous and best effort; the job may still end
    SUCCEEDED or FAILED). Returns ``{"tuning_job": name, "cancelled": bool}``.

    :param tuning_job_name: ``projects/*/locations/*/tuningJobs/*``. (templated)
    """

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Cancel the job unless it already ended.

        :param context: the Airflow context.
        """
        name = validation.tuning_job_name(self.tuning_job_name)
        hook = self.get_hook(name)
        state = hook.get_tuning_job(name).get("state")
        if state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"):
            self.log.info("Tuning job %s already ended %s: nothing to cancel", name, state)
            return {"tuning_job": name, "cancelled": False}
        hook.cancel_tuning_job(name)
        self.log.info("Asked to cancel tuning job %s (it was %s)", name, state)
        return {"tuning_job": name, "cancelled": True}


class DeleteVertexTunedModelOperator(_VertexOperator):
    """Tear down what a tuning job made: undeploy the endpoint's models, delete the endpoint and the
    model, waiting for each long-running operation. Returns what was deleted.

    Give the ``tuning_job_name`` (its ``tunedModel`` names both), or ``endpoint`` and/or
    ``tuned_model`` directly::

        teardown = DeleteVertexTunedModelOperator(
            task_id="teardown",
            tuning_job_name="{{ ti.xcom_pull(task_ids='tune', key='tuning_job') }}",
        ).as_teardown(setups=tune)

    :param tuning_job_name: the job whose model and endpoint go. (templated)
    :param endpoint: ``projects/*/locations/*/endpoints/*``. (templated)
    :param tuned_model: ``projects/*/locations/*/models/*[@version]`` (every version goes). (templated)
    :param delete_model: also delete the model (``False``: only the endpoint goes; a model in the
        Model Registry costs nothing while it is not deployed).
    :param ignore_missing: what no longer exists is not an error.
    :param operation_timeout: seconds to wait for each long-running operation.
    """

    template_fields: Sequence[str] = ("tuning_job_name", "endpoint", "tuned_model", "project_id", "location")

    def __init__(
        self,
        *,
        tuning_job_name: str | None = None,
        endpoint: str | None = None,
        tuned_model: str | None = None,
        delete_model: bool = True,
        ignore_missing: bool = True,
        operation_timeout: float = 900.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tuning_job_name = tuning_job_name
        self.endpoint = endpoint
        self.tuned_model = tuned_model
        self.delete_model = delete_model
        self.ignore_missing = ignore_missing
        self.operation_timeout = operation_timeout

    def _targets(self) -> tuple[str | None, str | None]:
        endpoint = (
            validation.cloud_resource_name(self.endpoint, "endpoints", what="endpoint")
            if self.endpoint
            else None
        )
        model = (
            validation.cloud_resource_name(
                self.tuned_model, "models", what="tuned_model", version_suffix=True
            )
            if self.tuned_model
            else None
        )
        if self.tuning_job_name:
            name = validation.tuning_job_name(self.tuning_job_name)
            try:
                tuned = self.get_hook(name).get_tuning_job(name).get("tunedModel") or {}
            except NotFoundError:
                if not self.ignore_missing:
                    raise
                tuned = {}
            endpoint = endpoint or tuned.get("endpoint")
            model = model or tuned.get("model")
        elif not (endpoint or model):
            from airflow_provider_tuning.exceptions import InvalidInputError

            raise InvalidInputError("give tuning_job_name, or endpoint and/or tuned_model")
        return endpoint, model

    @input_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Undeploy, delete the endpoint, delete the model.

        :param context: the Airflow context.
        """
        validation.seconds("operation_timeout", self.operation_timeout)
        endpoint, model = self._targets()
        deleted: dict[str, Any] = {"endpoint": None, "tuned_model": None, "undeployed": []}
        if endpoint:
            hook = self.get_hook(endpoint)
            try:
                for deployed in hook.get_endpoint(endpoint).get("deployedModels") or []:
                    try:
                        operation = hook.undeploy_model(endpoint, str(deployed.get("id")))
                    except NotFoundError:
                        # Already undeployed (an earlier attempt whose answer was lost): the
                        # endpoint itself still goes; a missing endpoint shows at its delete.
                        self.log.info("Model %s is no longer deployed on %s", deployed.get("id"), endpoint)
                        continue
                    hook.wait_for_operation(operation, timeout=self.operation_timeout)
                    deleted["undeployed"].append(deployed.get("id"))
                hook.wait_for_operation(hook.delete_endpoint(endpoint), timeout=self.operation_timeout)
                deleted["endpoint"] = endpoint
                self.log.info(
                    "Deleted endpoint %s (undeployed %s)", endpoint, deleted["undeployed"] or "nothing"
                )
            except NotFoundError:
                if not self.ignore_missing:
                    raise
                self.log.info("Endpoint %s does not exist; nothing to delete", endpoint)
        if model and self.delete_model:
            hook = self.get_hook(model)
            try:
                hook.wait_for_operation(hook.delete_model(model), timeout=self.operation_timeout)
                deleted["tuned_model"] = model
                self.log.info("Deleted model %s", model)
            except NotFoundError:
                if not self.ignore_missing:
                    raise
                self.log.info("Model %s does not exist; nothing to delete", model)
        return deleted
