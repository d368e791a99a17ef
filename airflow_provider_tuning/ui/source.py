"""Where the Tuning view's data comes from: the provider's hooks (short timeouts, one attempt, a
small time-based cache) and Airflow's XCom table (which task instance created which job).

A slow or failing API raises :class:`SourceError` with a message the page shows as it is; the
api-server never waits more than :data:`READ_TIMEOUT` seconds per API page.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from airflow_provider_tuning.constants import CONN_TYPE, LEGACY_CONN_TYPE
from airflow_provider_tuning.exceptions import (
    ApiConnectionError,
    ApiError,
    ConnectionConfigError,
    GenerativeLanguageError,
    NotFoundError,
)
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.vertex_connection import GCP_CONN_TYPE
from airflow_provider_tuning.ui import jobs

#: ``(connect, read)`` seconds of every API request the view makes.
TIMEOUT = (2.0, 5.0)
READ_TIMEOUT = TIMEOUT[1]
#: Seconds a list (or a job) stays cached: short, so a running job's curve stays live.
LIST_TTL = 10.0
JOB_TTL = 3.0
#: The most jobs one list call reads (the view pages through them itself).
MAX_JOBS = 5000
#: XCom keys the tuning operators push the job's name under.
XCOM_KEYS = ("tuned_model", "tuning_job")

T = TypeVar("T")


class SourceError(Exception):
    """The API could not be read; ``str()`` is a message for the page (never a credential).

    :param message: what went wrong.
    :param status: the HTTP status the view answers with (502 bad gateway, 504 timeout, 404...).
    """

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class TtlCache:
    """A tiny thread-safe cache of values that expire after ``ttl`` seconds.

    :param clock: the time source (tests move it by hand).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 256) -> None:
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._values: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, ttl: float, compute: Callable[[], T]) -> T:
        """Return the cached value of ``key`` if younger than ``ttl``, else compute and store it.

        :param key: a hashable key.
        :param ttl: maximum age in seconds.
        :param compute: makes the value (exceptions are not cached).
        """
        now = self._clock()
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and now - hit[0] < ttl:
                return hit[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            if len(self._values) >= self._max:
                self._values.pop(next(iter(self._values)))
            self._values[key] = (self._clock(), value)
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._values.clear()


CACHE = TtlCache()


def backend_of(conn_type: str | None) -> str:
    """The backend a connection type serves.

    :param conn_type: the connection's ``conn_type``.
    :raises SourceError: a type the view cannot read (400).
    """
    if conn_type in (CONN_TYPE, LEGACY_CONN_TYPE):
        return jobs.GEMINI
    if conn_type == GCP_CONN_TYPE:
        return jobs.VERTEX
    raise SourceError(
        f"connection type {conn_type!r} is not a tuning connection "
        f"(expected {CONN_TYPE!r} or {GCP_CONN_TYPE!r})",
        status=400,
    )


def connection_backend(conn_id: str) -> str:
    """The backend of an Airflow connection (read through Airflow, secrets backends included).

    :param conn_id: the connection id.
    :raises SourceError: no such connection (404) or not a tuning connection (400).
    """
    from airflow.providers.common.compat.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException in every supported version
        raise SourceError(f"connection {conn_id!r} is not defined", status=404) from exc
    return backend_of(conn.conn_type)


def _hook(conn_id: str, backend: str) -> Any:
    retry = RetryPolicy(max_attempts=1)
    if backend == jobs.GEMINI:
        from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

        return GenerativeLanguageHook(conn_id, timeout=TIMEOUT, retry=retry)
    from airflow_provider_tuning.hooks.vertex import VertexTuningHook

    return VertexTuningHook(conn_id, timeout=TIMEOUT, retry=retry)


def _guard(conn_id: str, call: Callable[[], T]) -> T:
    """Run ``call``, turning the provider's errors into a :class:`SourceError` for the page."""
    try:
        return call()
    except NotFoundError as exc:
        raise SourceError(f"not found at the API of connection {conn_id!r}: {exc}", status=404) from exc
    except ApiConnectionError as exc:
        raise SourceError(
            f"the API of connection {conn_id!r} did not answer within {READ_TIMEOUT:g} s "
            f"or could not be reached: {exc}",
            status=504,
        ) from exc
    except ApiError as exc:
        raise SourceError(f"the API of connection {conn_id!r} answered with an error: {exc}") from exc
    except ConnectionConfigError as exc:
        raise SourceError(f"connection {conn_id!r} is not usable: {exc}", status=400) from exc
    except GenerativeLanguageError as exc:
        raise SourceError(f"reading connection {conn_id!r} failed: {exc}") from exc


def _take(items: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        out.append(item)
        if len(out) >= MAX_JOBS:
            break
    return out


def fetch_list(conn_id: str, backend: str) -> list[dict[str, Any]]:
    """Every job of a connection as the API returns it (uncached; 1,000 a page).

    :param conn_id: the connection id.
    :param backend: :data:`~airflow_provider_tuning.ui.jobs.GEMINI` or ``VERTEX``.
    """

    def read() -> list[dict[str, Any]]:
        with _hook(conn_id, backend) as hook:
            if backend == jobs.GEMINI:
                return _take(hook.list_tuned_models(page_size=1000))
            return _take(hook.list_tuning_jobs(page_size=1000))

    return _guard(conn_id, read)


def list_jobs(conn_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The backend and the list rows (:func:`~airflow_provider_tuning.ui.jobs.summary`) of a connection,
    each with the task instance that created it (cached :data:`LIST_TTL` seconds).

    :param conn_id: the connection id.
    """
    backend = connection_backend(conn_id)

    def compute() -> list[dict[str, Any]]:
        rows = [jobs.summary(item, backend) for item in fetch_list(conn_id, backend)]
        creators = CACHE.get(("creators",), LIST_TTL, creator_index)
        for row in rows:
            row["created_by"] = creators.get(row["name"]) or _from_labels(row.get("labels") or {})
        return rows

    return backend, CACHE.get(("list", conn_id), LIST_TTL, compute)


def get_job(conn_id: str, name: str) -> dict[str, Any]:
    """The job page's data (:func:`~airflow_provider_tuning.ui.jobs.detail`), cached :data:`JOB_TTL` s.

    :param conn_id: the connection id.
    :param name: ``tunedModels/<id>`` or ``projects/*/locations/*/tuningJobs/*``.
    """
    backend = connection_backend(conn_id)

    def compute() -> dict[str, Any]:
        def read() -> dict[str, Any]:
            with _hook(conn_id, backend) as hook:
                if backend == jobs.GEMINI:
                    model = hook.get_tuned_model(name)
                    operations = list(hook.list_operations(name)) if model.get("state") != "ACTIVE" else []
                    return jobs.detail(model, backend, operations[-1] if operations else None)
                return jobs.detail(hook.get_tuning_job(name), backend)

        row = _guard(conn_id, read)
        creators = CACHE.get(("creators",), LIST_TTL, creator_index)
        row["created_by"] = creators.get(row["name"]) or _from_labels(row.get("labels") or {})
        return row

    return CACHE.get(("job", conn_id, name), JOB_TTL, compute)


def _from_labels(labels: dict[str, str]) -> dict[str, Any] | None:
    """What a Vertex job's labels tell of its creator (slugs: no run, so no task-instance link)."""
    if "airflow-dag" not in labels:
        return None
    return {"dag_id": labels["airflow-dag"], "task_id": labels.get("airflow-task"), "run_id": None}


def _xcom_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else None
    return None


def creator_index() -> dict[str, dict[str, Any]]:
    """Job name → the task instance whose operator pushed it to XCom (the newest push wins)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(
            XComModel.dag_id,
            XComModel.run_id,
            XComModel.task_id,
            XComModel.map_index,
            XComModel.value,
        )
        .where(XComModel.key.in_(XCOM_KEYS))
        .order_by(XComModel.timestamp)
    )
    index: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        for dag_id, run_id, task_id, map_index, value in session.execute(query):
            name = _xcom_text(value)
            if name and (name.startswith("tunedModels/") or "/tuningJobs/" in name):
                index[name] = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
    return index


def job_of_task(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The tuning job a task instance created (the name its operator pushed), or ``None``.

    :param dag_id: the DAG id.
    :param run_id: the DAG run id.
    :param task_id: the task id.
    :param map_index: the map index (``-1`` when not mapped).
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(XComModel.key, XComModel.value)
        .where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key.in_(XCOM_KEYS),
        )
        .order_by(XComModel.timestamp.desc())
    )
    with create_session() as session:
        for _key, value in session.execute(query):
            name = _xcom_text(value)
            if name and (name.startswith("tunedModels/") or "/tuningJobs/" in name):
                return name
    return None


def tuning_connections() -> list[dict[str, str]]:
    """The tuning connections stored in Airflow's database: ``[{conn_id, conn_type, backend}]``."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    types = (CONN_TYPE, LEGACY_CONN_TYPE, GCP_CONN_TYPE)
    query = select(Connection.conn_id, Connection.conn_type).where(Connection.conn_type.in_(types))
    with create_session() as session:
        return [
            {"conn_id": conn_id, "conn_type": conn_type, "backend": backend_of(conn_type)}
            for conn_id, conn_type in session.execute(query.order_by(Connection.conn_id))
        ]
