"""Contract: every request the hook sends is on a route of routes.json for its API version, and its JSON
body (and query string) parses strictly into Google's official message type for that version."""

from __future__ import annotations

import importlib
import json
import pathlib
import re
import secrets
from typing import Any

import pytest
from google.protobuf import json_format

from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
from tests.unit.hooks.glapi_loopback import LoopbackServer, Recorded, Reply

ROUTES_FILE = pathlib.Path(__file__).resolve().parents[3] / "shared" / "api" / "routes.json"
ROUTES = json.loads(ROUTES_FILE.read_text())["routes"]
LIST_KEYS = {
    "tunedModels": "tunedModels",
    "models": "models",
    "permissions": "permissions",
    "operations": "operations",
}


def _template_regex(path: str) -> re.Pattern[str]:
    """``/v1beta/{name=tunedModels/*}:x`` -> a regex; ``*`` is one segment, ``**`` any number."""
    out, pos = "", 0
    for match in re.finditer(r"\{([^}=]+)(?:=([^}]*))?\}", path):
        out += re.escape(path[pos : match.start()])
        pattern = match.group(2) or "*"
        pieces = []
        for segment in pattern.split("/"):
            pieces.append({"*": "[^/:]+", "**": "[^:]+"}.get(segment, re.escape(segment)))
        out += "/".join(pieces)
        pos = match.end()
    out += re.escape(path[pos:])
    return re.compile(out)


COMPILED = [(route, _template_regex(route["path"])) for route in ROUTES]


def matching_route(request: Recorded) -> dict[str, Any]:
    version = request.path.split("/")[1]
    found = [
        route
        for route, regex in COMPILED
        if route["version"] == version and route["verb"] == request.method and regex.fullmatch(request.path)
    ]
    assert found, f"{request.method} {request.path} is on no route of routes.json"
    rpcs = {route["rpc"] for route in found}
    assert len(rpcs) == 1, f"{request.method} {request.path} is ambiguous: {rpcs}"
    return found[0]


def message_type(version: str, name: str) -> Any:
    if name.endswith("OperationRequest") or name == "ListOperationsRequest":
        return getattr(importlib.import_module("google.longrunning.operations_pb2"), name)
    module = importlib.import_module(f"google.ai.generativelanguage_{version}")
    return getattr(module, name)


def strict_parse(payload: Any, msg_type: Any) -> Any:
    """Parse JSON strictly (unknown fields are an error) into a proto-plus or raw protobuf type."""
    message = msg_type.pb(msg_type()) if hasattr(msg_type, "pb") else msg_type()
    return json_format.Parse(json.dumps(payload), message, ignore_unknown_fields=False)


def check_request(request: Recorded) -> dict[str, Any]:
    route = matching_route(request)
    version = route["version"]
    request_type = message_type(version, route["request"])
    body_name = route["body"]
    if body_name is None:
        assert request.body == b"", f"{route['path']} takes no body"
    else:
        body_type = {"*": request_type, "tuned_model": None, "permission": None}[body_name]
        if body_type is None:
            body_type = message_type(
                version, {"tuned_model": "TunedModel", "permission": "Permission"}[body_name]
            )
        strict_parse(request.json, body_type)
    if request.query:
        assert all(len(values) == 1 for values in request.query.values())
        strict_parse({key: values[0] for key, values in request.query.items()}, request_type)
    return route


def _respond(request: Recorded) -> Reply:
    """Plausible answers; list routes answer two pages so pageToken is exercised."""
    last = request.path.rsplit("/", 1)[-1]
    if request.method == "GET" and last in LIST_KEYS:
        item = {"name": f"{last}/item-1"}
        if "pageToken" in request.query:
            return Reply(200, {LIST_KEYS[last]: [item]})
        return Reply(200, {LIST_KEYS[last]: [item], "nextPageToken": "page-2"})
    return Reply(200, {})


