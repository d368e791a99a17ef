"""The "Tuned model" extra link of the tuning operators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey


def job_page_url(name: str, conn_id: str | None, ti_key: Any) -> str:
    """The Tuning view's page of a job, relative to the Airflow UI's origin.

    :param name: ``tunedModels/<id>`` (or a Vertex AI tuning job name).
    :param conn_id: the connection the job was made with; without it the page finds the job from
        the task instance.
    :param ti_key: the task instance (``dag_id``, ``run_id``, ``task_id``, ``map_index``).
    """
    from airflow.configuration import conf

    from airflow_provider_tuning.ui import URL_PREFIX

    base_path = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    query: dict[str, Any]
    if conn_id:
        query = {"conn_id": conn_id, "name": name}
    else:
        query = {
            "dag_id": ti_key.dag_id,
            "run_id": ti_key.run_id,
            "task_id": ti_key.task_id,
            "map_index": getattr(ti_key, "map_index", -1),
        }
    return f"{base_path}{URL_PREFIX}/job?{urlencode(query)}"


class TunedModelLink(BaseOperatorLink):
    """Links a task to the Tuning view's page of the tuned model it created or used: its loss
    curve, state, hyperparameters and error.

    The model's REST URL (``<base url>/<api version>/tunedModels/<id>``, never a key or token) is
    pushed to XCom by the operator as soon as the model name is known, so the link works for
    running and failed tasks too; the link itself is the job page of that model.
    """

    name = "Tuned model"
    key = "tuned_model_link"

    @classmethod
    def persist(cls, context: Any, *, base_url: str, api_version: str, tuned_model: str) -> str:
        """Push the model's URL to XCom and return it.

        :param context: the task's Airflow context.
        :param base_url: the API base URL of the connection (no trailing slash).
        :param api_version: the API version the model is served under.
        :param tuned_model: the ``tunedModels/<id>`` name.
        """
        url = f"{base_url.rstrip('/')}/{api_version}/{tuned_model}"
        context["ti"].xcom_push(key=cls.key, value=url)
        return url

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the job page of the model :meth:`persist` recorded, or ``""`` when there is none yet.

        :param operator: the operator (its ``conn_id`` goes in the link).
        :param ti_key: the task instance to read the model of.
        """
        value = XCom.get_value(key=self.key, ti_key=ti_key)
        if not isinstance(value, str) or "/tunedModels/" not in value:
            return ""
        name = "tunedModels/" + value.rsplit("/tunedModels/", 1)[1]
        return job_page_url(name, getattr(operator, "conn_id", None), ti_key)
