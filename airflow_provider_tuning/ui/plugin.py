"""The Airflow plugin that adds the Tuning view to the api-server and the UI.

Registered through the ``airflow.plugins`` entry point (loaded by every Airflow component,
whatever ``[core] lazy_discover_providers`` says). Every component imports this module, task
workers included, so it stays light: the FastAPI app (FastAPI, Airflow's security module, the
hooks) is built on the view's first request, in the api-server only.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_tuning.ui import URL_PREFIX

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


class LazyApp:
    """An ASGI app that builds the view's FastAPI app (:func:`~airflow_provider_tuning.ui.api.create_app`)
    on its first request and hands every request to it."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The FastAPI app (built on the first call)."""
        with self._lock:
            if self._app is None:
                from airflow_provider_tuning.ui.api import create_app

                self._app = create_app()
            return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app if self._app is not None else self.get()
        await app(scope, receive, send)


class TuningViewPlugin(AirflowPlugin):
    """Mounts the Tuning view's app at ``/tuning`` and adds its page and task-instance tab."""

    name = "tuning_view"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "Tuning view"}]
    external_views = [NAV_VIEW, TASK_INSTANCE_VIEW]