GEMINI_TUNED_MODEL = {
    "displayName": "number generator model",
    "description": "counts upwards",
    "baseModel": "models/gemini-1.5-flash-001-tuning",
    "temperature": 0.7,
    "topP": 0.95,
    "topK": 40,
    "tuningTask": {
        "hyperparameters": {"batchSize": 2, "learningRate": 0.001, "epochCount": 5},
        "trainingData": {
            "examples": {"examples": [{"textInput": "1", "output": "2"}, {"textInput": "3", "output": "4"}]}
        },
    },
}
PALM_TUNED_MODEL = {  # snake_case, as the v1beta3 tutorial sends it
    "display_name": "number generator",
    "base_model": "models/text-bison-001",
    "tuning_task": {
        "hyperparameters": {"batch_size": 2, "learning_rate": 0.001, "epoch_count": 3},
        "training_data": {"examples": {"examples": [{"text_input": "1", "output": "2"}]}},
    },
}
PERMISSION = {"granteeType": "USER", "emailAddress": "reader@example.com", "role": "READER"}
GENERATION_CONFIG = {
    "temperature": 0.2,
    "topP": 0.9,
    "topK": 20,
    "candidateCount": 1,
    "maxOutputTokens": 64,
    "stopSequences": ["END"],
}
SAFETY_GEMINI = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
SAFETY_PALM = [{"category": "HARM_CATEGORY_TOXICITY", "threshold": "BLOCK_MEDIUM_AND_ABOVE"}]


def exercise_every_method(hook: GenerativeLanguageHook) -> None:
    for version, tuned in (("v1beta", GEMINI_TUNED_MODEL), ("v1beta3", PALM_TUNED_MODEL)):
        hook.create_tuned_model(tuned, "num-gen", api_version=version)
        hook.create_tuned_model(tuned, api_version=version)
        hook.get_tuned_model("num-gen", api_version=version)
        list(hook.list_tuned_models(page_size=5, api_version=version))
        hook.update_tuned_model(
            "tunedModels/num-gen",
            {"description": "new", "temperature": 0.5},
            ["description", "temperature"],
            api_version=version,
        )
        hook.delete_tuned_model("num-gen", api_version=version)
        hook.create_permission("num-gen", PERMISSION, api_version=version)
        list(hook.list_permissions("num-gen", page_size=10, api_version=version))
        hook.delete_permission("tunedModels/num-gen/permissions/perm-1", api_version=version)
        hook.transfer_ownership("num-gen", "owner@example.com", api_version=version)
    list(hook.list_tuned_models(filter="owner:me", api_version="v1beta"))
    hook.update_tuned_model("num-gen", {"displayName": "renamed"}, api_version="v1beta")  # no mask
    for version in ("v1", "v1beta", "v1beta3"):
        hook.get_operation("tunedModels/num-gen/operations/op-1", api_version=version)
        list(hook.list_operations("num-gen", page_size=2, filter="done=true", api_version=version))
        list(hook.list_models(page_size=1, api_version=version))
        hook.get_model("gemini-1.5-flash-001", api_version=version)
    hook.cancel_operation("tunedModels/num-gen/operations/op-1")
    for version in ("v1", "v1beta"):
        for model in ("models/gemini-1.5-flash-001", "tunedModels/num-gen"):
            hook.generate_content(
                model,
                "What comes after 5?",
                generation_config=GENERATION_CONFIG,
                safety_settings=SAFETY_GEMINI,
                system_instruction="Answer with one number." if version == "v1beta" else None,
                api_version=version,
            )
            hook.generate_content(
                model,
                [{"role": "user", "parts": [{"text": "1"}]}, {"role": "model", "parts": [{"text": "2"}]}],
                api_version=version,
            )
    for version in ("v1beta3", "v1beta"):
        for model in ("models/text-bison-001", "tunedModels/num-gen"):
            hook.generate_text(
                model,
                "1, 2, 3,",
                temperature=0.5,
                candidate_count=2,
                max_output_tokens=16,
                top_p=0.9,
                top_k=40,
                stop_sequences=["\n"],
                safety_settings=SAFETY_PALM,
                api_version=version,
            )
    hook.test_connection()


