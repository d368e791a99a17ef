"""The sync hook base: one pooled session and one set of credentials per hook, on the transport.

Each service's hook says how to read its connection (:meth:`TuningApiHook.read_settings`) and adds
its REST methods; the session, credentials, retries and paging are written once, here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import InvalidInputError, UnexpectedResponseError
from airflow_provider_tuning.hooks.retry import RetryPolicy

if TYPE_CHECKING:
    import requests

    from airflow_provider_tuning.backends import ApiCall
    from airflow_provider_tuning.hooks._http import ApiClient
    from airflow_provider_tuning.hooks.connection import ConnectionSettings
    from airflow_provider_tuning.hooks.ratelimit import SlidingWindowRateLimiter


class TuningApiHook(BaseHook):
    """Sync calls to one tuning API through the shared transport.

    :param conn_id: the Airflow connection.
    :param timeout: ``(connect, read)`` timeout of every request, in seconds.
    :param retry: retry policy for 408/429/5xx answers and connection errors.
    :param pool_size: connections kept open per host: at least the number of concurrent calls.
    :param rate_limiter: a limiter every HTTP request of this hook (retries included) must pass.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        pool_size: int = 10,
        rate_limiter: SlidingWindowRateLimiter | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(timeout, (tuple, list)) or len(timeout) != 2:
            raise InvalidInputError("timeout must be a (connect, read) pair of positive seconds")
        self.conn_id = conn_id
        self.timeout = (
            validation.seconds("connect timeout", timeout[0]),
            validation.seconds("read timeout", timeout[1]),
        )
        self.retry = retry or RetryPolicy()
        self.pool_size = validation.positive_int("pool_size", pool_size)
        self.rate_limiter = rate_limiter
        self._settings: ConnectionSettings | None = None
        self._client: ApiClient | None = None
        self._lock = threading.Lock()
        self._sleep = time.sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    def read_settings(self, conn: Any) -> ConnectionSettings:
        """Parse the Airflow connection into the base URL and credentials settings.

        :param conn: the Airflow connection.
        """
        raise NotImplementedError

    def default_api_version(self) -> str:
        """The API version used when a call names none."""
        raise NotImplementedError

    @property
    def settings(self) -> ConnectionSettings:
        """The parsed connection (read once per hook)."""
        if self._settings is None:
            self._settings = self.read_settings(self.get_connection(self.conn_id))
        return self._settings

    @property
    def client(self) -> ApiClient:
        """The HTTP client: one pooled session and one set of credentials per hook."""
        with self._lock:
            if self._client is None:
                from airflow_provider_tuning.hooks._http import ApiClient, new_session
                from airflow_provider_tuning.hooks.credentials import build_request_auth

                settings = self.settings
                auth = build_request_auth(settings, timeout=self.timeout)
                session = new_session(
                    pool_size=self.pool_size, trust_env=not settings.is_loopback, limiter=self.rate_limiter
                )
                self._client = ApiClient(
                    settings.base_url,
                    auth,
                    session,
                    timeout=self.timeout,
                    retry=self.retry,
                    sleep=self._sleep,
                )
            return self._client

    def get_conn(self) -> requests.Session:
        """Return the hook's pooled ``requests.Session`` (auth headers are added per request)."""
        return self.client.session

    def close(self) -> None:
        """Close the pooled connections (a new session is made on the next call)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> TuningApiHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.client.request(method, path, **kwargs)

    def call(self, api_call: ApiCall, *, retry: RetryPolicy | None = None) -> dict[str, Any]:
        """Send a call a backend describes (:class:`~airflow_provider_tuning.backends.ApiCall`).

        :param api_call: the call.
        :param retry: a retry policy for this call instead of the hook's.
        """
        return self.client.request(
            api_call.method,
            api_call.path,
            params=api_call.params,
            body=api_call.body,
            retry_connection_errors=api_call.idempotent,
            retry=retry,
        )

    def _paginate(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield every item of a list call, following ``nextPageToken`` (a repeated token stops it)."""
        seen: set[str] = set()
        token: str | None = None
        while True:
            query = dict(params)
            if token:
                query["pageToken"] = token
            page = self._call("GET", path, params=query)
            items = page.get(key, [])
            if not isinstance(items, list):
                raise UnexpectedResponseError(
                    200, None, f"field {key!r} of the response is not a list", request=f"GET {path}"
                )
            yield from items
            token = page.get("nextPageToken") or None
            if token is None:
                return
            if not isinstance(token, str) or token in seen:
                raise UnexpectedResponseError(
                    200, None, "the API repeated a nextPageToken; stopping", request=f"GET {path}"
                )
            seen.add(token)
