"""A scripted loopback HTTP server standing in for the tuning API in trigger, wait and sensor tests.

It runs an ``aiohttp.web`` app on its own event loop in a daemon thread (so the code under test,
on its own loop, is measured alone), bound to 127.0.0.1 on a free port. Each path answers from a
script: a list of :class:`Reply`; each request takes the next reply and the last one repeats.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "loopback-api-key-123"
MODEL_ID = "number-generator-model-dzlmi0gswwqb"
MODEL = f"tunedModels/{MODEL_ID}"
OP = f"{MODEL}/operations/bvl8dymw0fhw"
OP_PATH = f"/v1/{OP}"
MODEL_PATH = f"/v1beta/{MODEL}"
META_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"


@dataclass
class Reply:
    """One scripted answer.

    :param body: JSON body (ignored when ``text`` is set).
    :param status: HTTP status.
    :param text: a raw body instead of JSON.
    :param headers: response headers.
    :param delay: seconds to wait before answering.
    :param drop: close the connection without answering.
    """

    body: Any = None
    status: int = 200
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    time: float


def error(status: int, rpc_status: str, message: str, **kwargs: Any) -> Reply:
    """A google.rpc.Status error reply, as Google's front end sends it."""
    return Reply(
        {"error": {"code": status, "message": message, "status": rpc_status}}, status=status, **kwargs
    )


def snapshot(step: int, total: int = 38, examples: int = 15, batch: int = 2) -> dict[str, Any]:
    """A TuningSnapshot like the transcripts' (epoch left out when 0)."""
    snap: dict[str, Any] = {
        "step": step,
        "meanLoss": round(16.0 / (step + 1), 6),
        "computeTime": f"2024-03-14T15:{10 + step // 60:02d}:{step % 60:02d}.123456Z",
    }
    epoch = step * batch // examples
    if epoch:
        snap["epoch"] = epoch
    return snap


def operation(step: int, total: int = 38, *, done: bool = False, error: dict | None = None) -> dict[str, Any]:
    """An Operation of tunedModels.create at ``step`` of ``total`` (done: with the TunedModel)."""
    metadata: dict[str, Any] = {"@type": META_TYPE, "totalSteps": total, "tunedModel": MODEL}
    if step:
        metadata["completedSteps"] = step
        metadata["completedPercent"] = 100.0 * step / total
        metadata["snapshots"] = [snapshot(s, total) for s in range(1, step + 1)]
    op: dict[str, Any] = {"name": OP, "metadata": metadata}
    if done or error:
        op["done"] = True
    if error:
        op["error"] = error
    elif done:
        op["response"] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel",
            **tuned_model("ACTIVE", step),
        }
    return op


def tuned_model(state: str, step: int = 0) -> dict[str, Any]:
    """A TunedModel in ``state`` with snapshots up to ``step``."""
    model: dict[str, Any] = {
        "name": MODEL,
        "baseModel": "models/gemini-1.0-pro-001",
        "displayName": "number generator model",
        "state": state,
        "createTime": "2024-03-14T15:10:00.000000Z",
        "updateTime": "2024-03-14T15:11:23.766989Z",
        "tuningTask": {"hyperparameters": {"epochCount": 5, "batchSize": 2, "learningRate": 0.001}},
    }
    if step:
        model["tuningTask"]["snapshots"] = [snapshot(s) for s in range(1, step + 1)]
    return model


class ScriptedApi:
    """The loopback server. Use as a context manager; ``url`` is its base URL."""

    def __init__(self) -> None:
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[Seen] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------

    def script(self, path: str, *replies: Reply | dict[str, Any], method: str = "GET") -> None:
        """Answer ``method path`` with ``replies`` in order (the last one repeats)."""
        items = [r if isinstance(r, Reply) else Reply(r) for r in replies]
        with self._lock:
            self._scripts[(method, path)] = items

    def seen(self, path: str | None = None, method: str = "GET") -> list[Seen]:
        """Requests received (for one path if given)."""
        with self._lock:
            return [r for r in self.requests if (path is None or r.path == path) and r.method == method]

    # -- server ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        with self._lock:
            self.requests.append(
                Seen(
                    request.method,
                    request.path,
                    request.query_string,
                    dict(request.headers),
                    body,
                    time.time(),
                )
            )
            replies = self._scripts.get((request.method, request.path))
            reply = None
            if replies:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply is None:
            reply = error(404, "NOT_FOUND", f"Method not found: {request.method} {request.path}")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
        return web.Response(
            status=reply.status,
            text=json.dumps(reply.body if reply.body is not None else {}),
            headers={"Content-Type": "application/json; charset=UTF-8", **reply.headers},
        )

    def start(self) -> str:
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = self._runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="scripted-api", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the loopback server did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ScriptedApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_key_connection(conn_id: str, url: str, api_key: str = API_KEY, **extra: Any) -> str:
    """The AIRFLOW_CONN_<ID> JSON of an API-key connection to ``url``."""
    conn: dict[str, Any] = {"conn_type": "generativelanguage", "host": url, "password": api_key}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def set_connection(monkeypatch: Any, conn_id: str, value: str) -> None:
    """Define a connection through its ``AIRFLOW_CONN_<ID>`` environment variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


# -- helpers for tests against the project's emulator ---------------------------------------------


def create_tuned_model(
    url: str,
    model_id: str,
    *,
    display_name: str = "number generator",
    examples: int = 6,
    epochs: int = 2,
    batch: int = 2,
    version: str = "v1beta",
    base_model: str = "models/gemini-1.0-pro-001",
) -> dict[str, Any]:
    """Create a tuned model with plain ``requests`` (snake_case, as the seeds do); return the Operation."""
    import requests

    body = {
        "display_name": display_name,
        "base_model": base_model,
        "tuning_task": {
            "hyperparameters": {"batch_size": batch, "epoch_count": epochs},
            "training_data": {
                "examples": {
                    "examples": [{"text_input": str(i), "output": str(i + 1)} for i in range(examples)]
                }
            },
        },
    }
    response = requests.post(
        f"{url}/{version}/tunedModels",
        params={"tunedModelId": model_id},
        json=body,
        headers={"x-goog-api-key": API_KEY},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()