EXPECTED_RPCS = (
    {
        (version, rpc)
        for version in ("v1beta", "v1beta3")
        for rpc in (
            "CreateTunedModel",
            "GetTunedModel",
            "ListTunedModels",
            "UpdateTunedModel",
            "DeleteTunedModel",
            "CreatePermission",
            "ListPermissions",
            "DeletePermission",
            "TransferOwnership",
            "GenerateText",
        )
    }
    | {
        (version, rpc)
        for version in ("v1", "v1beta", "v1beta3")
        for rpc in ("GetOperation", "ListOperations", "ListModels", "GetModel")
    }
    | {("v1", "CancelOperation"), ("v1", "GenerateContent"), ("v1beta", "GenerateContent")}
)


@pytest.fixture
def capture_server():
    with LoopbackServer(_respond) as server:
        yield server


@pytest.fixture
def contract_hook(capture_server, monkeypatch):
    conn = {"conn_type": "generativelanguage", "host": capture_server.url, "password": secrets.token_hex(16)}
    monkeypatch.setenv("AIRFLOW_CONN_GLAPI_CONTRACT", json.dumps(conn))
    hook = GenerativeLanguageHook("glapi_contract")
    yield hook
    hook.close()


def test_every_request_is_a_documented_route_with_a_strictly_valid_body(contract_hook, capture_server):
    exercise_every_method(contract_hook)
    requests = capture_server.requests
    assert len(requests) > 50
    seen = set()
    for request in requests:
        route = check_request(request)
        seen.add((route["version"], route["rpc"]))
    assert seen >= EXPECTED_RPCS, f"not exercised: {sorted(EXPECTED_RPCS - seen)}"
    # list calls followed their second page
    assert any("pageToken" in r.query for r in requests)


def test_strict_parsing_rejects_what_the_api_would_reject(capture_server):
    """The checks above can fail: an unknown field, a wrong route, a body on a bodiless route."""

    def recorded(method: str, path: str, body: Any = None, query: dict | None = None) -> Recorded:
        raw = json.dumps(body).encode() if body is not None else b""
        return Recorded(method, path, path, query or {}, {}, raw, 0)

    with pytest.raises(json_format.ParseError, match="tunedModelId"):
        check_request(recorded("POST", "/v1beta/tunedModels", {**GEMINI_TUNED_MODEL, "tunedModelId": "x"}))
    with pytest.raises(json_format.ParseError, match="epochs"):
        check_request(
            recorded("POST", "/v1beta/tunedModels", {"tuningTask": {"hyperparameters": {"epochs": 5}}})
        )
    with pytest.raises(json_format.ParseError, match="readerProjectNumbers"):  # v1beta only
        check_request(recorded("POST", "/v1beta3/tunedModels", {"readerProjectNumbers": ["1"]}))
    with pytest.raises(json_format.ParseError, match="systemInstruction"):  # not in v1 of this package
        check_request(
            recorded(
                "POST", "/v1/models/m:generateContent", {"contents": [], "systemInstruction": {"parts": []}}
            )
        )
    with pytest.raises(json_format.ParseError, match="color"):
        check_request(recorded("GET", "/v1beta/tunedModels", query={"color": ["red"]}))
    with pytest.raises(AssertionError, match="is on no route"):
        check_request(recorded("GET", "/v1/tunedModels/m1"))  # v1 has no tuned-model CRUD
    with pytest.raises(AssertionError, match="is on no route"):
        check_request(recorded("POST", "/v1beta/tunedModels/m/operations/o:cancel", {}))
    with pytest.raises(AssertionError, match="takes no body"):
        check_request(recorded("GET", "/v1beta/models/m", {"name": "models/m"}))
