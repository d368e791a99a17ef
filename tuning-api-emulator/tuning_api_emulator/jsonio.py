"""JSON in and out the way the Google front end does it.

* Input: strict JSON plus trailing commas (the seeds' curl bodies have them and the real service
  accepted them); no ``NaN``/``Infinity``; the root must be an object; at most
  :data:`MAX_JSON_DEPTH` levels of objects and arrays (checked before parsing, so a deeply nested
  body is a 400, never a ``RecursionError``); every string valid Unicode (no lone surrogate such as
  ``"\ud800"``, which cannot be written as UTF-8).
* Output: pretty JSON (``prettyPrint=false`` gives compact), RFC 3339 UTC timestamps with ``Z``,
  ``float`` fields printed as the shortest decimal of their float32 value, and, when the client asks
  for ``$alt=json;enum-encoding=int`` (google-api-core REST transports do), enums as numbers.
"""

from __future__ import annotations

import datetime as _dt
import json
import struct
from typing import Any

from tuning_api_emulator.errors import bad_request

#: The deepest nesting of objects and arrays a body may have (protobuf's default recursion limit).
MAX_JSON_DEPTH = 100


def _check_depth(depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(
            f"JSON nesting too deep: more than {MAX_JSON_DEPTH} levels of nested objects and arrays."
        )


def _strip_trailing_commas(text: str) -> str:
    """Drop commas that directly precede ``}`` or ``]`` (outside strings), checking the nesting depth.

    :raises ValueError: when objects and arrays nest deeper than :data:`MAX_JSON_DEPTH`.
    """
    out: list[str] = []
    in_string = False
    escaped = False
    pending_comma: int | None = None
    depth = 0
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in "{[":
            depth += 1
            _check_depth(depth)
        elif ch in "}]":
            depth -= 1
            if pending_comma is not None:
                out[pending_comma] = ""
        if ch == ",":
            pending_comma = len(out)
        elif not ch.isspace():
            pending_comma = None
        if ch == '"':
            in_string = True
        out.append(ch)
    return "".join(out)


def utf8_problem(value: Any) -> str | None:
    """What makes ``value`` (a JSON value, walked without recursion) unwritable as UTF-8, if anything.

    :param value: parsed JSON (dicts, lists, strings, numbers).
    :returns: a message naming the bad string, or ``None`` when every string (and key) is valid.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                bad = item[err.start : err.end].encode("unicode_escape").decode()
                return f"Invalid string: it holds the lone surrogate {bad}, which is not valid Unicode."
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name}")


def loads_json(text: str, *, constants: bool = False) -> Any:
    """Parse JSON text (trailing commas allowed), checking depth and Unicode before use.

    :param text: the JSON text.
    :param constants: accept ``NaN``, ``Infinity`` and ``-Infinity`` (for the control paths, whose
        own validation then names the offending field).
    :raises ValueError: on invalid JSON, too deep a nesting or a lone surrogate.
    """
    cleaned = _strip_trailing_commas(text)
    value = json.loads(cleaned) if constants else json.loads(cleaned, parse_constant=_reject_constant)
    problem = utf8_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def loads_body(raw: bytes) -> dict[str, Any]:
    """Parse a request body into a dict; an empty body is ``{}``.

    :raises StatusError: 400 INVALID_ARGUMENT with Google's "Invalid JSON payload received." text.
    """
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    try:
        value = loads_json(text)
    except ValueError as err:
        raise bad_request(f"Invalid JSON payload received. {err}") from None
    if not isinstance(value, dict):
        raise bad_request('Invalid JSON payload received. Unknown name "": Root element must be a message.')
    return value


def dumps(value: Any, *, pretty: bool = True) -> str:
    """Serialize a response body."""
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def f32(value: float) -> float:
    """The shortest decimal that round-trips to the same float32 (how protobuf prints ``float``)."""
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return struct.unpack("<f", packed)[0]  # pragma: no cover - 9 digits always round-trip


def timestamp(epoch_seconds: float) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, e.g. ``2024-03-14T15:11:23.766989Z``."""
    moment = _dt.datetime.fromtimestamp(epoch_seconds, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Enum JSON names -> numbers, per field name. A value not in the field's table is left alone, so
# Content.role ("user"/"model", a string field) is untouched while Permission.role is converted.
_HARM_CATEGORY = {
    "HARM_CATEGORY_UNSPECIFIED": 0,
    "HARM_CATEGORY_DEROGATORY": 1,
    "HARM_CATEGORY_TOXICITY": 2,
    "HARM_CATEGORY_VIOLENCE": 3,
    "HARM_CATEGORY_SEXUAL": 4,
    "HARM_CATEGORY_MEDICAL": 5,
    "HARM_CATEGORY_DANGEROUS": 6,
    "HARM_CATEGORY_HARASSMENT": 7,
    "HARM_CATEGORY_HATE_SPEECH": 8,
    "HARM_CATEGORY_SEXUALLY_EXPLICIT": 9,
    "HARM_CATEGORY_DANGEROUS_CONTENT": 10,
    "HARM_CATEGORY_CIVIC_INTEGRITY": 11,
}
ENUM_NUMBERS: dict[str, dict[str, int]] = {
    "state": {"STATE_UNSPECIFIED": 0, "CREATING": 1, "ACTIVE": 2, "FAILED": 3},
    "granteeType": {"GRANTEE_TYPE_UNSPECIFIED": 0, "USER": 1, "GROUP": 2, "EVERYONE": 3},
    "role": {"ROLE_UNSPECIFIED": 0, "OWNER": 1, "WRITER": 2, "READER": 3},
    "category": _HARM_CATEGORY,
    "probability": {"HARM_PROBABILITY_UNSPECIFIED": 0, "NEGLIGIBLE": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4},
    "finishReason": {
        "FINISH_REASON_UNSPECIFIED": 0,
        "STOP": 1,
        "MAX_TOKENS": 2,
        "SAFETY": 3,
        "RECITATION": 4,
        "OTHER": 5,
        "LANGUAGE": 6,
    },
    "blockReason": {"BLOCK_REASON_UNSPECIFIED": 0, "SAFETY": 1, "OTHER": 2},
    "reason": {"BLOCKED_REASON_UNSPECIFIED": 0, "SAFETY": 1, "OTHER": 2},
    "threshold": {
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED": 0,
        "BLOCK_LOW_AND_ABOVE": 1,
        "BLOCK_MEDIUM_AND_ABOVE": 2,
        "BLOCK_ONLY_HIGH": 3,
        "BLOCK_NONE": 4,
        "OFF": 5,
    },
}


def enums_to_int(value: Any, tables: dict[str, dict[str, int]] | None = None) -> Any:
    """A copy of a response body with every enum value as its number (``enum-encoding=int``).

    :param tables: enum numbers per field name (default :data:`ENUM_NUMBERS`, the Gemini API's).
    """
    tables = ENUM_NUMBERS if tables is None else tables
    if isinstance(value, list):
        return [enums_to_int(item, tables) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        table = tables.get(key)
        if table is not None and isinstance(item, str) and item in table:
            out[key] = table[item]
        elif key == "@type":
            out[key] = item
        else:
            out[key] = enums_to_int(item, tables)
    return out


def wants_int_enums(alt_values: list[str]) -> bool:
    """Whether ``alt``/``$alt`` asks for ``enum-encoding=int``."""
    return any("enum-encoding=int" in value.replace(" ", "") for value in alt_values)
