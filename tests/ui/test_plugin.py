"""The plugin as Airflow loads it: found through its entry point, its app mounted at /tuning, its
nav view and task-instance tab registered, and light to import (every Airflow component, task
workers included, imports it)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def test_airflow_finds_the_plugin_through_its_entry_point() -> None:
    from airflow import plugins_manager

    apps, _middlewares = plugins_manager.get_fastapi_plugins()
    mounted = {app["url_prefix"]: app for app in apps}
    assert "/tuning" in mounted
    external_views, _react_apps = plugins_manager._get_ui_plugins()
    views = {view["url_route"]: view for view in external_views}
    assert views["tuning"]["destination"] == "nav"
    assert views["tuning"]["href"] == "/tuning/"
    tab = views["tuning-curve"]
    assert tab["destination"] == "task_instance"
    for placeholder in ("{DAG_ID}", "{RUN_ID}", "{TASK_ID}", "{MAP_INDEX}"):
        assert placeholder in tab["href"]


def test_importing_the_plugin_loads_no_web_app_and_no_hook() -> None:
    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_tuning.ui.plugin\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print('\\n'.join(new))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = done.stdout.split()
    heavy = [
        name
        for name in loaded
        if name.startswith(("fastapi", "airflow.api_fastapi", "airflow_provider_tuning.hooks"))
        or name == "airflow_provider_tuning.ui.api"
    ]
    assert heavy == [], heavy
    assert "airflow_provider_tuning.ui.plugin" in loaded


def test_the_app_is_built_on_the_first_request_only(airflow_app: Any) -> None:
    from airflow_provider_tuning.ui.plugin import LazyApp

    lazy = LazyApp()
    assert lazy._app is None
    app = lazy.get()
    assert lazy.get() is app
    assert {route.path for route in app.routes} >= {"/", "/job", "/ti", "/api/jobs", "/api/job", "/api/task"}
