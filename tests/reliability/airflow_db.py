"""Read an Airflow metadata DB (sqlite, or PostgreSQL given its ``postgresql://`` URL) from the test
process, while Airflow processes use it.

Trigger kwargs are Fernet-encrypted in the ``trigger`` table; the tests set the deployment's Fernet
key themselves, so they decrypt them here to look inside (as an operator with the key could).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived read connection (waits up to 10 s for a writer's lock)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


#: A metadata DB: the sqlite file, or a PostgreSQL URL (``postgresql://user@host:port/db``).
Db = Path | str


def _pg_rows(dsn: str, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    """One query on PostgreSQL (``?`` placeholders, as for sqlite), in a short-lived connection."""
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(dsn, connect_timeout=10)
    try:
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql.replace("?", "%s"), params)
            return [dict(row) for row in cur.fetchall()]
    finally:
        conn.close()


def rows(db: Db, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Run one query and return the rows as dicts (sqlite: retries while the DB is locked)."""
    if isinstance(db, str):
        return _pg_rows(db, sql, params)
    for attempt in range(20):
        try:
            with connect(db) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(row) for row in conn.execute(sql, params)]
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def decrypt_kwargs(encrypted: str, fernet_key: str) -> Any:
    """Decrypt (if needed) and parse a ``trigger.kwargs`` value: Airflow's serialized JSON."""
    if encrypted.startswith("{"):
        return json.loads(encrypted)
    return json.loads(Fernet(fernet_key.encode()).decrypt(encrypted.encode()).decode())


def find_key(value: Any, key: str) -> Any:
    """The first value stored under ``key`` anywhere in a nested (serialized) structure."""
    if isinstance(value, dict):
        if key in value:
            found = value[key]
            # Airflow's serialization wraps values as {"__var": ..., "__type": ...}.
            return found.get("__var", found) if isinstance(found, dict) else found
        for item in value.values():
            result = find_key(item, key)
            if result is not None:
                return result
    elif isinstance(value, list):
        for item in value:
            result = find_key(item, key)
            if result is not None:
                return result
    return None


@dataclass(frozen=True)
class TriggerRow:
    """One observation of a ``trigger`` row."""

    id: int
    classpath: str
    kwargs: Any
    triggerer_id: int | None
    raw: str


def trigger_rows(db: Db, fernet_key: str) -> list[TriggerRow]:
    """Every row of the ``trigger`` table, kwargs decrypted."""
    return [
        TriggerRow(
            id=row["id"],
            classpath=row["classpath"],
            kwargs=decrypt_kwargs(row["kwargs"], fernet_key),
            triggerer_id=row["triggerer_id"],
            raw=row["kwargs"],
        )
        for row in rows(db, "SELECT id, classpath, kwargs, triggerer_id FROM trigger")
    ]


def task_instances(db: Db, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The task instances of one run, by task id."""
    found = rows(
        db,
        "SELECT task_id, state, try_number, trigger_id, trigger_timeout, next_method, next_kwargs "
        "FROM task_instance WHERE dag_id = ? AND run_id = ?",
        (dag_id, run_id),
    )
    return {row["task_id"]: row for row in found}


@dataclass
class DbSampler:
    """Samples the ``trigger`` table and deferred task instances every ``interval`` seconds in a
    thread, so rows that Airflow deletes once a trigger fires can still be inspected afterwards.

    :param db: the sqlite file or PostgreSQL URL.
    :param fernet_key: the deployment's Fernet key.
    :param interval: seconds between samples.
    """

    db: Db
    fernet_key: str
    interval: float = 0.5
    triggers: dict[int, list[TriggerRow]] = field(default_factory=dict)
    next_kwargs: list[tuple[str, str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one sample now."""
        for row in trigger_rows(self.db, self.fernet_key):
            seen = self.triggers.setdefault(row.id, [])
            if not seen or seen[-1] != row:
                seen.append(row)
        for ti in rows(
            self.db,
            "SELECT dag_id, task_id, next_kwargs FROM task_instance WHERE next_kwargs IS NOT NULL",
        ):
            entry = (ti["dag_id"], ti["task_id"], ti["next_kwargs"])
            if entry not in self.next_kwargs:
                self.next_kwargs.append(entry)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as err:  # keep sampling; report at the end
                self.errors.append(f"{type(err).__name__}: {err}")

    def __enter__(self) -> DbSampler:
        self._thread = threading.Thread(target=self._run, name="db-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sample()
