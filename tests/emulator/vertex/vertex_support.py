"""Helpers for the Vertex AI and Cloud Storage emulator tests.

* Credentials that refresh through the emulator's ``/token`` (Google's real refresh path).
* A ``requests`` client that checks every response as it arrives - success is exactly HTTP 200
  and matches the discovery document's schema (``aiplatform.v1/v1beta1.json``, ``storage.v1.json``
  from google-api-python-client: no unknown field, int64 as strings, enums in range), errors are
  AIP-193 envelopes - and collects it for the strict protobuf parse in
  ``test_zz_vertex_strict_parse.py``.
* JSONL datasets in the documented formats.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from google.oauth2.credentials import Credentials
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tuning_api_emulator.errors import CODES
from tuning_api_emulator.vertex_routes import is_vertex_path, resolve

PROJECT = "tuning-project"
LOCATION = "us-central1"
REFRESH_TOKEN = "refresh-token-for-tests"
CLIENT_ID = "client-id.apps.googleusercontent.com"
CLIENT_SECRET = "client-secret"
BUCKET = "tuning-data"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
assert error_details_pb2.ErrorInfo  # registers the google.rpc detail types for Any parsing


def credentials(url: str, refresh_token: str = REFRESH_TOKEN) -> Credentials:
    """Authorized-user credentials with no token yet: the first call refreshes at ``{url}/token``."""
    return Credentials(
        token=None,
        refresh_token=refresh_token,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_uri=f"{url}/token",
        scopes=[CLOUD_PLATFORM],
    )


def access_token(url: str) -> str:
    """A token issued by the emulator's ``/token`` (through google-auth's refresh)."""
    import google.auth.transport.requests

    creds = credentials(url)
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token
    return str(creds.token)


# --- datasets --------------------------------------------------------------------------------------


def sft_lines(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """Supervised examples: "question N" -> "answer N"."""
    return [
        {
            "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
            "contents": [
                {"role": "user", "parts": [{"text": f"question {i}"}]},
                {"role": "model", "parts": [{"text": f"answer {i}"}]},
            ],
        }
        for i in range(start, start + count)
    ]


def preference_lines(count: int) -> list[dict[str, Any]]:
    """Preference examples (one preferred, one dispreferred completion)."""
    return [
        {
            "system_instruction": {"parts": [{"text": "Be polite."}]},
            "contents": [{"role": "user", "parts": [{"text": f"prompt {i}"}]}],
            "completions": [
                {"score": 1, "completion": {"role": "model", "parts": [{"text": f"good {i}"}]}},
                {"score": 0, "completion": {"role": "model", "parts": [{"text": f"bad {i}"}]}},
            ],
        }
        for i in range(count)
    ]


def jsonl(lines: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(line) for line in lines) + "\n"


# --- discovery documents -----------------------------------------------------------------------------


def discovery(name: str) -> dict[str, Any]:
    """A discovery document shipped in google-api-python-client (``aiplatform.v1``, ``storage.v1``)."""
    documents = importlib.resources.files("googleapiclient") / "discovery_cache" / "documents"
    return json.loads((documents / f"{name}.json").read_text(encoding="utf-8"))


_DOCUMENTS: dict[str, dict[str, Any]] = {}


def _schemas(document: str) -> dict[str, Any]:
    if document not in _DOCUMENTS:
        _DOCUMENTS[document] = discovery(document)["schemas"]
    return _DOCUMENTS[document]


def check_schema(value: Any, schema: dict[str, Any], document: str, where: str = "$") -> None:
    """Check ``value`` against a discovery schema: no unknown field, right JSON types, int64 as
    strings, known enum values, RFC 3339 timestamps."""
    if "$ref" in schema:
        schema = _schemas(document)[schema["$ref"]]
    kind = schema.get("type")
    if kind == "any" or (kind is None and "properties" not in schema):
        return
    if kind == "object":
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        if "additionalProperties" in schema:
            for key, item in value.items():
                check_schema(item, schema["additionalProperties"], document, f"{where}.{key}")
            return
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key == "@type":
                continue
            assert key in properties, f"{where}: unknown field {key!r} (not in {schema.get('id')})"
            check_schema(item, properties[key], document, f"{where}.{key}")
        return
    if kind == "array":
        assert isinstance(value, list), f"{where}: expected an array"
        for index, item in enumerate(value):
            check_schema(item, schema["items"], document, f"{where}[{index}]")
        return
    if kind == "string":
        assert isinstance(value, str), f"{where}: expected a string, got {value!r}"
        fmt = schema.get("format")
        if fmt in ("int64", "uint64"):
            assert re.fullmatch(r"-?\d+", value), f"{where}: int64 {value!r} is not a decimal string"
        if fmt == "google-datetime" or fmt == "date-time":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", value), f"{where}: {value!r}"
        if "enum" in schema:
            assert value in schema["enum"], f"{where}: {value!r} is not one of {schema['enum']}"
        return
    if kind in ("integer", "number"):
        assert isinstance(value, int | float), f"{where}: {value!r}"
        assert not isinstance(value, bool), f"{where}: {value!r}"
        return
    if kind == "boolean":
        assert isinstance(value, bool), f"{where}: {value!r}"
        return
    raise AssertionError(f"{where}: unhandled schema type {kind}")


#: rpc -> the discovery schema of its response (without the package prefix).
RESPONSE_SCHEMAS = {
    "CreateTuningJob": "TuningJob",
    "GetTuningJob": "TuningJob",
    "ListTuningJobs": "ListTuningJobsResponse",
    "CancelTuningJob": "GoogleProtobufEmpty",
    "GenerateContent": "GenerateContentResponse",
    "GetEndpoint": "Endpoint",
    "GetModel": "Model",
    "DeleteModel": "GoogleLongrunningOperation",
    "DeleteEndpoint": "GoogleLongrunningOperation",
    "UndeployModel": "GoogleLongrunningOperation",
    "GetOperation": "GoogleLongrunningOperation",
}


def check_vertex_response(rpc: str, version: str, body: Any) -> None:
    """Check a Vertex AI success body against ``aiplatform.{version}`` discovery."""
    name = RESPONSE_SCHEMAS[rpc]
    prefix = "" if name.startswith("Google") else f"GoogleCloudAiplatform{version.capitalize()}"
    check_schema(body, {"$ref": prefix + name}, f"aiplatform.{version}")


def check_error_body(body: Any, http_status: int) -> None:
    """An AIP-193 error body whose ``code`` is the HTTP status and ``status`` the matching code name."""
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "status", "details"}, error
    assert error["code"] == http_status, error
    assert error["message"]
    assert CODES[error["status"]][1] == http_status, error
    code_pb2.Code.Value(error["status"])
    json_format.ParseDict({"details": error.get("details", [])}, status_pb2.Status())


# --- the checking client -------------------------------------------------------------------------------


@dataclass
class Collected:
    """One Vertex AI success response (for the strict protobuf parse)."""

    rpc: str
    version: str
    text: str


COLLECTED: list[Collected] = []


def record(method: str, url: str, response: requests.Response) -> None:
    """Check one Vertex AI response and collect it when it is a success."""
    path = urlsplit(url).path
    if not is_vertex_path(path):
        return
    if response.status_code != 200:
        assert response.status_code >= 400, f"{method} {path}: success must be HTTP 200"
        check_error_body(response.json(), response.status_code)
        return
    try:
        match = resolve(method, path)
    except Exception:  # a 200 on an unknown route cannot happen
        raise AssertionError(f"{method} {path} answered 200 without a route") from None
    if match.route.rpc in ("StreamGenerateContent",):
        return
    if "fields=" in url:  # a partial response is not a whole message
        return
    body = response.json()
    check_vertex_response(match.route.rpc, match.version, body)
    COLLECTED.append(Collected(match.route.rpc, match.version, response.text))


class VertexApi:
    """A ``requests`` client for the emulator's Vertex AI routes (bearer token from ``/token``)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.token = token if token is not None else access_token(base_url)

    def parent(self, version: str = "v1", project: str = PROJECT, location: str = LOCATION) -> str:
        return f"/{version}/projects/{project}/locations/{location}"

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
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        response = self.session.request(method, url, headers=sent, timeout=30, **kw)
        record(method, response.url, response)
        if expect is not None:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, **kw).json()

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw).json()

    def error(self, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
        """Send a request that must fail with ``status``; returns ``error``."""
        return dict(self.request(method, path, expect=status, **kw).json()["error"])

    def create(self, body: dict[str, Any], version: str = "v1", **kw: Any) -> dict[str, Any]:
        return dict(self.post(f"{self.parent(version)}/tuningJobs", body, **kw))

    def job(self, name: str, version: str = "v1") -> dict[str, Any]:
        return dict(self.get(f"/{version}/{name}"))


def put_object(base_url: str, name: str, text: str, bucket: str = BUCKET, token: str | None = None) -> str:
    """Upload ``text`` (media upload, creating the bucket if needed); returns its ``gs://`` URI."""
    session = requests.Session()
    if token is not None:
        session.headers["Authorization"] = f"Bearer {token}"
    if session.get(f"{base_url}/storage/v1/b/{bucket}", timeout=30).status_code == 404:
        created = session.post(
            f"{base_url}/storage/v1/b", params={"project": PROJECT}, json={"name": bucket}, timeout=30
        )
        assert created.status_code == 200, created.text
    uploaded = session.post(
        f"{base_url}/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "media", "name": name},
        data=text.encode(),
        headers={"Content-Type": "application/jsonl"},
        timeout=30,
    )
    assert uploaded.status_code == 200, uploaded.text
    return f"gs://{bucket}/{name}"


def sft_body(uri: str, **extra: Any) -> dict[str, Any]:
    """A supervised tuning job body on ``gemini-2.5-flash``."""
    return {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": uri}, **extra}


#: The google-genai 2.x that the Google provider's stack installs, and the newest
#: google-cloud-aiplatform (its types are the strict-parse reference; its releases from 1.92 pin
#: google-genai<3, so it cannot share the test environment with google-genai 3.x).
SDK2_REQUIREMENTS = ("google-genai==2.34.0", "google-cloud-aiplatform==2.7.0")


def run_with_sdk2(sdk2_path: pathlib.Path, script: pathlib.Path, *args: str, stdin: str = "") -> str:
    """Run ``script`` with google-genai 2.x and google-cloud-aiplatform 2.x first on the path."""
    env = {**os.environ, "PYTHONPATH": str(sdk2_path), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
