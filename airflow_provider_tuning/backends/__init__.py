"""Backends: what differs between tuning services (request builders and status parsing), pure.

The transport (:mod:`airflow_provider_tuning.hooks.transport`), the wait policy
(:mod:`airflow_provider_tuning.waiting`), the trigger and the sensor are shared; a backend adds only
its :class:`~airflow_provider_tuning.backends.base.TuningBackend`.
"""

from __future__ import annotations

from airflow_provider_tuning.backends.base import ApiCall, TuningBackend
from airflow_provider_tuning.exceptions import InvalidInputError

__all__ = ["ApiCall", "TuningBackend", "get_backend"]

BACKENDS = ("gemini", "vertex")


def get_backend(name: str) -> TuningBackend:
    """Return the backend called ``name``: ``gemini`` (the Generative Language API) or ``vertex``
    (Vertex AI tuning jobs).

    :param name: the backend's name.
    :raises InvalidInputError: no backend has that name.
    """
    if name == "gemini":
        from airflow_provider_tuning.backends.gemini import GEMINI

        return GEMINI
    if name == "vertex":
        from airflow_provider_tuning.backends.vertex import VERTEX

        return VERTEX
    raise InvalidInputError(f"unknown tuning backend {name!r}; expected one of {', '.join(BACKENDS)}")
