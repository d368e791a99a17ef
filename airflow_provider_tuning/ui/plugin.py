"""The Airflow plugin that adds the Tuning view to the api-server and the UI.

Registered through the ``airflow.plugins`` entry point (loaded by every Airflow component,
whatever ``[core] lazy_discover_providers`` says). Importing this module builds the FastAPI app
but reads no connection and makes no API call.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_tuning.ui.api import URL_PREFIX, app

#: The "Tuning" page in the navigation (an iframe on the plugin's list page).
NAV_VIEW = {
    "name": "Tuning",
    "href": f"{URL_PREFIX}/",
    "destination": "nav",
    "url_route": "tuning",
    "category": "browse",
}

#: The "Tuning curve" tab of a task instance (the curve of the job that task created).
TASK_INSTANCE_VIEW = {
    "name": "Tuning curve",
    "href": (
        f"{URL_PREFIX}/ti?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}"
    ),
    "destination": "task_instance",
    "url_route": "tuning-curve",
}


class TuningViewPlugin(AirflowPlugin):
    """Mounts the Tuning view's app at ``/tuning`` and adds its page and task-instance tab."""

    name = "tuning_view"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Tuning view"}]
    external_views = [NAV_VIEW, TASK_INSTANCE_VIEW]
