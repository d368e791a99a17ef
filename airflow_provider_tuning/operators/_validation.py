"""Request builders of the tuning operators, and how their input errors fail a task.

Names and argument checks live in :mod:`airflow_provider_tuning.validation`; this module only builds
the parts of a create request from already named arguments, and turns the errors a retry cannot
change into ``AirflowFailException`` (no retry), keeping the specific error as ``__cause__``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import InvalidInputError, TrainingDataError, TuningFailedError

#: API versions that serve tuned-model CRUD (``v1`` has none, docs/api-contract.md section 8).
TUNING_API_VERSIONS = ("v1beta", "v1beta3")

_F = TypeVar("_F", bound=Callable[..., Any])


@contextmanager
def fail_without_retry(*, failed_jobs: bool = False) -> Iterator[None]:
    """Turn input errors (and, with ``failed_jobs``, a failed tuning job) into ``AirflowFailException``.

    A retry would meet the same input, or the same FAILED model, and fail the same way.

    :param failed_jobs: also fail without retry on :class:`TuningFailedError`.
    """
    retry_proof: tuple[type[Exception], ...] = (InvalidInputError, TrainingDataError)
    if failed_jobs:
        retry_proof += (TuningFailedError,)
    try:
        yield
    except retry_proof as err:
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err


def input_errors_fail_without_retry(method: _F) -> _F:
    """Decorate ``execute``/``execute_complete``: input errors (ours or the hook's, all raised before
    any HTTP request) fail the task without retry; see :func:`fail_without_retry`."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fail_without_retry():
            return method(*args, **kwargs)

    return cast("_F", wrapper)


def failures_fail_without_retry(method: _F) -> _F:
    """Decorate a tuning operator's ``execute``/``execute_complete``: input errors, and a tuning job that
    ended FAILED (unless the operator's ``recreate_on_failure`` is set: then a retry may create the model
    again), fail the task without retry; see :func:`fail_without_retry`."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with fail_without_retry(failed_jobs=not getattr(self, "recreate_on_failure", False)):
            return method(self, *args, **kwargs)

    return cast("_F", wrapper)


def is_palm_model(base_model: str) -> bool:
    """Return whether ``base_model`` (``models/<id>``) is a PaLM text model such as ``text-bison-001``.

    :param base_model: a normalised base model name.
    """
    return "bison" in base_model.removeprefix(f"{validation.MODELS}/")


def resolve_api_version(base_model: str, api_version: Any) -> str:
    """Return the API version to tune ``base_model`` with.

    :param base_model: a normalised base model name.
    :param api_version: the user's choice, or ``None`` for ``v1beta3`` (PaLM) or ``v1beta`` (Gemini).
    """
    if api_version is None or api_version == "":
        return "v1beta3" if is_palm_model(base_model) else "v1beta"
    if api_version not in TUNING_API_VERSIONS:
        raise InvalidInputError(
            f"api_version must be one of {', '.join(TUNING_API_VERSIONS)} for tuning, "
            f"got {validation.quote(api_version)}"
        )
    return str(api_version)


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
    :param epoch_count: positive integer (int32).
    :param batch_size: positive integer (int32).
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
    for limit, key, value in (
        (validation.EPOCH_COUNT, "epochCount", epoch_count),
        (validation.BATCH_SIZE, "batchSize", batch_size),
        (validation.LEARNING_RATE, "learningRate", learning_rate),
        (validation.LEARNING_RATE_MULTIPLIER, "learningRateMultiplier", learning_rate_multiplier),
    ):
        if value is not None:
            result[key] = limit.check(value)
    return result


def build_sampling(*, temperature: Any = None, top_p: Any = None, top_k: Any = None) -> dict[str, Any]:
    """Return the ``temperature``/``topP``/``topK`` fields of a TunedModel that were set.

    :param temperature: float in [0, 1].
    :param top_p: float in [0, 1].
    :param top_k: positive integer.
    """
    result: dict[str, Any] = {}
    if temperature is not None:
        result["temperature"] = validation.number("temperature", temperature, minimum=0.0, maximum=1.0)
    if top_p is not None:
        result["topP"] = validation.number("top_p", top_p, minimum=0.0, maximum=1.0)
    if top_k is not None:
        result["topK"] = validation.positive_int("top_k", top_k)
    return result
