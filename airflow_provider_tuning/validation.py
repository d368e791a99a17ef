"""Resource names and argument validation: the one place every hook, operator, trigger and sensor uses.

Pure and stdlib-only (importing it is free for DAG files). Every check raises
:class:`~airflow_provider_tuning.exceptions.InvalidInputError` naming the argument and the bad value
(shortened). Numbers may arrive as strings (a rendered Jinja template is a string), so numeric strings
are accepted; booleans are never numbers; NaN and infinities are never accepted.

Resource names of the Generative Language API (CONTRACT.md section 3):

* tuned model ``tunedModels/<id>``, with ``<id>`` matching :data:`TUNED_MODEL_ID_PATTERN` when a client
  chooses it;
* its tuning operation ``tunedModels/<id>/operations/<op>``;
* base model ``models/<id>``; permission ``tunedModels/<id>/permissions/<perm>``.

A name is one path segment per part: no ``..``, no query, no fragment, no empty segment, so that a
name pasted into a URL path can never reach another route.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_tuning.exceptions import InvalidInputError

#: The ``tunedModelId`` rule of ``tunedModels.create`` (CONTRACT.md sections 3 and 7).
TUNED_MODEL_ID_PATTERN = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
#: One segment of a server-chosen resource id: letters, digits and ``. _ ~ -``, starting alphanumeric.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")
#: A base model id (``gemini-1.5-flash-001-tuning``, ``text-bison-001``).
_BASE_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9.\-]*")
TUNED_MODELS = "tunedModels"
MODELS = "models"
MAX_PAGE_SIZE = 1000
INT32_MAX = 2**31 - 1


def quote(value: Any, limit: int = 80) -> str:
    """Return ``repr`` of ``value`` as text, shortened to ``limit`` characters, for an error message.

    :param value: any value (never a secret).
    :param limit: the longest text quoted whole.
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text) if isinstance(value, str) else text


# -- text ---------------------------------------------------------------------------------------------


def check_text(name: str, value: str) -> str:
    """Return ``value`` if it is valid Unicode text: no lone surrogate (it cannot be sent as UTF-8).

    :param name: what the text is (argument, field, line), for the message.
    :param value: the text.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInputError(
            f"{name} contains a lone surrogate ({value[err.start]!r} at character {err.start}), "
            "which is not valid Unicode text"
        ) from None
    return value


def optional_string(name: str, value: Any, *, max_length: int | None = None) -> str | None:
    """Return ``value`` if it is ``None`` or valid text of at most ``max_length`` characters.

    :param name: the argument name.
    :param value: the value to check.
    :param max_length: the longest value allowed, if any.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {quote(value)}")
    check_text(name, value)
    if max_length is not None and len(value) > max_length:
        raise InvalidInputError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return value


# -- numbers ------------------------------------------------------------------------------------------


def positive_int(name: str, value: Any, *, maximum: int | None = None) -> int:
    """Return ``value`` as an int >= 1 (and <= ``maximum``), accepting an int or a string of digits.

    :param name: the argument name.
    :param value: the value to check.
    :param maximum: the largest value allowed, if any.
    """
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {quote(value)}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name} must be at most {maximum}, got {value}")
    return value


def number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """Return ``value`` as a finite float within bounds, accepting a number or a numeric string.

    :param name: the argument name.
    :param value: the value to check.
    :param minimum: the lower bound, if any.
    :param maximum: the upper bound (inclusive), if any.
    :param exclusive_minimum: whether ``minimum`` itself is rejected.
    """
    result: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    if result is None or not math.isfinite(result):
        raise InvalidInputError(f"{name} must be a finite number, got {quote(value)}")
    low_ok = minimum is None or (result > minimum if exclusive_minimum else result >= minimum)
    high_ok = maximum is None or result <= maximum
    if not (low_ok and high_ok):
        parts = []
        if minimum is not None:
            parts.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
        if maximum is not None:
            parts.append(f"<= {maximum:g}")
        raise InvalidInputError(f"{name} must be {' and '.join(parts)}, got {quote(value)}")
    return result


