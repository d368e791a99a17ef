"""Tuned model ids and provenance: the deterministic default id of a task run, and the marker that
tells which task instance and which request created a model.

A retry of a task must never create a second tuned model, so the default ``tunedModelId`` is a
pure function of ``(dag_id, task_id, run_id, map_index)``: the same task instance gets the same id
on every try, and a 409 ALREADY_EXISTS tells the operator to reattach instead of creating again.
It reattaches only when the model's :class:`Provenance` marker is its own (same task instance, same
request): an explicit id reused by another run, or by the same task with other training data, is
an error, not somebody else's model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


# --- provenance: which task instance and which request made a model ---------------------------------

#: Hex characters of each hash in a provenance marker.
_MARKER_HASH_CHARS = 12
#: The marker the operator appends to the description it sends: ``[airflow ti=<12 hex> req=<12 hex>]``.
MARKER_PATTERN = re.compile(r"\[airflow ti=([0-9a-f]{12}) req=([0-9a-f]{12})\]\Z")
#: The request fields a fingerprint covers: what the tuning job is made of, all immutable in the API.
#: Display name, description and the sampling defaults are left out: they can be updated afterwards,
#: and the description carries the marker itself.
FINGERPRINTED_FIELDS = ("baseModel", "tunedModelSource", "tuningTask")


def digest(value: object) -> str:
    """A short stable hash of a JSON-able value (12 hex characters): provenance markers and labels.

    :param value: the value (keys sorted, so dict order does not matter).
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:_MARKER_HASH_CHARS]


@dataclass(frozen=True)
class Provenance:
    """Who created a tuned model: a hash of the task instance and a hash of the create request.

    The Gemini ``TunedModel`` has no labels; its ``description`` is the only free text the API echoes,
    so the marker (:attr:`marker`) goes at the end of it.

    :param task_instance: hash of ``(dag_id, task_id, run_id, map_index)``.
    :param request: hash of the API version and the :data:`FINGERPRINTED_FIELDS` of the create body.
    """

    task_instance: str
    request: str

    @classmethod
    def of(
        cls, dag_id: str, task_id: str, run_id: str, map_index: int, api_version: str, body: Mapping[str, Any]
    ) -> Provenance:
        """Return the provenance of a create request made by one task instance.

        :param dag_id: the DAG id.
        :param task_id: the task id.
        :param run_id: the DAG run id.
        :param map_index: the map index (``-1`` when not mapped).
        :param api_version: the API version of the create call.
        :param body: the ``TunedModel`` JSON sent (training data included).
        """
        request = {key: body[key] for key in FINGERPRINTED_FIELDS if key in body}
        return cls(
            task_instance=digest([dag_id, task_id, run_id, int(map_index)]),
            request=digest([api_version, request]),
        )

    @classmethod
    def parse(cls, description: Any) -> Provenance | None:
        """Return the provenance at the end of a model's description, or ``None`` without a marker.

        :param description: the ``description`` the API returned (may be missing).
        """
        if not isinstance(description, str):
            return None
        found = MARKER_PATTERN.search(description.rstrip())
        return cls(found.group(1), found.group(2)) if found else None

    @property
    def marker(self) -> str:
        """The text appended to the description."""
        return f"[airflow ti={self.task_instance} req={self.request}]"

    def describe(self, description: str | None) -> str:
        """Return the description to send: the user's text (if any), a space and the marker.

        :param description: the user's description.
        """
        return f"{description.rstrip()} {self.marker}" if description and description.strip() else self.marker
