"""An auth manager for the permission tests: Airflow's SimpleAuthManager, except that the user
``nodags`` may read no DAG and the user ``onedag`` only the DAG ``only_this_dag``."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ONLY_DAG = "only_this_dag"


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        name = user.get_name()
        if name == "nodags":
            return False
        if name == "onedag":
            return details is not None and details.id == ONLY_DAG
        return bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )

    def get_authorized_dag_ids(self, *, user: Any, method: Any = "GET", **kwargs: Any) -> set[str]:
        name = user.get_name()
        if name == "nodags":
            return set()
        if name == "onedag":
            return {ONLY_DAG}
        return set(super().get_authorized_dag_ids(user=user, method=method, **kwargs))