@dataclass(frozen=True)
class NumberLimit:
    """The range of a numeric operator argument: the operators check values with :meth:`check`, and
    the example DAGs' trigger forms get the same range as JSON schema from :meth:`schema`.

    :param name: the argument name.
    :param integer: whether only whole numbers pass (then ``minimum`` is 1).
    :param minimum: the lower bound.
    :param exclusive_minimum: whether ``minimum`` itself is refused.
    :param maximum: the upper bound (inclusive), if any.
    """

    name: str
    integer: bool
    minimum: float
    exclusive_minimum: bool = False
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.integer and (self.minimum != 1 or self.exclusive_minimum):
            raise ValueError("an integer limit starts at 1 (positive_int)")

    def check(self, value: Any) -> int | float:
        """Return ``value`` as a number within the range, or raise naming the argument.

        :param value: the value (a number or a numeric string).
        """
        if self.integer:
            maximum = None if self.maximum is None else int(self.maximum)
            return positive_int(self.name, value, maximum=maximum)
        return number(
            self.name,
            value,
            minimum=self.minimum,
            maximum=self.maximum,
            exclusive_minimum=self.exclusive_minimum,
        )

    def schema(self, *, maximum: float | None = None) -> dict[str, Any]:
        """Return the JSON-schema keywords of this range, for an Airflow ``Param(default, **schema)``.

        :param maximum: a smaller upper bound for a form (it may narrow the range, never widen it).
        """
        if maximum is not None and self.maximum is not None and maximum > self.maximum:
            raise ValueError(f"{self.name}: a form maximum of {maximum} exceeds the limit {self.maximum}")
        result: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        result["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = (
            int(self.minimum) if self.integer else self.minimum
        )
        upper = self.maximum if maximum is None else maximum
        if upper is not None:
            result["maximum"] = int(upper) if self.integer else upper
        return result


#: ``Hyperparameters.epochCount`` (int32, CONTRACT.md section 7).
EPOCH_COUNT = NumberLimit("epoch_count", integer=True, minimum=1, maximum=INT32_MAX)
#: ``Hyperparameters.batchSize`` (int32).
BATCH_SIZE = NumberLimit("batch_size", integer=True, minimum=1, maximum=INT32_MAX)
#: ``Hyperparameters.learningRate``: greater than 0.
LEARNING_RATE = NumberLimit("learning_rate", integer=False, minimum=0.0, exclusive_minimum=True)
#: ``Hyperparameters.learningRateMultiplier`` (``v1beta``): greater than 0.
LEARNING_RATE_MULTIPLIER = NumberLimit(
    "learning_rate_multiplier", integer=False, minimum=0.0, exclusive_minimum=True
)


def seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return a duration in seconds: a finite number (> 0, or >= 0 with ``allow_zero``) or a timedelta.

    :param name: the argument name.
    :param value: seconds (number or numeric string) or a :class:`~datetime.timedelta`.
    :param allow_zero: whether 0 is accepted.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return number(name, value, minimum=0.0, exclusive_minimum=not allow_zero)


def failure_budget(value: Any, name: str = "max_consecutive_failures") -> int:
    """Return how many transient failures in a row a wait tolerates: an integer >= 1.

    :param value: the value to check (an int or a string of digits).
    :param name: the argument name.
    """
    return positive_int(name, value)


def page_size(value: Any) -> int | None:
    """Return a list call's ``pageSize`` (1 to 1000), or ``None`` for the server's default.

    :param value: the value to check.
    """
    return None if value is None else positive_int("page_size", value, maximum=MAX_PAGE_SIZE)


# -- resource names -----------------------------------------------------------------------------------


def _name_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {quote(value)}")
    return value.strip()


def _segments_ok(parts: list[str]) -> bool:
    return all(_SEGMENT.fullmatch(part) and part not in (".", "..") for part in parts)


def tuned_model_id(value: Any, *, what: str = "tuned_model_id") -> str:
    """Return a client-chosen tuned model id (a ``tunedModels/`` prefix is dropped) if the API accepts it.

    :param value: the id.
    :param what: the argument name.
    """
    bare = _name_text(value, what).removeprefix(f"{TUNED_MODELS}/")
    if not TUNED_MODEL_ID_PATTERN.fullmatch(bare):
        raise InvalidInputError(
            f"{what} {quote(value)} is invalid: at most 40 characters, lower-case letters, digits and "
            "hyphens, starting with a letter and not ending with a hyphen ([a-z]([a-z0-9-]{0,38}[a-z0-9])?)"
        )
    return bare


def tuned_model_name(value: Any, *, what: str = "tuned_model_name") -> str:
    """Return ``tunedModels/<id>`` for a tuned model given as ``tunedModels/<id>`` or a bare ``<id>``.

    :param value: the name.
    :param what: the argument name.
    """
    text = _name_text(value, what)
    bare = text.removeprefix(f"{TUNED_MODELS}/")
    if not _segments_ok([bare]):
        raise InvalidInputError(f"{what} must be 'tunedModels/<id>' or '<id>', got {quote(value)}")
    return f"{TUNED_MODELS}/{bare}"


