"""Tuned model ids: the API's id rule and the deterministic default id of a task run.

A retry of a task must never create a second tuned model, so the default ``tunedModelId`` is a
pure function of ``(dag_id, task_id, run_id, map_index)``: the same task instance gets the same id
on every try, and a 409 ALREADY_EXISTS tells the operator to reattach instead of creating again.
"""

from __future__ import annotations

import hashlib
import json
import re

from airflow_provider_tuning import validation

MAX_TUNED_MODEL_ID_LENGTH = 40
_HASH_CHARS = 10
_NON_ID_CHARS = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    """Lower-case ``text`` and collapse every run of characters outside ``[a-z0-9]`` into one hyphen."""
    return _NON_ID_CHARS.sub("-", text.lower()).strip("-")


def _fit(prefix: str, suffix: str) -> str:
    """Join ``prefix`` (truncated) and ``suffix`` into an id of <= 40 characters that starts with a letter."""
    if not prefix or not prefix[0].isalpha():
        prefix = f"t-{prefix}".rstrip("-") if prefix else "t"
    room = MAX_TUNED_MODEL_ID_LENGTH - len(suffix)
    prefix = prefix[:room].rstrip("-") or "t"
    return validation.tuned_model_id(f"{prefix}{suffix}", what="generated tuned model id")


def default_tuned_model_id(dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> str:
    """Return the deterministic tuned model id of one task instance.

    The id is a slug of ``<dag_id>-<task_id>`` truncated to fit, a hyphen and the first 10 hex
    characters of the SHA-256 of all four inputs, so it is stable across tries and distinct for
    every DAG, task, run and map index (the hash covers the full, untruncated names).

    :param dag_id: the DAG id.
    :param task_id: the task id.
    :param run_id: the DAG run id.
    :param map_index: the map index of a mapped task instance (``-1`` when not mapped).
    """
    key = json.dumps([dag_id, task_id, run_id, int(map_index)], separators=(",", ":"))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return _fit(_slug(f"{dag_id}-{task_id}"), f"-{digest}")


def recreated_tuned_model_id(base_id: str, generation: int) -> str:
    """Return the id of the ``generation``-th model of a task instance (``generation`` >= 2).

    Used when a model under ``base_id`` ended FAILED and the operator was told to recreate it: the
    new ids ``<base>-r2``, ``<base>-r3``... are deterministic too, so a crash after a recreation
    still reattaches instead of creating yet another model.

    :param base_id: the first id (the default id or the user's ``tuned_model_id``).
    :param generation: 2 for the first recreation, 3 for the next, and so on.
    """
    if generation < 2:
        raise ValueError(f"generation must be >= 2, got {generation}")
    return _fit(base_id, f"-r{generation}")
