"""``Emulator``: the server on its own event loop in a daemon thread (for tests and the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Collection
from typing import Any

from tuning_api_emulator.bodies import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_LOG_BODY_BYTES,
    DEFAULT_MAX_BODY_BYTES,
    BodyLimits,
)
from tuning_api_emulator.runtime import FaultsArg, Runtime
from tuning_api_emulator.service import DEFAULT_OWNER

_START_TIMEOUT = 30.0
log = logging.getLogger("tuning_api_emulator")
EXPOSED_WARNING = (
    "The tuning API emulator listens on %s, which is not a loopback address: it accepts credentials "
    "of no value (test keys and tokens, never verified with Google) and serves plain HTTP with no "
    "TLS, so anyone who can reach that address can call it and read what is sent. Listen on "
    "127.0.0.1 (the default) unless that is really meant."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) binds only the loopback interface.

    :param host: the interface to bind; ``""`` and ``0.0.0.0``/``::`` mean every interface.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Emulator:
    """A local emulator of the Generative Language and Vertex AI tuning APIs (and Cloud Storage).

    >>> with Emulator(step_seconds=0.02) as emu:  # doctest: +SKIP
    ...     requests.get(f"{emu.url}/v1beta/models", headers={"x-goog-api-key": "k"})

    :param step_seconds: seconds per tuning step (small for tests; the CLI default is 0.5).
    :param api_keys: accepted API keys; ``None`` accepts any non-empty key while ``tokens`` is
        ``None`` too (once keys or tokens are configured, only configured credentials pass).
    :param tokens: accepted OAuth access tokens; ``None`` accepts any non-empty token while
        ``api_keys`` is ``None`` too.
    :param state_file: JSON state file: loaded at start, rewritten atomically on every change.
    :param seed: seed of generated ids and of fault draws.
    :param host: interface to bind (loopback by default).
    :param port: port to bind; 0 picks a free one.
    :param faults: initial fault configuration (see :mod:`tuning_api_emulator.faults`).
    :param owner_email: the caller identity that owns created models.
    :param request_log_limit: how many requests :attr:`request_log` keeps.
    :param clock: time source (seconds since the epoch), for tests.
    :param max_body_bytes: the largest request body accepted (a larger one is answered 413).
    :param body_timeout: seconds a request body may take to arrive (a slower one is answered 408
        and its connection closed).
    :param log_body_bytes: how many bytes of each body the request log keeps.
    :param refresh_tokens: refresh tokens ``POST /token`` honours once credentials are configured.
    :param service_accounts: service-account emails whose JWT grants ``POST /token`` honours then.
    """

    def __init__(
        self,
        step_seconds: float = 0.5,
        api_keys: Collection[str] | None = None,
        tokens: Collection[str] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        seed: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultsArg = None,
        owner_email: str = DEFAULT_OWNER,
        request_log_limit: int = 100_000,
        clock: Callable[[], float] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        log_body_bytes: int = DEFAULT_LOG_BODY_BYTES,
        refresh_tokens: Collection[str] | None = None,
        service_accounts: Collection[str] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.runtime = Runtime(
            step_seconds=step_seconds,
            api_keys=api_keys,
            tokens=tokens,
            state_file=state_file,
            seed=seed,
            faults=faults,
            owner_email=owner_email,
            request_log_limit=request_log_limit,
            body_limits=BodyLimits(max_body_bytes, body_timeout, log_body_bytes),
            refresh_tokens=refresh_tokens,
            service_accounts=service_accounts,
            **kwargs,
        )
        self.host = host
        self.port = port
        self._url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8085`` (after :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._url

    def start(self) -> str:
        """Start serving in a daemon thread; returns the base URL."""
        if self._thread is not None:
            return self.url
        if not is_loopback(self.host):
            log.warning(EXPOSED_WARNING, self.host or "every interface")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="tuning-api-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the emulator did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self.url

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as err:  # surfaced to start()
            failure.append(err)
            ready.set()
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        from aiohttp import web

        from tuning_api_emulator.app import build_app

        self._stopped = asyncio.Event()
        # After a 413 or 408 the rest of an unread body is drained for at most the body timeout
        # (aiohttp's "lingering"), then the connection is closed.
        runner = web.AppRunner(
            build_app(self.runtime),
            access_log=None,
            handle_signals=False,
            lingering_time=self.runtime.body_limits.timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=4096, reuse_address=True)
            await site.start()
            host, port = runner.addresses[0][:2]
            shown = f"[{host}]" if ":" in host else host
            self._url = f"http://{shown}:{port}"
            ready.set()
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving and wait for the thread to end (idempotent)."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout=30)
        self._thread = None
        self._loop = None
        self._url = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- Python control API (same as the /_emulator/ paths) ---------------------------------------

    def set_faults(self, config: FaultsArg = None, **rule: Any) -> dict[str, Any]:
        """Replace the fault plan: a configuration, or one rule as keyword arguments
        (``seed=`` optional), e.g. ``emu.set_faults(match="GetOperation", error_503=0.3, seed=1)``.
        No arguments clear every fault. Returns the plan as JSON."""
        if rule:
            if config is not None:
                raise TypeError("pass a fault configuration or rule keywords, not both")
            seed = rule.pop("seed", self.runtime.seed)
            config = {"seed": seed, "rules": [rule]}
        return self.runtime.set_faults(config)

    @property
    def faults(self) -> dict[str, Any]:
        """The fault plan as JSON."""
        return self.runtime.faults_config()

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """Every API request so far: method, path, query string, body, headers (credential values
        redacted), rpc and response status."""
        return self.runtime.request_log()

    def clear_request_log(self) -> None:
        """Empty :attr:`request_log`."""
        self.runtime.clear_request_log()

    def reset(self) -> None:
        """Forget every tuned model, the request log and the faults."""
        self.runtime.reset()

    def fail_model(self, model: str, *, message: str = "", at_step: int | None = None) -> dict[str, Any]:
        """Make a running tuning job fail now (or at ``at_step``); returns the model."""
        return self.runtime.fail_model(model, message=message, at_step=at_step)

    def fail_tuning_job(
        self, job_id: str, *, message: str = "", at_step: int | None = None
    ) -> dict[str, Any]:
        """Make a running Vertex AI tuning job fail now (or at step ``at_step``); returns the job."""
        return self.runtime.fail_tuning_job(job_id, message=message, at_step=at_step)

    def state(self) -> dict[str, Any]:
        """The summary ``GET /_emulator/state`` returns."""
        return self.runtime.state()