def is_tuned_model_name(name: str) -> bool:
    """Return whether ``name`` is ``tunedModels/<id>``.

    :param name: a normalised name.
    """
    parts = name.split("/")
    return len(parts) == 2 and parts[0] == TUNED_MODELS and _segments_ok(parts[1:])


def is_operation_name(name: str) -> bool:
    """Return whether ``name`` is a tuning operation, ``tunedModels/<id>/operations/<op>``.

    :param name: a normalised name.
    """
    parts = name.split("/")
    return (
        len(parts) == 4
        and parts[0] == TUNED_MODELS
        and parts[2] == "operations"
        and _segments_ok([parts[1], parts[3]])
    )


def operation_name(value: Any, *, what: str = "operation_name") -> str:
    """Return a tuning operation name, ``tunedModels/<id>/operations/<op>``.

    :param value: the name.
    :param what: the argument name.
    """
    text = _name_text(value, what)
    if not is_operation_name(text):
        raise InvalidInputError(
            f"{what} must be 'tunedModels/<id>/operations/<operation>', got {quote(value)}"
        )
    return text


def tuning_name(value: Any, *, what: str = "name") -> str:
    """Return ``tunedModels/<id>`` or ``tunedModels/<id>/operations/<op>`` for what a wait polls.

    :param value: a tuned model (``tunedModels/<id>`` or a bare ``<id>``) or an operation name.
    :param what: the argument name.
    """
    text = _name_text(value, what).strip("/")
    if "/" not in text:
        text = f"{TUNED_MODELS}/{text}"
    if not (is_tuned_model_name(text) or is_operation_name(text)):
        raise InvalidInputError(
            f"{what} {quote(value)} is neither a tuned model ('tunedModels/<id>') nor a tuning operation "
            "('tunedModels/<id>/operations/<op>')"
        )
    return text


def tuned_model_of(name: str) -> str:
    """Return the ``tunedModels/<id>`` part of a tuned model or operation name.

    :param name: a name :func:`tuning_name` accepts.
    """
    return "/".join(tuning_name(name).split("/")[:2])


def model_name(value: Any, *, allow_tuned: bool = True, what: str = "model") -> str:
    """Return ``models/<id>`` or ``tunedModels/<id>``; a bare id is a base model (``models/<id>``).

    :param value: the name.
    :param allow_tuned: whether a tuned model is accepted.
    :param what: the argument name.
    """
    text = _name_text(value, what)
    prefix, _, rest = text.rpartition("/")
    if prefix == "":
        prefix, rest = MODELS, text
    allowed = (MODELS, TUNED_MODELS) if allow_tuned else (MODELS,)
    if prefix not in allowed or not _segments_ok([rest]):
        shapes = "'models/<id>', 'tunedModels/<id>' or '<id>'" if allow_tuned else "'models/<id>' or '<id>'"
        raise InvalidInputError(f"{what} must be {shapes}, got {quote(value)}")
    return f"{prefix}/{rest}"


def base_model_name(value: Any, *, what: str = "base_model") -> str:
    """Return ``models/<id>`` for a base model to tune, given as ``models/<id>`` or a bare id.

    :param value: the name.
    :param what: the argument name.
    """
    text = _name_text(value, what)
    if text.startswith(f"{TUNED_MODELS}/"):
        raise InvalidInputError(
            f"{what} must be a base model ('models/...'), not a tuned model: {quote(text)}"
        )
    bare = text.removeprefix(f"{MODELS}/")
    if not _BASE_MODEL_ID.fullmatch(bare):
        raise InvalidInputError(f"{what} {quote(text)} is not a model name such as 'models/text-bison-001'")
    return f"{MODELS}/{bare}"


def base_model_schema() -> dict[str, Any]:
    """The JSON-schema keywords of what :func:`base_model_name` accepts, for a trigger form's ``Param``."""
    return {"type": "string", "pattern": f"^({MODELS}/)?{_BASE_MODEL_ID.pattern}$"}


def permission_name(value: Any, *, what: str = "name") -> str:
    """Return a permission name, ``tunedModels/<id>/permissions/<permission>``.

    :param value: the name.
    :param what: the argument name.
    """
    text = _name_text(value, what)
    parts = text.split("/")
    if not (
        len(parts) == 4
        and parts[0] == TUNED_MODELS
        and parts[2] == "permissions"
        and _segments_ok(parts[1::2])
    ):
        raise InvalidInputError(
            f"{what} must be 'tunedModels/<id>/permissions/<permission>', got {quote(value)}"
        )
    return text


