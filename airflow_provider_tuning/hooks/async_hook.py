"""``GenerativeLanguageAsyncHook``: the async driver of the transport (aiohttp), for triggers.

It sends what :mod:`.transport` prepares and decides, exactly as the sync hook does; only the I/O
differs. Nothing here blocks the event loop: the connection is read with ``get_async_connection``;
parsing it, building credentials and refreshing a token (blocking HTTP in google-auth) run in a
worker thread; a large response is classified in a worker thread too. All hooks of one event loop
that use the same connection share one ``aiohttp.ClientSession`` (one connection pool).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook, conf

from airflow_provider_tuning.exceptions import ApiConnectionError, GenerativeLanguageError, InvalidInputError
from airflow_provider_tuning.hooks.connection import (
    DEFAULT_API_VERSION,
    DEFAULT_CONN_ID,
    ConnectionHookAttributes,
)
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.transport import REAUTHENTICATE, Call, Retry, prepare_request

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_tuning.backends import ApiCall
    from airflow_provider_tuning.hooks.connection import ConnectionSettings
    from airflow_provider_tuning.hooks.credentials import RequestAuth

#: Default of ``[generative_language] trigger_max_connections``: open connections per shared session
#: (one per event loop and conn id). 5,000 waits polled every 5 s are 1,000 polls a second; at
#: 100 ms per poll that needs 100 connections in flight (BENCHMARKS.md, section 1).
DEFAULT_MAX_CONNECTIONS = 256
#: Responses larger than this are parsed in a worker thread, not on the event loop.
LARGE_RESPONSE_BYTES = 64 * 1024
CONNECT_TIMEOUT = 10.0

# Modules imported lazily on the event loop by this hook or by Airflow's async connection lookup;
# a first import there would block the loop, so they are imported in a worker thread.
_LAZY_MODULES = (
    "aiohttp",
    "asgiref.sync",
    "airflow.providers.common.compat.connection",
    "airflow.sdk.execution_time.cache",
    "airflow.sdk.execution_time.supervisor",
    "airflow_provider_tuning.hooks.connection",
    "airflow_provider_tuning.hooks.credentials",
)


def max_connections() -> int:
    """Read ``[generative_language] trigger_max_connections`` (a positive integer).

    :raises InvalidInputError: the option is set to something else.
    """
    raw = conf.get("generative_language", "trigger_max_connections", fallback=str(DEFAULT_MAX_CONNECTIONS))
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInputError(
            f"[generative_language] trigger_max_connections must be a positive integer, got {raw!r}"
        )
    return value


#: Default of ``[generative_language] trigger_gc_full_collection_threshold`` (BENCHMARKS.md, section 1).
DEFAULT_GC_FULL_COLLECTION_THRESHOLD = 1000
_GC_TUNED = False


def raise_full_collection_threshold() -> None:
    """Once per process, raise the third garbage-collection threshold to
    ``[generative_language] trigger_gc_full_collection_threshold`` (never lower it; 0: leave it).

    Each full collection walks every object alive while the event loop waits; a triggerer holding
    thousands of waits has hundreds of thousands, and with Python's default of 10 it collects them
    every few seconds (0.3 s pauses at 5,000 waits polled every 5 s).

    :raises InvalidInputError: the option is not a whole number >= 0.
    """
    global _GC_TUNED
    if _GC_TUNED:
        return
    raw = conf.get(
        "generative_language",
        "trigger_gc_full_collection_threshold",
        fallback=str(DEFAULT_GC_FULL_COLLECTION_THRESHOLD),
    )
    try:
        wanted = int(str(raw).strip())
    except ValueError:
        wanted = -1
    if wanted < 0:
        raise InvalidInputError(
            "[generative_language] trigger_gc_full_collection_threshold must be a whole number >= 0, "
            f"got {raw!r}"
        )
    first, second, third = gc.get_threshold()
    if wanted > third:
        gc.set_threshold(first, second, wanted)
    _GC_TUNED = True


def _import_dependencies() -> None:
    """Import every module in :data:`_LAZY_MODULES` (run in a worker thread)."""
    import importlib

    for name in _LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # e.g. another Airflow version without that module
            continue


async def _aiohttp() -> Any:
    module = sys.modules.get("aiohttp")
    if module is None:
        await asyncio.to_thread(_import_dependencies)
        module = sys.modules["aiohttp"]
    return module


# -- one shared aiohttp session per (event loop, conn id) ---------------------------------------------


@dataclass
class _SharedSession:
    session: aiohttp.ClientSession
    users: int = 0


@dataclass
class _SharedCredentials:
    settings: ConnectionSettings
    auth: RequestAuth
    users: int = 0


#: Per event loop: the settings and credentials of each connection in use (one read, one token).
_CREDENTIALS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], _SharedCredentials]
] = weakref.WeakKeyDictionary()

_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedSession]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def shared_session(conn_id: str, *, trust_env: bool = True) -> AsyncIterator[aiohttp.ClientSession]:
    """Lease the ``aiohttp.ClientSession`` shared by every user of this event loop and ``conn_id``.

    The session is created on first use and closed when its last user leaves.

    :param conn_id: the Airflow connection id.
    :param trust_env: honour proxy environment variables (set by the session's first user).
    """
    aiohttp = await _aiohttp()
    raise_full_collection_threshold()
    per_loop = _SESSIONS.setdefault(asyncio.get_running_loop(), {})
    entry = per_loop.get(conn_id)
    if entry is None or entry.session.closed:
        connector = aiohttp.TCPConnector(limit=max_connections())
        session = aiohttp.ClientSession(
            connector=connector, trust_env=trust_env, cookie_jar=aiohttp.DummyCookieJar()
        )
        entry = _SharedSession(session)
        per_loop[conn_id] = entry
    entry.users += 1
    try:
        yield entry.session
    finally:
        entry.users -= 1
        if entry.users == 0:
            if per_loop.get(conn_id) is entry:
                del per_loop[conn_id]
            await entry.session.close()


def _describe(err: BaseException) -> str:
    """A short description of an aiohttp error (its text names host and port, never a credential)."""
    text = " ".join(str(err).split())[:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class GenerativeLanguageAsyncHook(ConnectionHookAttributes, BaseHook):
    """Async API calls on a ``generativelanguage`` connection (the shape of ``HttpAsyncHook``).

    Use it as an async context manager: entering reads the connection and leases the shared
    session; leaving returns it::

        async with GenerativeLanguageAsyncHook(conn_id) as hook:
            operation = await hook.call(ApiCall("GET", "/v1/tunedModels/x/operations/y"))

    :param conn_id: the Airflow connection (type ``generativelanguage``).
    :param retry: retry policy of each call (a wait passes a single-attempt policy per poll).
    :param request_timeout: total seconds one HTTP request may take.
    """

    hook_name = "Generative Language (tuning, async)"

    def __init__(
        self,
        conn_id: str = DEFAULT_CONN_ID,
        *,
        retry: RetryPolicy | None = None,
        request_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.retry = retry or RetryPolicy()
        self.request_timeout = request_timeout
        self.settings: ConnectionSettings | None = None
        self.auth: RequestAuth | None = None
        self._lease: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._credentials: (
            tuple[dict[tuple[Any, ...], _SharedCredentials], tuple[Any, ...], _SharedCredentials] | None
        ) = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    async def __aenter__(self) -> GenerativeLanguageAsyncHook:
        """Lease the connection's settings and credentials, and its session, shared by every hook of
        this event loop on the same connection (read once; one token refresh serves them all)."""
        per_loop = _CREDENTIALS.setdefault(asyncio.get_running_loop(), {})
        key = self.share_key()
        entry = per_loop.get(key)
        if entry is None:
            await self.connect()
            if self.settings is None or self.auth is None:  # connect() sets both or raises
                raise RuntimeError(f"{self!r} could not read its connection")
            entry = per_loop.setdefault(key, _SharedCredentials(self.settings, self.auth))
        self.settings, self.auth = entry.settings, entry.auth
        entry.users += 1
        self._credentials = (per_loop, key, entry)
        try:
            self._lease = shared_session(self.conn_id, trust_env=not entry.settings.is_loopback)
            self._session = await self._lease.__aenter__()
        except BaseException:
            self._release_credentials()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease, self._session = self._lease, None, None
        self._release_credentials()
        if lease is not None:
            await lease.__aexit__(exc_type, exc, tb)

    def share_key(self) -> tuple[Any, ...]:
        """What hooks that may share settings and credentials have in common."""
        return (type(self).__qualname__, self.conn_id)

    def _release_credentials(self) -> None:
        held, self._credentials = self._credentials, None
        if held is None:
            return
        per_loop, key, entry = held
        entry.users -= 1
        if entry.users <= 0 and per_loop.get(key) is entry:
            del per_loop[key]

    async def connect(self) -> None:
        """Read the connection and build its credentials (once), without blocking the event loop."""
        if self.settings is not None:
            return
        await asyncio.to_thread(_import_dependencies)
        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_tuning.hooks.credentials import build_request_auth

        conn = await get_async_connection(self.conn_id)
        # Parsing may read extra_dejson (which masks secrets with a blocking call) and the
        # credentials may read a key file: both run in a worker thread.
        settings = await asyncio.to_thread(self.read_settings, conn)
        self.auth = await asyncio.to_thread(build_request_auth, settings)
        self.settings = settings

    def read_settings(self, conn: Any) -> ConnectionSettings:
        """Parse a ``generativelanguage`` connection (runs in a worker thread).

        :param conn: the Airflow connection.
        """
        from airflow_provider_tuning.hooks.connection import ConnectionSettings

        return ConnectionSettings.from_connection(conn)

    def default_api_version(self) -> str:
        """The connection's API version (after :meth:`connect`)."""
        return (self.settings.api_version if self.settings else None) or DEFAULT_API_VERSION

    def scrub(self, text: str) -> str:
        """Remove every known secret of this connection from ``text``.

        :param text: a message.
        """
        return self.auth.scrub(text) if self.auth is not None else text

    async def call(
        self,
        api_call: ApiCall,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        then: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """Send one call and return its JSON object (or ``then(object)``); retries and errors as the
        sync hook.

        :param api_call: the call.
        :param retry: a retry policy for this call instead of the hook's.
        :param timeout: total seconds each HTTP attempt may take (default: ``request_timeout``).
        :param then: a parser of the JSON object; it runs where the JSON was parsed: in a worker
            thread for a large response, so parsing thousands of items never holds the loop.
        :raises ApiError: the API answered with an error (after retries).
        :raises ApiConnectionError: the API could not be reached (after retries).
        """
        if self.settings is None or self.auth is None:
            raise RuntimeError(f"{self!r} is used outside 'async with'")
        prepared = prepare_request(
            self.settings.base_url,
            api_call.method,
            api_call.path,
            params=api_call.params,
            body=api_call.body,
            idempotent=api_call.idempotent,
        )
        call = Call(prepared, retry or self.retry, refreshable=self.auth.refreshable, scrub=self.auth.scrub)
        while True:
            step = await self._attempt(call, timeout or self.request_timeout, then)
            if step is REAUTHENTICATE:
                await asyncio.to_thread(self.auth.invalidate)
            elif isinstance(step, Retry):
                await asyncio.sleep(step.delay)
            else:
                return step  # type: ignore[no-any-return]

    async def _attempt(self, call: Call, timeout: float, then: Callable[[dict[str, Any]], Any] | None) -> Any:
        aiohttp = await _aiohttp()
        session, auth = self._session, self.auth
        if session is None or auth is None:
            raise RuntimeError(f"{self!r} is used outside 'async with'")
        prepared = call.request
        try:
            if auth.refreshable:  # a token refresh is blocking HTTP
                auth_headers = await asyncio.to_thread(auth.headers, prepared.method, prepared.url)
            else:
                auth_headers = auth.headers(prepared.method, prepared.url)
        except GenerativeLanguageError as err:  # the token endpoint failed: nothing was sent
            return call.on_error(err, sent=False)
        client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(CONNECT_TIMEOUT, timeout))
        try:
            async with session.request(
                prepared.method,
                prepared.url,
                params=prepared.params or None,
                data=prepared.body,
                headers={**prepared.headers, **auth_headers},
                timeout=client_timeout,
                allow_redirects=False,
            ) as response:
                status, content, headers = response.status, await response.read(), response.headers
        except asyncio.TimeoutError:
            return call.on_error(ApiConnectionError(f"{prepared.route}: timed out after {timeout:g} s"))
        except aiohttp.ClientError as err:
            message = auth.scrub(f"{prepared.route}: {_describe(err)}")
            return call.on_error(ApiConnectionError(message))

        def decide() -> Any:
            step = call.on_response(status, content, headers=headers)
            return then(step) if then is not None and isinstance(step, dict) else step

        if len(content) > LARGE_RESPONSE_BYTES:
            return await asyncio.to_thread(decide)
        return decide()


class VertexAsyncHook(GenerativeLanguageAsyncHook):
    """The async driver on a ``google_cloud_platform`` connection, for Vertex AI waits.

    :param gcp_conn_id: the connection (the Google provider's type; it need not be installed).
    :param location: the region of the jobs it reads (its host is regional).
    :param project_id: the project, overriding the connection's.
    :param retry: retry policy of each call.
    :param request_timeout: total seconds one HTTP request may take.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Vertex AI tuning (async)"

    def __init__(
        self,
        gcp_conn_id: str = "google_cloud_default",
        *,
        location: str,
        project_id: str | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 60.0,
    ) -> None:
        super().__init__(gcp_conn_id, retry=retry, request_timeout=request_timeout)
        self.location = location
        self.project_id = project_id

    def share_key(self) -> tuple[Any, ...]:
        """Hooks share settings per connection, region and project (the host is regional)."""
        return (*super().share_key(), self.location, self.project_id)

    def read_settings(self, conn: Any) -> ConnectionSettings:
        """Vertex AI settings of a ``google_cloud_platform`` connection (runs in a worker thread).

        :param conn: the Airflow connection.
        """
        from airflow_provider_tuning.hooks.vertex_connection import vertex_settings

        return vertex_settings(conn, project=self.project_id, location=self.location).auth

    def default_api_version(self) -> str:
        """``v1``."""
        return "v1"


def async_hook_for(
    backend: str, conn_id: str, name: str, *, request_timeout: float
) -> GenerativeLanguageAsyncHook:
    """The async hook a wait on ``name`` of ``backend`` polls through.

    :param backend: ``gemini`` or ``vertex``.
    :param conn_id: the Airflow connection.
    :param name: the (normalised) name polled; a Vertex job name gives the region.
    :param request_timeout: total seconds one HTTP request may take.
    """
    if backend == "vertex":
        return VertexAsyncHook(conn_id, location=name.split("/")[3], request_timeout=request_timeout)
    return GenerativeLanguageAsyncHook(conn_id, request_timeout=request_timeout)
