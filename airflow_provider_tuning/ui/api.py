"""The Tuning view's FastAPI app, mounted by the api-server under ``/tuning`` (see ``plugin.py``).

Every route (pages and static files included) needs an authenticated Airflow user: the same JWT
the Airflow UI uses (its ``_token`` cookie, or an ``Authorization: Bearer`` header). Data routes
also ask Airflow's auth manager for read access to the connection and to DAGs (403 otherwise);
the DAG run and task that created a job are shown only for DAGs the user may read. No route
returns a credential: rows are built from the API's job JSON, never from the connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse

from airflow_provider_tuning.constants import DEFAULT_CONN_ID
from airflow_provider_tuning.hooks.vertex_connection import DEFAULT_GCP_CONN_ID
from airflow_provider_tuning.ui import jobs, source

STATIC = Path(__file__).parent / "static"
MAX_PAGE = 500
#: The page assets served under ``/static`` and their media types (nothing else is).
ASSETS = {"tuning.css": "text/css", "tuning.js": "text/javascript", "chart.js": "text/javascript"}


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def require_dag_read(user: Any) -> None:
    """403 unless the user may read DAGs: all of them, or at least one.

    :param user: the Airflow user.
    """
    manager = _auth_manager()
    if not manager.is_authorized_dag(method="GET", user=user) and not _readable_dags(user):
        raise HTTPException(403, "You may not read DAGs, so the Tuning view is not available to you.")


def require_connection_read(user: Any, conn_id: str) -> None:
    """403 unless the user may read the connection.

    :param user: the Airflow user.
    :param conn_id: the connection id.
    """
    details = ConnectionDetails(conn_id=conn_id)
    if not _auth_manager().is_authorized_connection(method="GET", details=details, user=user):
        raise HTTPException(403, f"You may not read connection {conn_id!r}.")


def _readable_dags(user: Any) -> set[str]:
    return set(_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _redact(row: dict[str, Any], dags: set[str]) -> dict[str, Any]:
    """Drop the creator of a job whose DAG the user may not read."""
    creator = row.get("created_by")
    if creator and creator.get("dag_id") not in dags:
        row = {**row, "created_by": None}
    return {key: value for key, value in row.items() if key != "labels"}


def _source_error(exc: source.SourceError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


def _sort_key(field: str) -> Any:
    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = row.get(field)
        return (1, "") if value is None or value == "" else (0, value)

    return key


def create_app() -> FastAPI:
    """Build the app (pages, static files and the JSON API under ``/api``)."""
    app = FastAPI(
        title="Tuning view",
        dependencies=[Depends(get_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/static/{filename}", include_in_schema=False)
    def asset(filename: str) -> FileResponse:
        # A route, not a StaticFiles mount: a mount would skip the app's authentication.
        if filename not in ASSETS:
            raise HTTPException(404, f"no asset {filename!r}")
        return FileResponse(STATIC / filename, media_type=ASSETS[filename])

    @app.get("/", include_in_schema=False)
    def list_page(user: GetUserDep) -> FileResponse:
        require_dag_read(user)
        return FileResponse(STATIC / "list.html")

    @app.get("/job", include_in_schema=False)
    def job_page(user: GetUserDep) -> FileResponse:
        require_dag_read(user)
        return FileResponse(STATIC / "job.html")

    @app.get("/ti", include_in_schema=False)
    def task_page(user: GetUserDep) -> FileResponse:
        require_dag_read(user)
        return FileResponse(STATIC / "ti.html")

    @app.get("/api/connections")
    def connections(user: GetUserDep) -> dict[str, Any]:
        """The tuning connections in Airflow's database the user may read, and the default ids."""
        require_dag_read(user)
        manager = _auth_manager()
        rows = [
            row
            for row in source.tuning_connections()
            if manager.is_authorized_connection(
                method="GET", details=ConnectionDetails(conn_id=row["conn_id"]), user=user
            )
        ]
        return {"connections": rows, "defaults": [DEFAULT_CONN_ID, DEFAULT_GCP_CONN_ID]}

    @app.get("/api/jobs", response_model=None)
    def list_jobs(
        user: GetUserDep,
        conn_id: Annotated[str, Query(min_length=1, max_length=250)],
        status: Annotated[str | None, Query(description="one of " + ", ".join(jobs.STATUSES))] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        sort: str = "created",
        order: str = "desc",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any] | JSONResponse:
        """One page of a connection's jobs, filtered by status and text and sorted."""
        require_dag_read(user)
        require_connection_read(user, conn_id)
        if status is not None and status not in jobs.STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(jobs.STATUSES)}, got {status!r}")
        if sort not in jobs.SORT_KEYS:
            raise HTTPException(400, f"sort must be one of {', '.join(jobs.SORT_KEYS)}, got {sort!r}")
        if order not in ("asc", "desc"):
            raise HTTPException(400, f"order must be 'asc' or 'desc', got {order!r}")
        try:
            backend, rows = source.list_jobs(conn_id)
        except source.SourceError as exc:
            return _source_error(exc)
        counts = {name: 0 for name in jobs.STATUSES}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        selected = [row for row in rows if status is None or row["status"] == status]
        if q:
            needle = q.lower()
            selected = [
                row
                for row in selected
                if needle in row["name"].lower()
                or needle in str(row["display_name"]).lower()
                or needle in str(row["base_model"]).lower()
                or needle in " ".join(str(v) for v in (row.get("created_by") or {}).values()).lower()
            ]
        selected = sorted(selected, key=_sort_key(sort), reverse=order == "desc")
        dags = _readable_dags(user)
        page = [_redact(row, dags) for row in selected[offset : offset + limit]]
        return {
            "conn_id": conn_id,
            "backend": backend,
            "total": len(rows),
            "matched": len(selected),
            "counts": counts,
            "offset": offset,
            "limit": limit,
            "jobs": page,
        }

    @app.get("/api/job", response_model=None)
    def job(
        user: GetUserDep,
        conn_id: Annotated[str, Query(min_length=1, max_length=250)],
        name: Annotated[str, Query(min_length=1, max_length=500)],
    ) -> dict[str, Any] | JSONResponse:
        """One job: the list row plus the loss curve, hyperparameters, data stats, error, outputs."""
        require_dag_read(user)
        require_connection_read(user, conn_id)
        try:
            row = source.get_job(conn_id, name)
        except source.SourceError as exc:
            return _source_error(exc)
        return {"conn_id": conn_id, **_redact(row, _readable_dags(user))}

    @app.get("/api/task", response_model=None)
    def task_job(
        user: GetUserDep,
        dag_id: Annotated[str, Query(min_length=1)],
        run_id: Annotated[str, Query(min_length=1)],
        task_id: Annotated[str, Query(min_length=1)],
        map_index: int = -1,
        conn_id: str | None = None,
    ) -> dict[str, Any] | JSONResponse:
        """The job a task instance created, read through the first connection that knows it."""
        manager = _auth_manager()
        if not manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user):
            raise HTTPException(403, f"You may not read DAG {dag_id!r}.")
        name = source.job_of_task(dag_id, run_id, task_id, map_index)
        if name is None:
            return {"name": None, "detail": "This task instance has not created a tuning job (yet)."}
        backend = jobs.GEMINI if name.startswith("tunedModels/") else jobs.VERTEX
        candidates = [conn_id] if conn_id else []
        candidates += [row["conn_id"] for row in source.tuning_connections() if row["backend"] == backend]
        candidates.append(DEFAULT_CONN_ID if backend == jobs.GEMINI else DEFAULT_GCP_CONN_ID)
        last: source.SourceError | None = None
        readable = False
        for candidate in dict.fromkeys(candidates):
            details = ConnectionDetails(conn_id=candidate)
            if not manager.is_authorized_connection(method="GET", details=details, user=user):
                continue
            readable = True
            try:
                row = source.get_job(candidate, name)
            except source.SourceError as exc:
                last = exc
                continue
            return {"conn_id": candidate, **_redact(row, _readable_dags(user))}
        if not readable:
            raise HTTPException(403, "You may not read any connection that can show this job.")
        return _source_error(last or source.SourceError(f"no connection can read {name!r}", status=404))

    return app
