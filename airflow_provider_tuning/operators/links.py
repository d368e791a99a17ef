"""The "Tuned model" extra link of the tuning operators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey


class TunedModelLink(BaseOperatorLink):
    """Links a task to the REST resource of the tuned model it created or used.

    The URL (``<base url>/<api version>/tunedModels/<id>``, never a key or token) is pushed to XCom
    by the operator as soon as the model name is known, so the link works for running and failed
    tasks too.
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
        """Return the URL pushed by :meth:`persist`, or ``""`` when there is none yet.

        :param operator: the operator (unused).
        :param ti_key: the task instance to read the URL of.
        """
        value = XCom.get_value(key=self.key, ti_key=ti_key)
        return value if isinstance(value, str) else ""
