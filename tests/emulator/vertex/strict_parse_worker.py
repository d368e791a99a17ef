"""Parse Vertex AI responses strictly into google-cloud-aiplatform's official types.

Run as a script with google-cloud-aiplatform 2.x on ``PYTHONPATH`` (see ``conftest.run_with_sdk2``).
Reads ``{"items": [{"rpc", "version", "text"}], "strip": {version: [dotted paths]}}`` on stdin;
parses each response with ``json_format.Parse(..., ignore_unknown_fields=False)`` after removing
only the listed paths (fields the discovery document has but the published protos lack yet), and
prints ``{"parsed", "stripped", "errors"}``.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format

TYPES = {
    "CreateTuningJob": "TuningJob",
    "GetTuningJob": "TuningJob",
    "ListTuningJobs": "ListTuningJobsResponse",
    "GenerateContent": "GenerateContentResponse",
    "GetEndpoint": "Endpoint",
    "GetModel": "Model",
}
OPERATIONS = {"DeleteModel", "DeleteEndpoint", "UndeployModel", "GetOperation"}


def _strip(value: dict[str, Any], path: str, stripped: Counter[str], label: str) -> None:
    head, _, rest = path.partition(".")
    if head not in value:
        return
    if rest:
        if isinstance(value[head], dict):
            _strip(value[head], rest, stripped, label)
        return
    del value[head]
    stripped[label] += 1


def main() -> None:
    request = json.load(sys.stdin)
    stripped: Counter[str] = Counter()
    errors: list[str] = []
    parsed = 0
    for item in request["items"]:
        rpc, version = item["rpc"], item["version"]
        module = importlib.import_module(f"google.cloud.aiplatform_{version}.types")
        body = json.loads(item["text"])
        targets = body.get("tuningJobs", []) if rpc == "ListTuningJobs" else [body]
        for target in targets:
            for path in request["strip"][version]:
                _strip(target, path, stripped, f"{version}:{path}")
        if rpc == "CancelTuningJob":
            message: Any = empty_pb2.Empty()
        elif rpc in OPERATIONS:
            message = operations_pb2.Operation()
        else:
            cls = getattr(module, TYPES[rpc])
            message = cls.pb(cls())
        try:
            json_format.Parse(json.dumps(body), message, ignore_unknown_fields=False)
            parsed += 1
        except json_format.ParseError as err:
            errors.append(f"{rpc} {version}: {err}")
    print(json.dumps({"parsed": parsed, "stripped": dict(stripped), "errors": errors}))


if __name__ == "__main__":
    main()
