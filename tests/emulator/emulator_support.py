"""Helpers for the emulator tests: a fake clock, an HTTP client that strictly parses every response
into Google's official message types (and collects them), and extraction of the seeds' request bodies."""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tuning_api_emulator.errors import CODES
from tuning_api_emulator.routes import resolve

SHARED = pathlib.Path(__file__).resolve().parents[2].parent / "shared"
SEEDS = SHARED / "seeds"
GEMINI_SEED = SEEDS / "gemini-tuning-rest-quickstart.zh-TW.txt"
PALM_SEED = SEEDS / "palm-tuning-rest-quickstart.ko.txt"
ROUTES_JSON = SHARED / "api" / "routes.json"

TOKEN = "test-access-token"
START = 1_710_000_000.0  # 2024-03-09T16:00:00Z


class FakeClock:
    """A clock the tests move by hand: progress without sleeping, no timing in assertions."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- strict parsing of every response -------------------------------------------------------------

_GL_TYPES = {
    "GetTunedModel": "TunedModel",
    "UpdateTunedModel": "TunedModel",
    "ListTunedModels": "ListTunedModelsResponse",
    "GenerateContent": "GenerateContentResponse",
    "StreamGenerateContent": "GenerateContentResponse",
    "GenerateText": "GenerateTextResponse",
    "CountTokens": "CountTokensResponse",
    "CountTextTokens": "CountTextTokensResponse",
    "TransferOwnership": "TransferOwnershipResponse",
    "CreatePermission": "Permission",
    "GetPermission": "Permission",
    "UpdatePermission": "Permission",
    "ListPermissions": "ListPermissionsResponse",
    "ListModels": "ListModelsResponse",
    "GetModel": "Model",
}
_PB_TYPES: dict[str, Any] = {
    "CreateTunedModel": operations_pb2.Operation,
    "GetOperation": operations_pb2.Operation,
    "ListOperations": operations_pb2.ListOperationsResponse,
    "CancelOperation": empty_pb2.Empty,
    "DeleteOperation": empty_pb2.Empty,
    "DeleteTunedModel": empty_pb2.Empty,
    "DeletePermission": empty_pb2.Empty,
}
# proto3 `optional` fields, printed even when 0 (everything else must leave zero values out).
assert error_details_pb2.ErrorInfo  # registers the google.rpc detail types for Any parsing
_OPTIONAL_ZERO_OK = {"index", "temperature", "topP", "topK", "candidateCount", "epochCount", "batchSize"}


def message_class(rpc: str, version: str) -> Any:
    """The official protobuf class of ``rpc``'s response in ``version``."""
    # Importing all three registers every generativelanguage type, so Any fields resolve.
    for v in ("v1", "v1beta", "v1beta3"):
        importlib.import_module(f"google.ai.generativelanguage_{v}")
    if rpc in _PB_TYPES:
        return _PB_TYPES[rpc]
    module = importlib.import_module(f"google.ai.generativelanguage_{version}")
    return getattr(module, _GL_TYPES[rpc]).pb()


def _check_no_defaults(value: Any, where: str = "$") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type":
                continue
            path = f"{where}.{key}"
            assert item is not False, f"default false printed at {path}"
            assert item != "", f"default empty string printed at {path}"
            assert item != [], f"default empty list printed at {path}"
            if isinstance(item, int | float) and not isinstance(item, bool) and item == 0:
                assert key in _OPTIONAL_ZERO_OK, f"default 0 printed at {path}"
            if isinstance(item, str) and key.endswith("Time"):
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", item), f"bad timestamp {path}"
            if key == "readerProjectNumbers":
                assert all(isinstance(n, str) for n in item), f"int64 not as strings at {path}"
            _check_no_defaults(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_no_defaults(item, f"{where}[{index}]")


def check_error_body(body: Any, http_status: int) -> None:
    """An error body: ``{"error": {code == HTTP status, message, status (a google.rpc.Code), details}}``."""
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "status", "details"}, error
    assert error["code"] == http_status
    assert isinstance(error["message"], str)
    assert error["message"]
    assert CODES[error["status"]][1] == http_status, error
    code_pb2.Code.Value(error["status"])
    status = status_pb2.Status()
    json_format.ParseDict({"code": 0, "message": "", "details": error.get("details", [])}, status)


