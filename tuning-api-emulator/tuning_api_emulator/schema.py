"""Request message schemas and a proto3-JSON parser that rejects what Google's front end rejects.

The parser accepts each field's lowerCamelCase JSON name *and* its snake_case proto name, turns
the value into a normalized dict (camelCase keys, enum names, ints, floats), and answers unknown
fields and wrongly typed values with 400 INVALID_ARGUMENT in Google's words, e.g.
``Invalid JSON payload received. Unknown name "foo" at 'tuned_model': Cannot find field.``.
The schemas follow the protos in ``api/protos`` (npm @google-ai/generativelanguage 4.1.0); deeply
nested generation features the emulator does not act on (tools, schemas, speech) are ``any``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tuning_api_emulator.errors import bad_request

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def camel(name: str) -> str:
    """``tuning_task`` -> ``tuningTask``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    """``tuningTask`` -> ``tuning_task`` (already snake names are unchanged)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class Enum:
    """A proto enum: its full name and value names."""

    full_name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Field:
    """One field of a message schema."""

    proto: str
    kind: str  # string|int32|int64|float|bool|bytes|enum|message|any|timestamp
    message: Msg | None = None
    enum: Enum | None = None
    repeated: bool = False
    oneof: str | None = None

    @property
    def json(self) -> str:
        return camel(self.proto)


@dataclass(frozen=True)
class Msg:
    """A message schema: full proto name and fields."""

    full_name: str
    fields: tuple[Field, ...]
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Field] = {}
        for item in self.fields:
            index[item.json] = item
            index[item.proto] = item
        object.__setattr__(self, "by_name", index)


def _type_label(spec: Field) -> str:
    if spec.kind == "enum" and spec.enum is not None:
        return f"type.googleapis.com/{spec.enum.full_name}"
    if spec.kind == "message" and spec.message is not None:
        return f"type.googleapis.com/{spec.message.full_name}"
    return {"timestamp": "type.googleapis.com/google.protobuf.Timestamp"}.get(
        spec.kind, f"TYPE_{spec.kind.upper()}"
    )


def _invalid(path: str, spec: Field, value: Any) -> Exception:
    import json

    shown = json.dumps(value, ensure_ascii=False)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return bad_request(f"Invalid value at '{path}' ({_type_label(spec)}), {shown}", path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse(value: Any, msg: Msg, path: str = "") -> dict[str, Any]:
    """Parse ``value`` as the JSON form of ``msg``; ``path`` is the proto path used in errors.

    :raises StatusError: 400 INVALID_ARGUMENT naming the field at fault.
    """
    if not isinstance(value, dict):
        raise _invalid(path, Field(path or "body", "message", message=msg), value)
    out: dict[str, Any] = {}
    seen_oneofs: dict[str, str] = {}
    for key, item in value.items():
        spec = msg.by_name.get(key)
        if spec is None:
            where = f" at '{path}'" if path else ""
            raise bad_request(
                f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.',
                path or None,
            )
        if item is None:
            continue
        if spec.json in out:
            raise bad_request(
                f'Invalid JSON payload received. Duplicate value for field "{spec.proto}"'
                f"{' at ' + repr(path) if path else ''}.",
                _join(path, spec.proto),
            )
        if spec.oneof is not None:
            other = seen_oneofs.get(spec.oneof)
            if other is not None:
                raise bad_request(
                    f"Invalid JSON payload received. Oneof field '{spec.oneof}' is already set. "
                    f"Cannot set '{spec.proto}'",
                    _join(path, spec.proto),
                )
            seen_oneofs[spec.oneof] = spec.proto
        field_path = _join(path, spec.proto)
        if spec.repeated:
            if not isinstance(item, list):
                raise _invalid(field_path, spec, item)
            out[spec.json] = [_scalar(elem, spec, f"{field_path}[{i}]") for i, elem in enumerate(item)]
        else:
            out[spec.json] = _scalar(item, spec, field_path)
    return out


def _scalar(value: Any, spec: Field, path: str) -> Any:
    kind = spec.kind
    if kind == "any":
        return value
    if kind == "message":
        assert spec.message is not None
        return parse(value, spec.message, path)
    if kind in ("string", "bytes"):
        if not isinstance(value, str):
            raise _invalid(path, spec, value)
        return value
    if kind == "timestamp":
        if not isinstance(value, str) or not _TIMESTAMP.match(value):
            raise _invalid(path, spec, value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _invalid(path, spec, value)
        return value
    if kind == "enum":
        assert spec.enum is not None
        if isinstance(value, str) and value in spec.enum.values:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(spec.enum.values):
            return spec.enum.values[value]
        raise _invalid(path, spec, value)
    if kind in ("int32", "int64"):
        number = _to_int(value)
        low, high = (INT32_MIN, INT32_MAX) if kind == "int32" else (INT64_MIN, INT64_MAX)
        if number is None or not low <= number <= high:
            raise _invalid(path, spec, value)
        return number
    if kind == "float":
        real = _to_float(value)
        if real is None:
            raise _invalid(path, spec, value)
        return real
    raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return None
        return result if result == result and abs(result) != float("inf") else None
    return None


# --- message definitions ------------------------------------------------------------------------------


def _f(proto: str, kind: str = "string", **kw: Any) -> Field:
    return Field(proto, kind, **kw)


def _package(version: str) -> str:
    return f"google.ai.generativelanguage.{version}"


def tuned_model_schema(version: str) -> Msg:
    """``TunedModel`` as accepted on create and patch in ``version`` (v1beta or v1beta3)."""
    pkg = _package(version)
    example = Msg(f"{pkg}.TuningExample", (_f("text_input", oneof="model_input"), _f("output")))
    examples = Msg(f"{pkg}.TuningExamples", (_f("examples", "message", message=example, repeated=True),))
    dataset = Msg(f"{pkg}.Dataset", (_f("examples", "message", message=examples, oneof="dataset"),))
    hyper_fields = [_f("epoch_count", "int32"), _f("batch_size", "int32")]
    if version == "v1beta":
        hyper_fields += [
            _f("learning_rate", "float", oneof="learning_rate_option"),
            _f("learning_rate_multiplier", "float", oneof="learning_rate_option"),
        ]
    else:
        hyper_fields.append(_f("learning_rate", "float"))
    hyper = Msg(f"{pkg}.Hyperparameters", tuple(hyper_fields))
    snapshot = Msg(
        f"{pkg}.TuningSnapshot",
        (
            _f("step", "int32"),
            _f("epoch", "int32"),
            _f("mean_loss", "float"),
            _f("compute_time", "timestamp"),
        ),
    )
    task = Msg(
        f"{pkg}.TuningTask",
        (
            _f("start_time", "timestamp"),
            _f("complete_time", "timestamp"),
            _f("snapshots", "message", message=snapshot, repeated=True),
            _f("training_data", "message", message=dataset),
            _f("hyperparameters", "message", message=hyper),
        ),
    )
    source = Msg(f"{pkg}.TunedModelSource", (_f("tuned_model"), _f("base_model")))
    state = Enum(f"{pkg}.TunedModel.State", ("STATE_UNSPECIFIED", "CREATING", "ACTIVE", "FAILED"))
    fields = [
        _f("tuned_model_source", "message", message=source, oneof="source_model"),
        _f("base_model", oneof="source_model"),
        _f("name"),
        _f("display_name"),
        _f("description"),
        _f("temperature", "float"),
        _f("top_p", "float"),
        _f("top_k", "int32"),
        _f("state", "enum", enum=state),
        _f("create_time", "timestamp"),
        _f("update_time", "timestamp"),
        _f("tuning_task", "message", message=task),
    ]
    if version == "v1beta":
        fields.append(_f("reader_project_numbers", "int64", repeated=True))
    return Msg(f"{pkg}.TunedModel", tuple(fields))


GRANTEE_TYPES = ("GRANTEE_TYPE_UNSPECIFIED", "USER", "GROUP", "EVERYONE")
ROLES = ("ROLE_UNSPECIFIED", "OWNER", "WRITER", "READER")


def permission_schema(version: str) -> Msg:
    """``Permission`` (create/patch body)."""
    pkg = _package(version)
    return Msg(
        f"{pkg}.Permission",
        (
            _f("name"),
            _f("grantee_type", "enum", enum=Enum(f"{pkg}.Permission.GranteeType", GRANTEE_TYPES)),
            _f("email_address"),
            _f("role", "enum", enum=Enum(f"{pkg}.Permission.Role", ROLES)),
        ),
    )


def transfer_ownership_schema(version: str) -> Msg:
    """``TransferOwnershipRequest`` (body ``*``)."""
    return Msg(f"{_package(version)}.TransferOwnershipRequest", (_f("name"), _f("email_address")))


HARM_CATEGORIES = (
    "HARM_CATEGORY_UNSPECIFIED",
    "HARM_CATEGORY_DEROGATORY",
    "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE",
    "HARM_CATEGORY_SEXUAL",
    "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
PALM_CATEGORIES = HARM_CATEGORIES[1:7]
GEMINI_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)


def _safety_setting(version: str) -> Msg:
    pkg = _package(version)
    categories = HARM_CATEGORIES[:7] if version == "v1beta3" else HARM_CATEGORIES
    thresholds = [
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
        "BLOCK_LOW_AND_ABOVE",
        "BLOCK_MEDIUM_AND_ABOVE",
        "BLOCK_ONLY_HIGH",
        "BLOCK_NONE",
    ]
    if version != "v1beta3":
        thresholds.append("OFF")
    return Msg(
        f"{pkg}.SafetySetting",
        (
            _f("category", "enum", enum=Enum(f"{pkg}.HarmCategory", categories)),
            _f(
                "threshold",
                "enum",
                enum=Enum(f"{pkg}.SafetySetting.HarmBlockThreshold", tuple(thresholds)),
            ),
        ),
    )


def _content(version: str) -> Msg:
    pkg = _package(version)
    blob = Msg(f"{pkg}.Blob", (_f("mime_type"), _f("data", "bytes")))
    part_fields = [
        _f("text", oneof="data"),
        _f("inline_data", "message", message=blob, oneof="data"),
        _f("video_metadata", "any"),
    ]
    if version == "v1beta":
        file_data = Msg(f"{pkg}.FileData", (_f("mime_type"), _f("file_uri")))
        part_fields += [
            _f("function_call", "any", oneof="data"),
            _f("function_response", "any", oneof="data"),
            _f("file_data", "message", message=file_data, oneof="data"),
            _f("executable_code", "any", oneof="data"),
            _f("code_execution_result", "any", oneof="data"),
            _f("thought", "bool"),
            _f("thought_signature", "bytes"),
            _f("part_metadata", "any"),
        ]
    part = Msg(f"{pkg}.Part", tuple(part_fields))
    return Msg(f"{pkg}.Content", (_f("parts", "message", message=part, repeated=True), _f("role")))


def _generation_config(version: str) -> Msg:
    pkg = _package(version)
    fields = [
        _f("candidate_count", "int32"),
        _f("stop_sequences", repeated=True),
        _f("max_output_tokens", "int32"),
        _f("temperature", "float"),
        _f("top_p", "float"),
        _f("top_k", "int32"),
        _f("seed", "int32"),
        _f("response_json_schema_ordered", "any"),
        _f("presence_penalty", "float"),
        _f("frequency_penalty", "float"),
        _f("response_logprobs", "bool"),
        _f("logprobs", "int32"),
        _f("enable_enhanced_civic_answers", "bool"),
    ]
    if version == "v1beta":
        modality = Enum(
            f"{pkg}.GenerationConfig.Modality", ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO")
        )
        resolution = Enum(
            f"{pkg}.GenerationConfig.MediaResolution",
            (
                "MEDIA_RESOLUTION_UNSPECIFIED",
                "MEDIA_RESOLUTION_LOW",
                "MEDIA_RESOLUTION_MEDIUM",
                "MEDIA_RESOLUTION_HIGH",
            ),
        )
        fields += [
            _f("response_mime_type"),
            _f("response_schema", "any"),
            _f("response_json_schema", "any"),
            _f("response_modalities", "enum", enum=modality, repeated=True),
            _f("speech_config", "any"),
            _f("thinking_config", "any"),
            _f("image_config", "any"),
            _f("media_resolution", "enum", enum=resolution),
        ]
    return Msg(f"{pkg}.GenerationConfig", tuple(fields))


def generate_content_schema(version: str) -> Msg:
    """``GenerateContentRequest`` (v1beta or v1)."""
    pkg = _package(version)
    content = _content(version)
    fields = [
        _f("model"),
        _f("contents", "message", message=content, repeated=True),
        _f("safety_settings", "message", message=_safety_setting(version), repeated=True),
        _f("generation_config", "message", message=_generation_config(version)),
    ]
    if version == "v1beta":
        fields += [
            _f("system_instruction", "message", message=content),
            _f("tools", "any", repeated=True),
            _f("tool_config", "any"),
            _f("cached_content"),
        ]
    return Msg(f"{pkg}.GenerateContentRequest", tuple(fields))


def count_tokens_schema(version: str) -> Msg:
    """``CountTokensRequest`` (v1beta or v1)."""
    pkg = _package(version)
    return Msg(
        f"{pkg}.CountTokensRequest",
        (
            _f("model"),
            _f("contents", "message", message=_content(version), repeated=True),
            _f("generate_content_request", "message", message=generate_content_schema(version)),
        ),
    )


def _text_prompt(version: str) -> Msg:
    return Msg(f"{_package(version)}.TextPrompt", (_f("text"),))


def generate_text_schema(version: str) -> Msg:
    """``GenerateTextRequest`` (v1beta or v1beta3)."""
    pkg = _package(version)
    return Msg(
        f"{pkg}.GenerateTextRequest",
        (
            _f("model"),
            _f("prompt", "message", message=_text_prompt(version)),
            _f("temperature", "float"),
            _f("candidate_count", "int32"),
            _f("max_output_tokens", "int32"),
            _f("top_p", "float"),
            _f("top_k", "int32"),
            _f("safety_settings", "message", message=_safety_setting(version), repeated=True),
            _f("stop_sequences", repeated=True),
        ),
    )


def count_text_tokens_schema(version: str) -> Msg:
    """``CountTextTokensRequest`` (v1beta or v1beta3)."""
    pkg = _package(version)
    return Msg(
        f"{pkg}.CountTextTokensRequest", (_f("model"), _f("prompt", "message", message=_text_prompt(version)))
    )


CANCEL_OPERATION = Msg("google.longrunning.CancelOperationRequest", (_f("name"),))


_CACHE: dict[tuple[str, str], Msg] = {}


def schema(kind: str, version: str) -> Msg:
    """A cached schema by kind (``tuned_model``, ``permission``, ...) and API version."""
    key = (kind, version)
    found = _CACHE.get(key)
    if found is None:
        builders = {
            "tuned_model": tuned_model_schema,
            "permission": permission_schema,
            "transfer_ownership": transfer_ownership_schema,
            "generate_content": generate_content_schema,
            "count_tokens": count_tokens_schema,
            "generate_text": generate_text_schema,
            "count_text_tokens": count_text_tokens_schema,
        }
        found = builders[kind](version)
        _CACHE[key] = found
    return found
