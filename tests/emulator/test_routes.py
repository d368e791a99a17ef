"""Every route of api/routes.json is served, in exactly the versions that list it; anything else is
Google's 404 "Method not found." with a Status body."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.emulator.emulator_support import ROUTES_JSON, Api, FakeClock, tuned_model_body
from tuning_api_emulator.routes import ROUTES

CONTRACT = json.loads(ROUTES_JSON.read_text())["routes"]


def _shape(path: str) -> tuple[str, str]:
    """``/v1beta3/{name=**/operations/*}`` -> ``("v1beta3", "{tunedModels/*/operations/*}")``."""
    version, tail = path.lstrip("/").split("/", 1)
    tail = re.sub(r"\{[a-z_.]+=([^}]*)\}", r"{\1}", tail)
    tail = tail.replace("{**/operations/*}", "{tunedModels/*/operations/*}").replace(
        "{**}/operations", "{tunedModels/*}/operations"
    )
    return version, tail


CONTRACT_KEYS = {(route["verb"], *_shape(route["path"])) for route in CONTRACT}
SHAPES = {(verb, tail) for verb, _, tail in CONTRACT_KEYS}
ABSENT = sorted(
    (version, verb, tail)
    for verb, tail in SHAPES
    for version in ("v1", "v1beta", "v1beta3")
    if (verb, version, tail) not in CONTRACT_KEYS
)


@pytest.fixture
def world(api: Api, clock: FakeClock) -> dict[str, str]:
    gemini = api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "gemini"})
    api.post(
        "/v1beta3/tunedModels",
        tuned_model_body(base_model="models/text-bison-001"),
        params={"tunedModelId": "palm"},
    )
    clock.advance(1000)
    reader = api.post("/v1beta/tunedModels/gemini/permissions", {"granteeType": "EVERYONE", "role": "READER"})
    return {"op": gemini["name"], "permission": reader["name"]}


def _concrete(tail: str, rpc: str, world: dict[str, str], version: str) -> str:
    palm = rpc in ("GenerateText", "CountTextTokens")
    replacements = {
        "{models/*}": "models/text-bison-001"
        if palm or version == "v1beta3"
        else "models/gemini-1.0-pro-001",
        "{tunedModels/*/operations/*}": world["op"],
        "{tunedModels/*/permissions/*}": world["permission"],
        "{tunedModels/*}": "tunedModels/palm" if palm else "tunedModels/gemini",
        "{operations/**}": "operations/some-operation",
        "{operations}": "operations",
    }
    for pattern, value in replacements.items():
        tail = tail.replace(pattern, value)
    return f"/{version}/{tail}"


def _body(rpc: str, version: str = "v1beta") -> dict[str, Any] | None:
    contents = {"contents": [{"parts": [{"text": "1"}]}]}
    return {
        "CreateTunedModel": tuned_model_body(
            base_model="models/text-bison-001" if version == "v1beta3" else "models/gemini-1.0-pro-001"
        ),
        "UpdateTunedModel": {"description": "routes"},
        "GenerateContent": contents,
        "StreamGenerateContent": contents,
        "CountTokens": contents,
        "GenerateText": {"prompt": {"text": "1"}},
        "CountTextTokens": {"prompt": {"text": "1"}},
        "CreatePermission": {"granteeType": "USER", "emailAddress": "x@example.com", "role": "READER"},
        "UpdatePermission": {"role": "READER"},
        "TransferOwnership": {"emailAddress": "y@example.com"},
        "CancelOperation": {},
    }.get(rpc)


def test_route_table_matches_the_contract() -> None:
    ours = set()
    for route in ROUTES:
        for version in route.versions:
            ours.add((route.rpc, version, route.method))
    contract = {(r["rpc"], r["version"], r["verb"]) for r in CONTRACT}
    assert ours == contract


@pytest.mark.parametrize("route", CONTRACT, ids=[f"{r['verb']} {r['path']}" for r in CONTRACT])
def test_every_contract_route_is_served(api: Api, world: dict[str, str], route: dict[str, Any]) -> None:
    version, tail = _shape(route["path"])
    path = _concrete(tail, route["rpc"], world, version)
    params = (
        {"updateMask": "role" if route["rpc"] == "UpdatePermission" else "description"}
        if route["verb"] == "PATCH"
        else None
    )
    response = api.request(route["verb"], path, expect=None, json=_body(route["rpc"], version), params=params)
    assert "Method not found." not in response.text, (path, response.text)
    if route["rpc"] == "DeleteOperation":
        assert response.status_code == 404  # the emulator keeps no operations under operations/
    elif route["rpc"] == "CancelOperation":
        assert response.status_code == 400  # the job is already done
    else:
        assert response.status_code == 200, (path, response.text)


def test_some_routes_are_absent_from_some_versions() -> None:
    assert ("POST", "v1", "tunedModels") in {(verb, version, tail) for version, verb, tail in ABSENT}
    assert len(ABSENT) >= 20


@pytest.mark.parametrize(("version", "verb", "tail"), ABSENT)
def test_routes_absent_from_a_version_are_not_found(
    api: Api, world: dict[str, str], version: str, verb: str, tail: str
) -> None:
    path = _concrete(tail, "", world, version)
    error = api.error(verb, path, 404, json=_body("CreatePermission") if verb in ("POST", "PATCH") else None)
    assert (error["status"], error["message"]) == ("NOT_FOUND", "Method not found.")


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("PUT", "/v1beta/tunedModels/gemini"),
        ("POST", "/v1beta/tunedModels/gemini"),
        ("GET", "/v1beta/tunedModels/gemini:generateContent"),
        ("GET", "/v1beta2/models"),
        ("GET", "/v2/tunedModels"),
        ("GET", "/"),
        ("GET", "/v1beta/corpora"),
        ("POST", "/v1beta/tunedModels/gemini:explode"),
        ("GET", "/v1beta/tunedModels/gemini/operations/x/y"),
        ("GET", "/favicon.ico"),
    ],
)
def test_unknown_routes_and_verbs(api: Api, world: dict[str, str], verb: str, path: str) -> None:
    error = api.error(verb, path, 404)
    assert (error["code"], error["status"], error["message"]) == (404, "NOT_FOUND", "Method not found.")