@dataclass
class Collected:
    """One response the tests received."""

    method: str
    path: str
    rpc: str | None
    version: str | None
    status: int
    text: str
    content_type: str


COLLECTED: list[Collected] = []


def strict_parse(item: Collected) -> None:
    """Parse ``item`` strictly into its official message type (or check its error shape)."""
    if item.status >= 400:
        check_error_body(json.loads(item.text), item.status)
        return
    assert item.rpc is not None
    assert item.version is not None
    cls = message_class(item.rpc, item.version)
    if item.rpc == "StreamGenerateContent":
        if item.content_type.startswith("text/event-stream"):
            chunks = [
                json.loads(line[6:]) for line in item.text.split("\r\n\r\n") if line.startswith("data: ")
            ]
        else:
            chunks = json.loads(item.text)
        assert chunks
        for chunk in chunks:
            json_format.ParseDict(chunk, cls(), ignore_unknown_fields=False)
            _check_no_defaults(chunk)
        return
    body = json.loads(item.text)
    json_format.Parse(item.text, cls(), ignore_unknown_fields=False)
    _check_no_defaults(body)


def record(method: str, url: str, response: requests.Response) -> Collected:
    """Collect and strictly check one API response (control paths are skipped)."""
    path = urlsplit(url).path
    try:
        match = resolve(method, path)
        rpc, version = match.route.rpc, match.version
    except Exception:
        rpc, version = None, None
    item = Collected(
        method,
        path,
        rpc,
        version,
        response.status_code,
        response.text,
        response.headers.get("Content-Type", ""),
    )
    strict_parse(item)
    COLLECTED.append(item)
    return item


class Api:
    """A ``requests`` client for the emulator that strictly checks and collects every response.

    :param base_url: the emulator's URL.
    :param headers: default headers (a bearer token unless given).
    """

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.headers = headers if headers is not None else {"Authorization": f"Bearer {TOKEN}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        expect: int | None = 200,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        url = f"{self.base_url}{path}"
        response = self.session.request(
            method, url, headers={**self.headers, **(headers or {})}, timeout=30, **kw
        )
        if not path.startswith("/_emulator"):
            record(method, url, response)
        if expect is not None:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, **kw).json()

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("PATCH", path, json=body, **kw).json()

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw).json()

    def error(self, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
        """Send a request that must fail with ``status``; returns ``error``."""
        response = self.request(method, path, expect=status, **kw)
        return response.json()["error"]


# --- request bodies -------------------------------------------------------------------------------


def examples(count: int) -> list[dict[str, str]]:
    """``count`` number-generator examples in camelCase."""
    return [{"textInput": str(i), "output": str(i + 1)} for i in range(count)]


def tuned_model_body(
    count: int = 15, *, base_model: str = "models/gemini-1.0-pro-001", display_name: str = "", **hyper: Any
) -> dict[str, Any]:
    """A camelCase create body."""
    body: dict[str, Any] = {
        "baseModel": base_model,
        "tuningTask": {"trainingData": {"examples": {"examples": examples(count)}}},
    }
    if display_name:
        body["displayName"] = display_name
    if hyper:
        body["tuningTask"]["hyperparameters"] = hyper
    return body


def curl_bodies(seed: pathlib.Path) -> list[str]:
    """The exact ``-d '...'`` bodies of a seed's curl commands, in order."""
    return re.findall(r"-d '(.*?)'", seed.read_text(encoding="utf-8"), flags=re.DOTALL)


def _balanced(text: str, start: int) -> str:
    depth = 0
    for index in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[text.index("{", start) : index + 1]
    raise ValueError("unbalanced braces")


def python_bodies(seed: pathlib.Path) -> list[dict[str, Any]]:
    """The ``json=`` bodies of a seed's ``requests.post`` calls, in order (Python literals)."""
    text = seed.read_text(encoding="utf-8")
    return [
        ast.literal_eval(_balanced(text, m.end()))
        for m in re.finditer(r"requests\.post\(.*?json=", text, re.DOTALL)
    ]
