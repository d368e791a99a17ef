"""The aiohttp application: one catch-all API handler plus the ``/_emulator/`` control paths.

The catch-all serves the Generative Language routes, the Vertex AI routes (``/v1`` and
``/v1beta1`` under ``projects/``, :mod:`.vertex_routes`), the Cloud Storage JSON API
(:mod:`.storage`) and the OAuth token endpoint ``POST /token`` (:mod:`.oauth`, its body never
logged); all of them go through the same request log and fault injection.

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
import time
from typing import Any, NoReturn
from urllib.parse import unquote_plus

from aiohttp import web
from multidict import MultiMapping

from tuning_api_emulator import auth, control, oauth, storage, vertex_routes
from tuning_api_emulator.bodies import log_text, read_body
from tuning_api_emulator.errors import METHOD_NOT_FOUND, StatusError, bad_request
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
from tuning_api_emulator.vertex_schema import ENUM_NUMBERS as VERTEX_ENUM_NUMBERS

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


def _shape(
    body: Any, selection: Selection | None, int_enums: bool, tables: dict[str, dict[str, int]] | None
) -> Any:
    """``body`` narrowed to ``selection`` and with enums as numbers when asked."""
    body = select(body, selection) if selection is not None else body
    return enums_to_int(body, tables) if int_enums else body


def _render(
    result: Any,
    query: MultiMapping[str],
    selection: Selection | None,
    tables: dict[str, dict[str, int]] | None = None,
) -> web.Response:
    int_enums = wants_int_enums(_alt_values(query))
    if isinstance(result, Stream):
        chunks = [_shape(chunk, selection, int_enums, tables) for chunk in result.chunks]
        if any(alt.split(";")[0].strip() == "sse" for alt in _alt_values(query)):
            text = "".join(f"data: {dumps(chunk, pretty=False)}\r\n\r\n" for chunk in chunks)
            return web.Response(
                text=text, content_type="text/event-stream", charset="utf-8", headers=_HEADERS
            )
        return _json_response(chunks, query)
    return _json_response(_shape(result, selection, int_enums, tables), query)


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


def _authenticate(request: web.Request, runtime: Runtime, match: Match) -> None:
    """Each service's credential rule (issued tokens count as configured ones)."""
    tokens = runtime.accepted_tokens()
    if match.route.api == "vertex":
        auth.check_bearer(request.headers, request.query, tokens=tokens)
        return
    api_keys = None if runtime.open_access else runtime.api_keys or frozenset()
    auth.check(request.headers, request.query, api_keys=api_keys, tokens=tokens)


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
        _authenticate(request, runtime, match)
        params = _params(match, query)
        selection = _selection(query)  # a bad expression is refused before anything changes
        body = loads_body(raw) if method in ("POST", "PATCH", "PUT") else {}
        vertex = match.route.api == "vertex"
        service = runtime.vertex if vertex else runtime.service
        with runtime.lock:
            result = service.dispatch(match, params, body, runtime.clock())
        return _render(result, query, selection, VERTEX_ENUM_NUMBERS if vertex else None)
    except StatusError as err:
        return _error(err, query)
    except Exception:  # a bug in the emulator: answer like the service would, and say so in the log
        log.exception("emulator error serving %s %s", method, request.path)
        return _error(StatusError("INTERNAL", "Internal error encountered."), query)


def _resolve(method: str, path: str) -> Match | StatusError:
    try:
        if vertex_routes.is_vertex_path(path):
            return vertex_routes.resolve(method, path)
        return resolve(method, path)
    except StatusError as err:
        return err


def _serve_token(
    request: web.Request, runtime: Runtime, raw: bytes, fault: StatusError | None
) -> web.Response:
    """``POST /token`` (see :mod:`.oauth`)."""
    if fault is not None:
        return _error(fault, request.query)
    if request.method != "POST":
        return _error(StatusError("NOT_FOUND", METHOD_NOT_FOUND), request.query)
    try:
        grant = oauth.grant(
            raw,
            request.headers.get("Content-Type", ""),
            time.time(),  # a JWT's iat/exp come from the caller's wall clock, not the emulator's
            refresh_tokens=None if runtime.open_access else runtime.refresh_tokens or frozenset(),
            service_accounts=None if runtime.open_access else runtime.service_accounts or frozenset(),
        )
    except oauth.OAuthError as err:
        return web.json_response(err.body(), status=err.http_status)
    return web.json_response(oauth.answer(runtime.issue_token(), grant.scope))


async def handle_api(request: web.Request) -> web.StreamResponse:
    """Serve one API request: a Gemini or Vertex AI route, Cloud Storage, or ``POST /token``."""
    runtime = request.app[RUNTIME]
    entry = _entry(request, runtime)
    kind = (
        "token" if request.path == "/token" else "storage" if storage.is_storage_path(request.path) else "api"
    )
    match: Match | StatusError = StatusError("NOT_FOUND", METHOD_NOT_FOUND)
    if kind == "token":
        entry["rpc"] = "Token"
    elif kind == "storage":
        entry["rpc"] = storage.rpc_of(request.method, request.raw_path)
    else:
        match = _resolve(request.method, request.path)
        entry["rpc"] = None if isinstance(match, StatusError) else match.route.rpc
    try:
        raw = await read_body(request, runtime.body_limits)
    except StatusError as err:  # too large or too slow: answer and close the connection
        runtime.log_request(entry)
        response = _error(err, request.query)
        response.force_close()
        return _finish(request, entry, response)
    entry["body"] = REDACTED if kind == "token" else log_text(raw, runtime.body_limits.log_bytes)
    with runtime.lock:
        decision = runtime.faults.decide(entry["rpc"], request.method, request.path)
    runtime.log_request(entry)
    if decision.delay > 0:
        await asyncio.sleep(decision.delay)
    if decision.outcome == "drop":
        _drop(request, entry, "dropped")
    if kind == "token":
        response = _serve_token(request, runtime, raw, decision.error())
    elif kind == "storage":
        response = runtime.storage.serve(request, raw, decision.error())
    else:
        response = _serve(request, runtime, raw, match, decision.error())
    if decision.outcome == "drop_after":  # handled (state changed), but the answer is lost
        entry["handled_status"] = response.status  # what the client never saw (200: committed)
        _drop(request, entry, "dropped_after")
    return _finish(request, entry, response)