# -- tuned model fields -------------------------------------------------------------------------------

#: ``TunedModel.displayName``: at most 40 characters (CONTRACT.md section 7).
MAX_DISPLAY_NAME_LENGTH = 40


def display_name(value: Any, *, what: str = "display_name") -> str | None:
    """Return a tuned model's display name (``None`` passes): non-blank text of at most 40 characters.

    :param value: the display name.
    :param what: the argument name.
    """
    text = optional_string(what, value, max_length=MAX_DISPLAY_NAME_LENGTH)
    if text is not None and not text.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {quote(value)}")
    return text


def display_name_schema() -> dict[str, Any]:
    """The JSON-schema keywords of what :func:`display_name` accepts (a non-blank string of at most
    :data:`MAX_DISPLAY_NAME_LENGTH` characters), for a trigger form's ``Param``."""
    return {"type": "string", "minLength": 1, "maxLength": MAX_DISPLAY_NAME_LENGTH, "pattern": r"\S"}


# -- Vertex AI resource names -------------------------------------------------------------------------

#: A Google Cloud project id or number, and a location such as ``us-central1``.
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}")
_LOCATION = re.compile(r"[a-z][a-z0-9-]{0,62}")


def cloud_resource_name(value: Any, collection: str, *, what: str, version_suffix: bool = False) -> str:
    """Return a Google Cloud resource name ``projects/<p>/locations/<l>/<collection>/<id>``.

    :param value: the name.
    :param collection: ``tuningJobs``, ``models``, ``endpoints``...
    :param what: the argument name.
    :param version_suffix: accept (and keep) a ``@<version or alias>`` after the id (models).
    """
    text = _name_text(value, what).strip("/")
    parts = text.split("/")
    shape_ok = len(parts) == 6 and parts[0::2] == ["projects", "locations", collection]
    resource_id, _, version = parts[-1].partition("@")
    ok = (
        shape_ok
        and _PROJECT.fullmatch(parts[1]) is not None
        and _LOCATION.fullmatch(parts[3]) is not None
        and _segments_ok([resource_id])
        and (not version or (version_suffix and _segments_ok([version])))
    )
    if not ok:
        raise InvalidInputError(
            f"{what} must be 'projects/<project>/locations/<location>/{collection}/<id>', got {quote(value)}"
        )
    return text


#: The longest Vertex AI ``baseModel`` id the operators accept.
MAX_VERTEX_BASE_MODEL_LENGTH = 256
_VERTEX_PUBLISHER_PREFIX = "publishers/google/models/"


def vertex_base_model(value: Any, *, what: str = "base_model") -> str:
    """Return a Vertex AI base model id (``gemini-2.5-flash``, optionally ``publishers/google/models/...``).

    :param value: the model id.
    :param what: the argument name.
    """
    model = optional_string(what, value, max_length=MAX_VERTEX_BASE_MODEL_LENGTH)
    if not model or "/" in model.removeprefix(_VERTEX_PUBLISHER_PREFIX):
        raise InvalidInputError(f"{what} must be a model id such as 'gemini-2.5-flash', got {quote(model)}")
    return model


def vertex_base_model_schema() -> dict[str, Any]:
    """The JSON-schema keywords of what :func:`vertex_base_model` accepts, for a trigger form's ``Param``."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_VERTEX_BASE_MODEL_LENGTH,
        "pattern": f"^({re.escape(_VERTEX_PUBLISHER_PREFIX)})?[^/]+$",
    }


#: A Cloud Storage bucket name (3 to 222 characters of ``a-z 0-9 . _ -``, alphanumeric at both ends).
GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


def gcs_uri_schema() -> dict[str, Any]:
    """The JSON-schema keywords of a ``gs://<bucket>[/<prefix>]`` URI with a valid bucket name (what
    the Vertex AI operators' ``staging_uri`` takes), for a trigger form's ``Param``."""
    return {"type": "string", "pattern": f"^gs://{GCS_BUCKET.pattern}(/.*)?$"}


def tuning_job_name(value: Any, *, what: str = "tuning_job_name") -> str:
    """Return a Vertex AI tuning job name, ``projects/<p>/locations/<l>/tuningJobs/<id>``.

    :param value: the name.
    :param what: the argument name.
    """
    return cloud_resource_name(value, "tuningJobs", what=what)


def is_tuning_job_name(name: str) -> bool:
    """Return whether ``name`` is a Vertex AI tuning job name.

    :param name: a name.
    """
    try:
        tuning_job_name(name)
    except InvalidInputError:
        return False
    return True
