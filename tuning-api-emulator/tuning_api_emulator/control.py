"""Control paths under ``/_emulator/`` (the real API cannot have them; they need no credentials).

=========================================  ==========================================================
``GET /_emulator/state``                   summary: tuned models and their progress, faults, counts
``POST /_emulator/reset``                  forget all state (models, jobs, objects, tokens), the
                                           request log and the faults
``GET /_emulator/faults``                  the fault plan as JSON
``PUT /_emulator/faults``                  replace the fault plan (body: see :mod:`.faults`)
``DELETE /_emulator/faults``               clear the fault plan
``GET /_emulator/requests``                the request log ``{"requests": [...]}``
``DELETE /_emulator/requests``             clear the request log
``POST /_emulator/fail/<model id>``        make a running job fail; optional body
                                           ``{"message": "...", "atStep": N}``
``POST /_emulator/vertex/fail/<job id>``   make a running Vertex AI tuning job fail (same body)
=========================================  ==========================================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuning_api_emulator.bodies import read_body
from tuning_api_emulator.errors import StatusError, bad_request, not_found
from tuning_api_emulator.jsonio import loads_json

if TYPE_CHECKING:
    from tuning_api_emulator.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("emulator_runtime")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(
        body, status=status, dumps=lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    )


def _error(err: StatusError) -> web.Response:
    return _json(err.body(), status=err.http_status)


async def _body(request: web.Request) -> Any:
    raw = await read_body(request, request.app[RUNTIME].body_limits)
    if not raw.strip():
        return None
    try:
        return loads_json(raw.decode("utf-8", errors="replace"), constants=True)
    except ValueError as err:
        raise bad_request(f"Invalid JSON body: {err}") from None


async def state(request: web.Request) -> web.Response:
    return _json(request.app[RUNTIME].state())


async def reset(request: web.Request) -> web.Response:
    request.app[RUNTIME].reset()
    return _json({})


async def get_faults(request: web.Request) -> web.Response:
    return _json(request.app[RUNTIME].faults_config())


async def put_faults(request: web.Request) -> web.Response:
    try:
        config = await _body(request)
        return _json(request.app[RUNTIME].set_faults(config))
    except StatusError as err:
        return _error(err)
    except (ValueError, TypeError) as err:
        return _error(bad_request(f"Invalid fault configuration: {err}"))


async def clear_faults(request: web.Request) -> web.Response:
    return _json(request.app[RUNTIME].set_faults(None))


async def get_requests(request: web.Request) -> web.Response:
    return _json({"requests": request.app[RUNTIME].request_log()})


async def clear_requests(request: web.Request) -> web.Response:
    request.app[RUNTIME].clear_request_log()
    return _json({})


async def _fail_body(request: web.Request) -> tuple[str, int | None]:
    body = await _body(request) or {}
    if not isinstance(body, dict) or set(body) - {"message", "atStep"}:
        raise bad_request('The body may only have "message" (string) and "atStep" (integer).')
    message = body.get("message", "")
    at_step = body.get("atStep")
    if not isinstance(message, str) or (
        at_step is not None and (isinstance(at_step, bool) or not isinstance(at_step, int))
    ):
        raise bad_request('"message" must be a string and "atStep" an integer.')
    return message, at_step


async def fail_vertex(request: web.Request) -> web.Response:
    try:
        message, at_step = await _fail_body(request)
        job = request.app[RUNTIME].fail_tuning_job(
            request.match_info["job"], message=message, at_step=at_step
        )
        return _json(job)
    except StatusError as err:
        return _error(err)


async def fail(request: web.Request) -> web.Response:
    try:
        message, at_step = await _fail_body(request)
        model = request.app[RUNTIME].fail_model(request.match_info["model"], message=message, at_step=at_step)
        return _json(model)
    except StatusError as err:
        return _error(err)


async def unknown(request: web.Request) -> web.Response:
    return _error(not_found(f"No emulator control path {request.method} {request.path}."))


def add_routes(app: web.Application) -> None:
    """Register the control paths on ``app``."""
    router = app.router
    router.add_get("/_emulator/state", state)
    router.add_post("/_emulator/reset", reset)
    router.add_get("/_emulator/faults", get_faults)
    router.add_put("/_emulator/faults", put_faults)
    router.add_delete("/_emulator/faults", clear_faults)
    router.add_get("/_emulator/requests", get_requests)
    router.add_delete("/_emulator/requests", clear_requests)
    router.add_post("/_emulator/fail/{model:.+}", fail)
    router.add_post("/_emulator/vertex/fail/{job:[^/]+}", fail_vertex)
    router.add_route("*", "/_emulator/{tail:.*}", unknown)
    router.add_route("*", "/_emulator", unknown)
