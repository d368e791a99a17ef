"""The route table: every tuning, operation, permission, model and generation route of
``v1beta``, ``v1beta3`` and ``v1`` (as ``api/routes.json`` lists them), with its rpc name.

A path the API does not serve in a version, or a verb a path does not take, gets Google's
``404 NOT_FOUND "Method not found."``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuning_api_emulator.errors import method_not_found

VERSIONS = ("v1", "v1beta", "v1beta3")
_ID = r"([^/:]+)"
BETA = frozenset({"v1beta", "v1beta3"})
GEMINI = frozenset({"v1beta", "v1"})
PALM = frozenset({"v1beta", "v1beta3"})
ALL = frozenset(VERSIONS)
V1 = frozenset({"v1"})

_PAGING = ("pageSize", "pageToken")


@dataclass(frozen=True)
class Route:
    """One REST binding.

    :param rpc: the rpc name (``CreateTunedModel``, ``GetOperation``, ...), used by fault rules.
    :param method: the HTTP verb.
    :param pattern: the path after ``/{version}/``.
    :param versions: the API versions that serve it.
    :param handler: the handler name in :mod:`.app`.
    :param query: the request's query parameters (camelCase; snake_case is accepted too).
    :param api: which emulated service serves it: ``gemini`` or ``vertex``.
    """

    rpc: str
    method: str
    pattern: re.Pattern[str]
    versions: frozenset[str]
    handler: str
    query: tuple[str, ...] = ()
    api: str = "gemini"  # "gemini" (Generative Language) or "vertex" (Vertex AI)


def _route(rpc: str, method: str, pattern: str, versions: frozenset[str], handler: str, *query: str) -> Route:
    return Route(rpc, method, re.compile(f"^{pattern}$"), versions, handler, query)


ROUTES: tuple[Route, ...] = (
    _route("CreateTunedModel", "POST", "tunedModels", BETA, "create_tuned_model", "tunedModelId"),
    _route("ListTunedModels", "GET", "tunedModels", BETA, "list_tuned_models", *_PAGING, "filter"),
    _route("GetTunedModel", "GET", f"tunedModels/{_ID}", BETA, "get_tuned_model"),
    _route("UpdateTunedModel", "PATCH", f"tunedModels/{_ID}", BETA, "update_tuned_model", "updateMask"),
    _route("DeleteTunedModel", "DELETE", f"tunedModels/{_ID}", BETA, "delete_tuned_model"),
    _route(
        "GenerateContent", "POST", f"(tunedModels|models)/{_ID}:generateContent", GEMINI, "generate_content"
    ),
    _route(
        "StreamGenerateContent",
        "POST",
        f"(tunedModels|models)/{_ID}:streamGenerateContent",
        GEMINI,
        "stream_generate_content",
    ),
    _route("GenerateText", "POST", f"(tunedModels|models)/{_ID}:generateText", PALM, "generate_text"),
    _route("CountTokens", "POST", f"models/{_ID}:countTokens", GEMINI, "count_tokens"),
    _route("CountTextTokens", "POST", f"models/{_ID}:countTextTokens", PALM, "count_text_tokens"),
    _route("TransferOwnership", "POST", f"tunedModels/{_ID}:transferOwnership", BETA, "transfer_ownership"),
    _route("CreatePermission", "POST", f"tunedModels/{_ID}/permissions", BETA, "create_permission"),
    _route("ListPermissions", "GET", f"tunedModels/{_ID}/permissions", BETA, "list_permissions", *_PAGING),
    _route("GetPermission", "GET", f"tunedModels/{_ID}/permissions/{_ID}", BETA, "get_permission"),
    _route(
        "UpdatePermission",
        "PATCH",
        f"tunedModels/{_ID}/permissions/{_ID}",
        BETA,
        "update_permission",
        "updateMask",
    ),
    _route("DeletePermission", "DELETE", f"tunedModels/{_ID}/permissions/{_ID}", BETA, "delete_permission"),
    _route("GetOperation", "GET", f"tunedModels/{_ID}/operations/{_ID}", ALL, "get_operation"),
    _route(
        "ListOperations",
        "GET",
        f"tunedModels/{_ID}/operations",
        ALL,
        "list_model_operations",
        *_PAGING,
        "filter",
        "returnPartialSuccess",
    ),
    _route("CancelOperation", "POST", f"tunedModels/{_ID}/operations/{_ID}:cancel", V1, "cancel_operation"),
    _route(
        "ListOperations",
        "GET",
        "operations",
        V1,
        "list_operations",
        *_PAGING,
        "filter",
        "returnPartialSuccess",
    ),
    _route("DeleteOperation", "DELETE", "operations/(.+)", V1, "delete_operation"),
    _route("ListModels", "GET", "models", ALL, "list_models", *_PAGING),
    _route("GetModel", "GET", f"models/{_ID}", ALL, "get_model"),
)


@dataclass(frozen=True)
class Match:
    """A resolved request: the route, the API version and the path's captured groups."""

    route: Route
    version: str
    groups: tuple[str, ...]


def resolve(method: str, path: str) -> Match:
    """Find the route for ``method`` and ``path`` (``/v1beta/tunedModels/x``).

    :raises StatusError: 404 "Method not found." for anything the API does not serve.
    """
    _, _, rest = path.partition("/")
    version, _, tail = rest.partition("/")
    if version not in VERSIONS:
        raise method_not_found()
    for route in ROUTES:
        if route.method != method or version not in route.versions:
            continue
        found = route.pattern.match(tail)
        if found:
            return Match(route, version, found.groups())
    raise method_not_found()


def rpc_of(method: str, path: str) -> str | None:
    """The rpc name of a request, or ``None`` when no route serves it."""
    try:
        return resolve(method, path).route.rpc
    except Exception:
        return None
