"""Validation of tuning operator arguments, done before any API call.

Every check raises :class:`~airflow_provider_tuning.exceptions.InvalidInputError` with a message
naming the argument and the bad value. Numbers may arrive as strings (a rendered Jinja template is
a string), so numeric strings are accepted and converted; booleans are never numbers here.
"""

from __future__ import annotations

import math
import re
from typing import Any

from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.operators._ids import is_valid_tuned_model_id

#: API versions that serve tuned-model CRUD (``v1`` has none, CONTRACT.md section 8).
TUNING_API_VERSIONS = ("v1beta", "v1beta3")
MAX_DISPLAY_NAME_LENGTH = 40
_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9.\-]*")
_TUNED_PREFIX = "tunedModels/"
_MODEL_PREFIX = "models/"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def to_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 1, accepting an int or a string of digits.

    :param name: the argument name, for the message.
    :param value: the value to check.
    """
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def to_float(
    name: str,
    value: Any,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    exclusive_minimum: bool = True,
) -> float:
    """Return ``value`` as a finite float within bounds, accepting a number or a numeric string.

    :param name: the argument name, for the message.
    :param value: the value to check.
    :param minimum: the lower bound.
    :param maximum: the upper bound (inclusive), if any.
    :param exclusive_minimum: whether ``minimum`` itself is rejected.
    """
    number: float | None = None
    if _is_number(value):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    low_ok = number > minimum if exclusive_minimum else number >= minimum
    high_ok = maximum is None or number <= maximum
    if not (low_ok and high_ok):
        low = f"> {minimum}" if exclusive_minimum else f">= {minimum}"
        rule = low if maximum is None else f"{low} and <= {maximum}"
        raise InvalidInputError(f"{name} must be {rule}, got {value!r}")
    return number


def normalize_base_model(value: Any) -> str:
    """Return ``models/<id>`` for a base model given as ``models/<id>`` or a bare id.

    :param value: the ``base_model`` argument.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"base_model must be a non-empty string such as 'models/gemini-1.5-flash-001-tuning', "
            f"got {value!r}"
        )
    value = value.strip()
    if value.startswith(_TUNED_PREFIX):
        raise InvalidInputError(
            f"base_model must be a base model ('models/...'), not a tuned model: {value!r}"
        )
    model_id = value[len(_MODEL_PREFIX) :] if value.startswith(_MODEL_PREFIX) else value
    if not _MODEL_ID.fullmatch(model_id):
        raise InvalidInputError(f"base_model {value!r} is not a model name such as 'models/text-bison-001'")
    return f"{_MODEL_PREFIX}{model_id}"


def is_palm_model(base_model: str) -> bool:
    """Return whether ``base_model`` (``models/<id>``) is a PaLM text model such as ``text-bison-001``.

    :param base_model: a normalised base model name.
    """
    return "bison" in base_model.removeprefix(_MODEL_PREFIX)


def resolve_api_version(base_model: str, api_version: Any) -> str:
    """Return the API version to tune ``base_model`` with.

    :param base_model: a normalised base model name.
    :param api_version: the user's choice, or ``None`` for ``v1beta3`` (PaLM) or ``v1beta`` (Gemini).
    """
    if api_version is None or api_version == "":
        return "v1beta3" if is_palm_model(base_model) else "v1beta"
    if api_version not in TUNING_API_VERSIONS:
        raise InvalidInputError(
            f"api_version must be one of {', '.join(TUNING_API_VERSIONS)} for tuning, got {api_version!r}"
        )
    return str(api_version)


def normalize_tuned_model_name(value: Any, *, argument: str = "tuned_model_name") -> str:
    """Return ``tunedModels/<id>`` for a tuned model given as ``tunedModels/<id>`` or a bare id.

    :param value: the name.
    :param argument: the argument name, for the message.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{argument} must be a non-empty string, got {value!r}")
    value = value.strip()
    bare = value[len(_TUNED_PREFIX) :] if value.startswith(_TUNED_PREFIX) else value
    if not bare or "/" in bare:
        raise InvalidInputError(f"{argument} must be 'tunedModels/<id>' or '<id>', got {value!r}")
    return f"{_TUNED_PREFIX}{bare}"


def validate_tuned_model_id(value: Any) -> str:
    """Return ``value`` (a bare id; a ``tunedModels/`` prefix is dropped) if it satisfies the API's rule.

    :param value: the ``tuned_model_id`` argument.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"tuned_model_id must be a string, got {value!r}")
    bare = value.strip().removeprefix(_TUNED_PREFIX)
    if not is_valid_tuned_model_id(bare):
        raise InvalidInputError(
            f"tuned_model_id {value!r} is invalid: at most 40 characters, lower-case letters, digits and "
            "hyphens, starting with a letter and not ending with a hyphen ([a-z]([a-z0-9-]{0,38}[a-z0-9])?)"
        )
    return bare


def validate_display_name(value: Any) -> str | None:
    """Return the display name if it is a string of at most 40 characters (``None`` passes).

    :param value: the ``display_name`` argument.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"display_name must be a non-empty string, got {value!r}")
    if len(value) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInputError(
            f"display_name must be at most {MAX_DISPLAY_NAME_LENGTH} characters, got {len(value)}: {value!r}"
        )
    return value


def validate_description(value: Any) -> str | None:
    """Return the description if it is a string (``None`` passes).

    :param value: the ``description`` argument.
    """
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"description must be a string, got {value!r}")
    return value


def build_hyperparameters(
    *,
    api_version: str,
    epoch_count: Any = None,
    batch_size: Any = None,
    learning_rate: Any = None,
    learning_rate_multiplier: Any = None,
) -> dict[str, Any]:
    """Return the ``Hyperparameters`` JSON; unset values are left out so the API uses its defaults.

    :param api_version: the resolved API version (``learningRateMultiplier`` is ``v1beta`` only).
    :param epoch_count: positive integer.
    :param batch_size: positive integer.
    :param learning_rate: positive float; exclusive with ``learning_rate_multiplier``.
    :param learning_rate_multiplier: positive float (``v1beta`` only).
    """
    if learning_rate is not None and learning_rate_multiplier is not None:
        raise InvalidInputError("set learning_rate or learning_rate_multiplier, not both")
    if learning_rate_multiplier is not None and api_version != "v1beta":
        raise InvalidInputError(
            f"learning_rate_multiplier exists only in v1beta, not in {api_version}; use learning_rate"
        )
    result: dict[str, Any] = {}
    if epoch_count is not None:
        result["epochCount"] = to_positive_int("epoch_count", epoch_count)
    if batch_size is not None:
        result["batchSize"] = to_positive_int("batch_size", batch_size)
    if learning_rate is not None:
        result["learningRate"] = to_float("learning_rate", learning_rate)
    if learning_rate_multiplier is not None:
        result["learningRateMultiplier"] = to_float("learning_rate_multiplier", learning_rate_multiplier)
    return result


def build_sampling(*, temperature: Any = None, top_p: Any = None, top_k: Any = None) -> dict[str, Any]:
    """Return the ``temperature``/``topP``/``topK`` fields of a TunedModel that were set.

    :param temperature: float in [0, 1].
    :param top_p: float in [0, 1].
    :param top_k: positive integer.
    """
    result: dict[str, Any] = {}
    if temperature is not None:
        result["temperature"] = to_float("temperature", temperature, maximum=1.0, exclusive_minimum=False)
    if top_p is not None:
        result["topP"] = to_float("top_p", top_p, maximum=1.0, exclusive_minimum=False)
    if top_k is not None:
        result["topK"] = to_positive_int("top_k", top_k)
    return result
