"""The Vertex AI route table (``v1`` and ``v1beta1``, paths under ``projects/*/locations/*``).

Tuning jobs (create, get, list, cancel), inference on endpoints and publisher models, and what a
teardown needs: get and delete Models and Endpoints, undeploy, and get the operations those return.
Any other path gets the front end's ``404 NOT_FOUND "Method not found."``.
"""

from __future__ import annotations

from tuning_api_emulator.errors import method_not_found
from tuning_api_emulator.routes import Match, Route, _route

VERSIONS = frozenset({"v1", "v1beta1"})
_ID = r"([^/:]+)"
_PARENT = f"projects/{_ID}/locations/{_ID}"


def _vertex(rpc: str, method: str, pattern: str, handler: str, *query: str) -> Route:
    route = _route(rpc, method, f"{_PARENT}/{pattern}", VERSIONS, handler, *query)
    return Route(
        route.rpc, route.method, route.pattern, route.versions, route.handler, route.query, api="vertex"
    )


ROUTES: tuple[Route, ...] = (
    _vertex("CreateTuningJob", "POST", "tuningJobs", "create_tuning_job"),
    _vertex("ListTuningJobs", "GET", "tuningJobs", "list_tuning_jobs", "filter", "pageSize", "pageToken"),
    _vertex("GetTuningJob", "GET", f"tuningJobs/{_ID}", "get_tuning_job"),
    _vertex("CancelTuningJob", "POST", f"tuningJobs/{_ID}:cancel", "cancel_tuning_job"),
    _vertex("GenerateContent", "POST", f"endpoints/{_ID}:generateContent", "generate_content"),
    _vertex(
        "StreamGenerateContent", "POST", f"endpoints/{_ID}:streamGenerateContent", "stream_generate_content"
    ),
    _vertex(
        "GenerateContent",
        "POST",
        f"publishers/google/models/{_ID}:generateContent",
        "generate_content_publisher",
    ),
    _vertex("GetEndpoint", "GET", f"endpoints/{_ID}", "get_endpoint"),
    _vertex("DeleteEndpoint", "DELETE", f"endpoints/{_ID}", "delete_endpoint"),
    _vertex("UndeployModel", "POST", f"endpoints/{_ID}:undeployModel", "undeploy_model"),
    _vertex("GetModel", "GET", f"models/{_ID}", "get_model"),
    _vertex("DeleteModel", "DELETE", f"models/{_ID}", "delete_model"),
    _vertex("GetOperation", "GET", f"operations/{_ID}", "get_operation"),
    _vertex("GetOperation", "GET", f"(endpoints|models)/{_ID}/operations/{_ID}", "get_operation"),
)


def is_vertex_path(path: str) -> bool:
    """Whether ``path`` (``/v1beta1/projects/...``) belongs to the Vertex AI surface."""
    _, version, rest = path.split("/", 2) if path.count("/") >= 2 else ("", "", "")
    return version in VERSIONS and rest.startswith("projects/")


def resolve(method: str, path: str) -> Match:
    """Find the Vertex route for ``method`` and ``path``.

    :raises StatusError: 404 "Method not found." for anything the service does not serve.
    """
    _, version, tail = path.split("/", 2)
    for route in ROUTES:
        if route.method != method:
            continue
        found = route.pattern.match(tail)
        if found:
            return Match(route, version, found.groups())
    raise method_not_found()
