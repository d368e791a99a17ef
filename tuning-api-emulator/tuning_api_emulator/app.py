"""The aiohttp application: one catch-all API handler plus the ``/_emulator/`` control paths.

For each API request: read its body within bounds (:mod:`.bodies`: 413 when too large, 408 when
too slow), log it (without credential values; a bounded prefix of the body), resolve the route (404
"Method not found." otherwise), apply any fault (latency, 429/500/503, dropped connection; a
``drop_after`` fault closes the connection once the handler has run), check
credentials, check query parameters (unknown ones are a 400, system parameters such as ``alt``,
``$alt``, ``key``, ``prettyPrint`` are accepted), parse the body, run the handler and render JSON
(enums as numbers when ``$alt=json;enum-encoding=int`` asks for it; ``alt=sse`` streams; only
the fields a ``fields`` parameter selects, see :mod:`.partial`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, NoReturn
from urllib.parse import unquote_plus

from aiohttp import web
from multidict import MultiMapping

from tuning_api_emulator import auth, control
from tuning_api_emulator.bodies import log_text, read_body
from tuning_api_emulator.errors import StatusError, bad_request
from tuning_api_emulator.jsonio import (
    dumps,
    enums_to_int,
    loads_body,
    timestamp,
    wants_int_enums,
)
from tuning_api_emulator.partial import Selection, parse_fields, select
from tuning_api_emulator.routes import Match, resolve
from tuning_api_emulator.runtime import Runtime
from tuning_api_emulator.schema import snake
from tuning_api_emulator.service import Stream, unknown_query

log = logging.getLogger("tuning_api_emulator")

RUNTIME = control.RUNTIME
SYSTEM_PARAMS = frozenset(
    {
        "key",
        "alt",
        "fields",
        "prettyPrint",
        "quotaUser",
        "access_token",
        "oauth_token",
        "callback",
        "uploadType",
        "upload_protocol",
        "userIp",
        "$.xgafv",
    }
)
SECRET_HEADERS = frozenset({"authorization", "x-goog-api-key", "cookie", "proxy-authorization"})
#: Query parameters that carry a credential (the API takes key, access_token and oauth_token; the
#: others are refused as unknown but would still reach the request log).
SECRET_PARAMS = frozenset(
    {
        "key",
        "access_token",
        "oauth_token",
        "api_key",
        "apikey",
        "token",
        "id_token",
        "refresh_token",
        "client_secret",
        "password",
    }
)
REDACTED = "<redacted>"
_HEADERS = {"Vary": "Origin, X-Origin, Referer", "X-Content-Type-Options": "nosniff"}


def build_app(runtime: Runtime) -> web.Application:
    """The web application serving ``runtime``."""
    app = web.Application(client_max_size=runtime.body_limits.max_bytes)
    app[RUNTIME] = runtime
    control.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", handle_api)
    return app


def safe_headers(headers: MultiMapping[str]) -> dict[str, str]:
    """Request headers with credential values replaced by ``<redacted>``."""
    return {key: (REDACTED if key.lower() in SECRET_HEADERS else value) for key, value in headers.items()}


def safe_query(query_string: str) -> str:
    """A raw query string with the values of credential parameters replaced by ``<redacted>``.

    :param query_string: the query string as received (percent-encoded, without ``?``).
    """
    parts = []
    for part in query_string.split("&"):
        name, equals, _ = part.partition("=")
        if unquote_plus(name).strip().lstrip("$").lower() in SECRET_PARAMS:
            part = f"{name}{equals or '='}{REDACTED}"
        parts.append(part)
    return "&".join(parts)


def _alt_values(query: MultiMapping[str]) -> list[str]:
    return [*query.getall("alt", []), *query.getall("$alt", [])]


def _pretty(query: MultiMapping[str]) -> bool:
    value = query.get("prettyPrint", query.get("$prettyPrint", "true"))
    return value.lower() not in ("false", "0")


def _params(match: Match, query: MultiMapping[str]) -> dict[str, str]:
    allowed = {name: name for name in match.route.query}
    allowed.update({snake(name): name for name in match.route.query})
    params: dict[str, str] = {}
    for key in dict.fromkeys(query.keys()):
        if key.startswith("$") or key in SYSTEM_PARAMS:
            continue
        target = allowed.get(key)
        if target is None:
            raise unknown_query(key)
        values = query.getall(key)
        params[target] = ",".join(values) if target == "updateMask" else values[-1]
    for alt in _alt_values(query):
        if alt.split(";")[0].strip() not in ("json", "sse"):
            raise bad_request(
                f"Unsupported alt={alt!r}: this emulator answers json (and sse for streaming).", "alt"
            )
    return params


def _json_response(
    body: Any, query: MultiMapping[str], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=dumps(body, pretty=_pretty(query)),
        content_type="application/json",
        charset="utf-8",
        headers={**_HEADERS, **(headers or {})},
    )


def _selection(query: MultiMapping[str]) -> Selection | None:
    """The parsed ``fields`` system parameter (``None`` when absent or empty: the whole response)."""
    expression = query.get("fields", "")
    return _parsed_fields(expression) if expression.strip() else None


@functools.lru_cache(maxsize=256)
def _parsed_fields(expression: str) -> Selection:
    """:func:`parse_fields`, cached: a poller sends the same expression on every poll (never mutated)."""
    return parse_fields(expression)


def _shape(body: Any, selection: Selection | None, int_enums: bool) -> Any:
    """``body`` narrowed to ``selection`` and with enums as numbers when asked."""
    body = select(body, selection) if selection is not None else body
    return enums_to_int(body) if int_enums else body


def _render(result: Any, query: MultiMapping[str], selection: Selection | None) -> web.Response:
    int_enums = wants_int_enums(_alt_values(query))
    if isinstance(result, Stream):
        chunks = [_shape(chunk, selection, int_enums) for chunk in result.chunks]
        if any(alt.split(";")[0].strip() == "sse" for alt in _alt_values(query)):
            text = "".join(f"data: {dumps(chunk, pretty=False)}\r\n\r\n" for chunk in chunks)
            return web.Response(
                text=text, content_type="text/event-stream", charset="utf-8", headers=_HEADERS
            )
        return _json_response(chunks, query)
    return _json_response(_shape(result, selection, int_enums), query)


def _error(err: StatusError, query: MultiMapping[str]) -> web.Response:
    return _json_response(err.body(), query, status=err.http_status, headers=err.headers)


def _drop(request: web.Request, entry: dict[str, Any], status: str) -> NoReturn:
    """Close the connection without an answer (a fault), recording ``status`` in the log entry."""
    entry["status"] = status
    log.info("%s %s -> connection closed without an answer (fault: %s)", request.method, request.path, status)
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError


def _entry(request: web.Request, runtime: Runtime) -> dict[str, Any]:
    """A new request log entry (no body yet, credentials redacted)."""
    return {
        "time": timestamp(runtime.clock()),
        "method": request.method,
        "path": request.path,
        "query": safe_query(request.query_string),
        "body": "",
        "headers": safe_headers(request.headers),
        "rpc": None,
        "status": None,
    }


def _finish(request: web.Request, entry: dict[str, Any], response: web.Response) -> web.Response:
    entry["status"] = response.status
    log.info("%s %s -> %s", request.method, request.path, response.status)
    return response


def _serve(
    request: web.Request, runtime: Runtime, raw: bytes, match: Match | StatusError, fault: StatusError | None
) -> web.Response:
    """Answer an API request whose body has been read: fault, route, auth, params, handler, render."""
    method, query = request.method, request.query
    try:
        if fault is not None:
            raise fault
        if isinstance(match, StatusError):
            raise match
        auth.check(request.headers, query, api_keys=runtime.api_keys, tokens=runtime.tokens)
        params = _params(match, query)
        selection = _selection(query)  # a bad expression is refused before anything changes
        body = loads_body(raw) if method in ("POST", "PATCH", "PUT") else {}
        with runtime.lock:
            result = runtime.service.dispatch(match, params, body, runtime.clock())
        return _render(result, query, selection)
    except StatusError as err:
        return _error(err, query)
    except Exception:  # a bug in the emulator: answer like the service would, and say so in the log
        log.exception("emulator error serving %s %s", method, request.path)
        return _error(StatusError("INTERNAL", "Internal error encountered."), query)


def _resolve(method: str, path: str) -> Match | StatusError:
    try:
        return resolve(method, path)
    except StatusError as err:
        return err


async def handle_api(request: web.Request) -> web.StreamResponse:
    """Serve one API request."""
    runtime = request.app[RUNTIME]
    entry = _entry(request, runtime)
    match = _resolve(request.method, request.path)
    entry["rpc"] = None if isinstance(match, StatusError) else match.route.rpc
    try:
        raw = await read_body(request, runtime.body_limits)
    except StatusError as err:  # too large or too slow: answer and close the connection
        runtime.log_request(entry)
        response = _error(err, request.query)
        response.force_close()
        return _finish(request, entry, response)
    entry["body"] = log_text(raw, runtime.body_limits.log_bytes)
    with runtime.lock:
        decision = runtime.faults.decide(entry["rpc"], request.method, request.path)
    runtime.log_request(entry)
    if decision.delay > 0:
        await asyncio.sleep(decision.delay)
    if decision.outcome == "drop":
        _drop(request, entry, "dropped")
    response = _serve(request, runtime, raw, match, decision.error())
    if decision.outcome == "drop_after":  # handled (state changed), but the answer is lost
        entry["handled_status"] = response.status  # what the client never saw (200: committed)
        _drop(request, entry, "dropped_after")
    return _finish(request, entry, response)
