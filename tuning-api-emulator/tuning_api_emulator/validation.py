"""Validation of tuning and permission requests, the way the service validates them.

Schema errors (unknown names, wrong types) come from :mod:`.schema`; this module adds the
service's own rules: required fields, the ``tunedModelId`` pattern, the 40-character display name,
positive hyperparameters (``learningRate`` and ``learningRateMultiplier`` are a oneof), value ranges,
update masks, and permission rules. Every failure is a 400 INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any

from tuning_api_emulator.errors import bad_request
from tuning_api_emulator.jsonio import f32
from tuning_api_emulator.schema import camel, parse, schema, snake

TUNED_MODEL_ID = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
MAX_DISPLAY_NAME = 40
ID_SUFFIX_LENGTH = 12
_ALPHABET = string.ascii_lowercase + string.digits
FAIL_MARKER = re.compile(r"emulator:fail(?:-at=(\d+))?")


def random_id(rng: random.Random, length: int = ID_SUFFIX_LENGTH) -> str:
    """``length`` characters of ``[a-z0-9]``."""
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def derive_model_id(display_name: str, rng: random.Random, taken: set[str] | dict[str, Any]) -> str:
    """An id from the display name's words joined by ``-`` plus a 12-character random suffix.

    Each word keeps only ``[a-z0-9]`` after lower-casing (``test_number_generator`` ->
    ``testnumbergenerator``, as the PaLM seed shows); the prefix is cut to fit 40 characters; a
    display name with no usable word (or none at all) gives ``tunedmodel-<suffix>``.
    """
    words = [re.sub(r"[^a-z0-9]", "", word.lower()) for word in display_name.split()]
    prefix = "-".join(word for word in words if word)
    if not prefix or not prefix[0].isalpha():
        prefix = f"tunedmodel-{prefix}" if prefix else "tunedmodel"
    prefix = prefix[: 40 - ID_SUFFIX_LENGTH - 1].rstrip("-")
    while True:
        candidate = f"{prefix}-{random_id(rng)}"
        if candidate not in taken:
            return candidate


def check_tuned_model_id(tuned_model_id: str) -> None:
    """Raise 400 unless ``tuned_model_id`` matches ``[a-z]([a-z0-9-]{0,38}[a-z0-9])?``."""
    if not TUNED_MODEL_ID.fullmatch(tuned_model_id):
        raise bad_request(
            f"tuned_model_id {tuned_model_id!r} is invalid: it must be 1-40 characters of lowercase "
            "letters, digits and hyphens, start with a letter and not end with a hyphen "
            "(pattern [a-z]([a-z0-9-]{0,38}[a-z0-9])?).",
            "tuned_model_id",
        )


@dataclass(frozen=True)
class CreateSpec:
    """A validated ``CreateTunedModel`` request."""

    base_model: str | None
    source_tuned_model: str | None
    display_name: str
    description: str
    temperature: float | None
    top_p: float | None
    top_k: int | None
    reader_project_numbers: list[int]
    examples: list[dict[str, str]]
    hyperparameters: dict[str, Any]  # only what the caller set
    fail_at_step: int | None  # from an "emulator:fail[-at=N]" marker; -1 = half-way


def _check_sampling(model: dict[str, Any], prefix: str) -> None:
    for key, low, high in (("temperature", 0.0, 1.0), ("topP", 0.0, 1.0)):
        value = model.get(key)
        if value is not None and not low <= value <= high:
            raise bad_request(
                f"{prefix}.{snake(key)} must be in [{low}, {high}], got {value}.", f"{prefix}.{snake(key)}"
            )
    top_k = model.get("topK")
    if top_k is not None and top_k < 0:
        raise bad_request(f"{prefix}.top_k must not be negative, got {top_k}.", f"{prefix}.top_k")


def _check_display_name(model: dict[str, Any], prefix: str) -> None:
    name = model.get("displayName", "")
    if len(name) > MAX_DISPLAY_NAME:
        raise bad_request(
            f"{prefix}.display_name must be at most {MAX_DISPLAY_NAME} characters, got {len(name)}.",
            f"{prefix}.display_name",
        )


def _check_hyperparameters(hyper: dict[str, Any]) -> None:
    where = "tuned_model.tuning_task.hyperparameters"
    for key in ("epochCount", "batchSize"):
        if key in hyper and hyper[key] <= 0:
            raise bad_request(
                f"{where}.{snake(key)} must be a positive integer, got {hyper[key]}.", f"{where}.{snake(key)}"
            )
    for key in ("learningRate", "learningRateMultiplier"):
        if key in hyper and not hyper[key] > 0:
            raise bad_request(
                f"{where}.{snake(key)} must be a positive number, got {hyper[key]}.", f"{where}.{snake(key)}"
            )


def validate_create(body: dict[str, Any], api_version: str) -> CreateSpec:
    """Validate a ``TunedModel`` create body (camelCase or snake_case).

    :raises StatusError: 400 INVALID_ARGUMENT naming the field at fault.
    """
    model = parse(body, schema("tuned_model", api_version), "tuned_model")
    prefix = "tuned_model"
    task = model.get("tuningTask")
    if task is None:
        raise bad_request("tuned_model.tuning_task is required.", "tuned_model.tuning_task")
    examples_path = "tuned_model.tuning_task.training_data.examples.examples"
    raw_examples = task.get("trainingData", {}).get("examples", {}).get("examples", [])
    if not raw_examples:
        raise bad_request(
            f"{examples_path} must contain at least one example (training data is required).", examples_path
        )
    examples: list[dict[str, str]] = []
    for index, example in enumerate(raw_examples):
        for key in ("textInput", "output"):
            if not example.get(key):
                field = f"{examples_path}[{index}].{snake(key)}"
                raise bad_request(f"{field} is required and must be a non-empty string.", field)
        examples.append({"textInput": example["textInput"], "output": example["output"]})
    source = model.get("tunedModelSource")
    base_model = model.get("baseModel") or None
    source_tuned_model: str | None = None
    if source is not None:
        source_tuned_model = source.get("tunedModel") or None
        if source_tuned_model is None:
            field = "tuned_model.tuned_model_source.tuned_model"
            raise bad_request(f"{field} is required when tuned_model_source is set.", field)
    elif base_model is None:
        raise bad_request(
            "tuned_model.base_model is required (or tuned_model.tuned_model_source).",
            "tuned_model.base_model",
        )
    _check_display_name(model, prefix)
    _check_sampling(model, prefix)
    hyper = dict(task.get("hyperparameters", {}))
    _check_hyperparameters(hyper)
    numbers = model.get("readerProjectNumbers", [])
    for index, number in enumerate(numbers):
        if number <= 0:
            field = f"tuned_model.reader_project_numbers[{index}]"
            raise bad_request(f"{field} must be a positive project number.", field)
    fail_at: int | None = None
    for text in (model.get("displayName", ""), model.get("description", "")):
        marker = FAIL_MARKER.search(text)
        if marker:
            fail_at = int(marker.group(1)) if marker.group(1) is not None else -1
            break
    return CreateSpec(
        base_model=base_model,
        source_tuned_model=source_tuned_model,
        display_name=model.get("displayName", ""),
        description=model.get("description", ""),
        temperature=model.get("temperature"),
        top_p=model.get("topP"),
        top_k=model.get("topK"),
        reader_project_numbers=list(numbers),
        examples=examples,
        hyperparameters=hyper,
        fail_at_step=fail_at,
    )


# --- update masks -------------------------------------------------------------------------------------

_MUTABLE = ("displayName", "description", "temperature", "topP", "topK")
_IMMUTABLE = (
    "baseModel",
    "tunedModelSource",
    "tunedModelSource.tunedModel",
    "tuningTask",
    "tuningTask.trainingData",
    "tuningTask.hyperparameters",
    "tuningTask.hyperparameters.epochCount",
    "tuningTask.hyperparameters.batchSize",
    "tuningTask.hyperparameters.learningRate",
    "tuningTask.hyperparameters.learningRateMultiplier",
)
_OUTPUT_ONLY = (
    "name",
    "state",
    "createTime",
    "updateTime",
    "tunedModelSource.baseModel",
    "tuningTask.startTime",
    "tuningTask.completeTime",
    "tuningTask.snapshots",
)


def mutable_fields(api_version: str) -> tuple[str, ...]:
    """The ``TunedModel`` fields an update may change in ``api_version``."""
    return (*_MUTABLE, "readerProjectNumbers") if api_version == "v1beta" else _MUTABLE


def _camel_path(path: str) -> str:
    return ".".join(camel(part) for part in path.strip().split("."))


def parse_update_mask(mask: str, api_version: str) -> list[str]:
    """Normalize a FieldMask string (camelCase or snake_case paths, comma-separated).

    ``*`` means every mutable field. Immutable, output-only and unknown paths are a 400.
    """
    mutable = mutable_fields(api_version)
    paths: list[str] = []
    for raw in mask.split(","):
        if not raw.strip():
            continue
        if raw.strip() == "*":
            paths.extend(p for p in mutable if p not in paths)
            continue
        path = _camel_path(raw)
        if path in _IMMUTABLE:
            raise bad_request(f'update_mask path "{raw.strip()}" names an immutable field.', "update_mask")
        if path in _OUTPUT_ONLY:
            raise bad_request(f'update_mask path "{raw.strip()}" names an output-only field.', "update_mask")
        if path not in mutable:
            raise bad_request(
                f'update_mask path "{raw.strip()}" is not a field of TunedModel.', "update_mask"
            )
        if path not in paths:
            paths.append(path)
    if not paths:
        raise bad_request("update_mask must name at least one field.", "update_mask")
    return paths


def parse_update_body(body: dict[str, Any], api_version: str) -> dict[str, Any]:
    """Parse and range-check a ``TunedModel`` patch body."""
    model = parse(body, schema("tuned_model", api_version), "tuned_model")
    _check_display_name(model, "tuned_model")
    _check_sampling(model, "tuned_model")
    return model


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float | int) and isinstance(right, float | int):
        return f32(float(left)) == f32(float(right))
    return bool(left == right)


def infer_update_mask(model: dict[str, Any], current: dict[str, Any], api_version: str) -> list[str]:
    """The mask v1beta infers from a body without ``updateMask``: the mutable fields it carries.

    ``current`` is the model as rendered. An immutable field is accepted only with its current
    value; output-only fields are ignored.
    """
    if "baseModel" in model and model["baseModel"] != current.get("baseModel"):
        raise bad_request(
            "tuned_model.base_model is immutable and cannot be updated.", "tuned_model.base_model"
        )
    source = model.get("tunedModelSource", {}).get("tunedModel")
    if source is not None and source != current.get("tunedModelSource", {}).get("tunedModel"):
        field = "tuned_model.tuned_model_source.tuned_model"
        raise bad_request(f"{field} is immutable and cannot be updated.", field)
    task = model.get("tuningTask", {})
    if "trainingData" in task:
        field = "tuned_model.tuning_task.training_data"
        raise bad_request(f"{field} is immutable and cannot be updated.", field)
    current_hyper = current.get("tuningTask", {}).get("hyperparameters", {})
    for key, value in task.get("hyperparameters", {}).items():
        if not _same(value, current_hyper.get(key)):
            field = f"tuned_model.tuning_task.hyperparameters.{snake(key)}"
            raise bad_request(f"{field} is immutable and cannot be updated.", field)
    return [key for key in mutable_fields(api_version) if key in model]


# --- permissions --------------------------------------------------------------------------------------


def validate_permission(body: dict[str, Any], api_version: str) -> dict[str, Any]:
    """Validate a ``Permission`` create body; returns ``{granteeType, emailAddress, role}``."""
    perm = parse(body, schema("permission", api_version), "permission")
    role = perm.get("role", "ROLE_UNSPECIFIED")
    if role == "ROLE_UNSPECIFIED":
        raise bad_request("permission.role is required.", "permission.role")
    if role == "OWNER":
        raise bad_request(
            "permission.role OWNER cannot be granted; use tunedModels.transferOwnership.", "permission.role"
        )
    email = perm.get("emailAddress", "")
    grantee = perm.get("granteeType", "GRANTEE_TYPE_UNSPECIFIED")
    if grantee == "GRANTEE_TYPE_UNSPECIFIED":
        if api_version == "v1beta3" or not email:
            raise bad_request("permission.grantee_type is required.", "permission.grantee_type")
        grantee = "USER"
    if grantee == "EVERYONE":
        if email:
            raise bad_request(
                "permission.email_address must be empty when grantee_type is EVERYONE.",
                "permission.email_address",
            )
        if role != "READER":
            raise bad_request("grantee_type EVERYONE can only be given the READER role.", "permission.role")
    elif not email:
        raise bad_request(
            f"permission.email_address is required when grantee_type is {grantee}.",
            "permission.email_address",
        )
    elif "@" not in email:
        raise bad_request(
            f"permission.email_address {email!r} is not an email address.", "permission.email_address"
        )
    return {"granteeType": grantee, "emailAddress": email, "role": role}
