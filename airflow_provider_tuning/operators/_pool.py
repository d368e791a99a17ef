"""Connection-pool sizing and request-level rate limiting for a hook's ``requests.Session``.

Imported lazily by the inference operators (it imports ``requests``): DAG files never load it.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_tuning.operators._ratelimit import SlidingWindowRateLimiter

_PREFIXES = ("https://", "http://")


class RateLimitedHTTPAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` that takes a rate-limiter slot before every send.

    Every HTTP request the session sends goes through :meth:`send`, so the hook's own retries (after a
    429 or a 5xx) count against the limit too.

    :param limiter: the limiter to acquire from, or ``None`` for no limit.
    """

    def __init__(self, *args: Any, limiter: SlidingWindowRateLimiter | None = None, **kwargs: Any) -> None:
        self.limiter = limiter
        super().__init__(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if self.limiter is not None:
            self.limiter.acquire()
        return super().send(request, *args, **kwargs)


def configure_session(
    session: requests.Session, *, pool_size: int, limiter: SlidingWindowRateLimiter | None
) -> RateLimitedHTTPAdapter:
    """Mount one adapter for ``http://`` and ``https://`` whose pool holds ``pool_size`` connections.

    The pool never shrinks below what the session had, and the retry setting of the adapter it
    replaces is kept (the hook does its own retries, so it is normally 0).

    :param session: the hook's session (``hook.get_conn()``).
    :param pool_size: connections kept per host: at least the number of concurrent calls, so that no
        connection is thrown away and re-opened ("Connection pool is full, discarding connection").
    :param limiter: an optional limiter every request must pass.
    :return: the mounted adapter.
    """
    current = session.adapters.get("https://")
    max_retries: Any = 0
    if isinstance(current, HTTPAdapter):
        max_retries = current.max_retries
        pool_size = max(pool_size, int(getattr(current, "_pool_maxsize", 0) or 0))
    adapter = RateLimitedHTTPAdapter(
        pool_connections=2, pool_maxsize=pool_size, max_retries=max_retries, limiter=limiter
    )
    replaced = {id(a): a for p in _PREFIXES if (a := session.adapters.get(p)) is not None}
    for prefix in _PREFIXES:
        session.mount(prefix, adapter)
    for old in replaced.values():
        old.close()
    return adapter
