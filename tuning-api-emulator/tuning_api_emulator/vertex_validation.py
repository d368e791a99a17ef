"""Vertex AI create-request checks: tunable base models, adapter sizes, hyperparameters, specs,
dataset URIs, labels and the other TuningJob fields, each refused in a 400 naming the field.

The server's defaults for absent hyperparameters (:func:`default_epochs`, ``DEFAULT_ADAPTER``)
are the emulator's stand-ins: the service does not document them.
"""

from __future__ import annotations

import re
from typing import Any

from tuning_api_emulator.errors import bad_request
from tuning_api_emulator.storage_data import parse_gs_uri

#: Tunable base models and the adapter sizes each allows (CONTRACT sections 5 and 14).
_SMALL = (
    "ADAPTER_SIZE_ONE",
    "ADAPTER_SIZE_TWO",
    "ADAPTER_SIZE_FOUR",
    "ADAPTER_SIZE_EIGHT",
    "ADAPTER_SIZE_SIXTEEN",
)
_PRO = ("ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR", "ADAPTER_SIZE_EIGHT")
TUNABLE_MODELS: dict[str, tuple[str, ...]] = {
    "gemini-2.5-pro": _PRO,
    "gemini-2.5-flash": _SMALL,
    "gemini-2.5-flash-lite": _SMALL,
    "gemini-2.0-flash-001": _SMALL,
    "gemini-2.0-flash-lite-001": _SMALL,
    "gemini-3.1-flash-lite": _SMALL,
    "gemini-3.5-flash": _SMALL,
    "gemini-3.5-flash-lite": _SMALL,
    "translation-llm-002": _SMALL,
}
DEFAULT_ADAPTER = "ADAPTER_SIZE_FOUR"
#: Examples per step when counting ``tuningStepCount`` (the emulator's choice; Vertex hides it).
EXAMPLES_PER_STEP = 8
_LABEL_KEY = re.compile(r"^[\w-]{1,64}$")
_KMS = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")


def default_epochs(examples: int) -> int:
    """The epoch count picked when none is given: 5 below 1,000 examples, 3 below 10,000, else 1."""
    return 5 if examples < 1_000 else 3 if examples < 10_000 else 1


def labels_problem(labels: Any) -> str | None:
    """Why ``labels`` are not valid TuningJob labels (``None`` when they are)."""
    if not isinstance(labels, dict):
        return "labels must be a map of strings to strings."
    if len(labels) > 64:
        return "At most 64 labels are allowed."
    for key, value in labels.items():
        if not isinstance(value, str):
            return f'Label value of "{key}" must be a string.'
        if not _LABEL_KEY.match(key) or key.lower() != key or not key[0].isalpha():
            return (
                f'Invalid label key "{key}": keys must start with a lowercase letter and have at most 64 '
                "lowercase letters, digits, underscores and dashes."
            )
        if len(value) > 64 or value.lower() != value or not re.fullmatch(r"[\w-]*", value):
            return (
                f'Invalid label value "{value}" for key "{key}": values have at most 64 lowercase letters, '
                "digits, underscores and dashes."
            )
    return None


def check_hyperparameters(kind: str, base: str, hyper: dict[str, Any]) -> None:
    """Refuse hyperparameters the spec or base model does not take (drops ``ADAPTER_SIZE_UNSPECIFIED``)."""
    where = f"tuning_job.{kind}.hyper_parameters"
    for key in ("epochCount", "stepCount"):
        if key in hyper and int(hyper[key]) <= 0:
            raise bad_request(f"{key} must be positive, got {hyper[key]}.", f"{where}.{key}")
    for key in ("learningRateMultiplier", "learningRate", "beta"):
        if key in hyper and not float(hyper[key]) > 0:
            raise bad_request(f"{key} must be positive, got {hyper[key]}.", f"{where}.{key}")
    if "learningRate" in hyper and "learningRateMultiplier" in hyper:
        raise bad_request("Set learning_rate or learning_rate_multiplier, not both.", where)
    if kind != "reinforcementTuningSpec":
        for key in ("batchSize", "learningRate"):
            if key in hyper:
                raise bad_request(
                    f"{key} is only supported for open models, not for base model {base}.",
                    f"{where}.{key}",
                )
    size = hyper.get("adapterSize")
    if size not in (None, "ADAPTER_SIZE_UNSPECIFIED") and size not in TUNABLE_MODELS[base]:
        raise bad_request("The adapter size is not supported for this base model.", f"{where}.adapter_size")
    if size == "ADAPTER_SIZE_UNSPECIFIED":
        del hyper["adapterSize"]


def check_spec(kind: str, spec: dict[str, Any], location: str) -> None:
    """Refuse an incomplete evaluation config or one outside us-central1, and a missing teacher
    (distillation) or reward (reinforcement)."""
    evaluation = spec.get("evaluationConfig")
    if evaluation is not None:
        if location != "us-central1":
            raise bad_request(
                "evaluation_config is only supported in us-central1.", f"{kind}.evaluation_config"
            )
        if not evaluation.get("metrics"):
            raise bad_request("evaluation_config.metrics is required.", f"{kind}.evaluation_config.metrics")
        prefix = evaluation.get("outputConfig", {}).get("gcsDestination", {}).get("outputUriPrefix", "")
        if not prefix.startswith("gs://"):
            raise bad_request(
                "evaluation_config.output_config.gcs_destination.output_uri_prefix must be a gs:// URI.",
                f"{kind}.evaluation_config.output_config",
            )
    if kind == "distillationSpec" and not (
        spec.get("baseTeacherModel") or spec.get("tunedTeacherModelSource")
    ):
        raise bad_request(
            "A teacher model is required: set base_teacher_model or tuned_teacher_model_source.", kind
        )
    if kind == "reinforcementTuningSpec" and not (
        spec.get("singleRewardConfig") or spec.get("compositeRewardConfig")
    ):
        raise bad_request("A reward is required: set single_reward_config or composite_reward_config.", kind)


def dataset_uris(kind: str, spec: dict[str, Any]) -> tuple[str, str]:
    """``(training URI, validation URI or "")`` of a spec, each a ``gs://bucket/object``."""
    field = (
        "promptDatasetUri"
        if kind == "distillationSpec" and "promptDatasetUri" in spec
        else "trainingDatasetUri"
    )
    training = spec.get(field, "")
    if not training:
        proto = "prompt_dataset_uri" if kind == "distillationSpec" else "training_dataset_uri"
        raise bad_request(f"{proto} is required.", f"tuning_job.{kind}.{proto}")
    validation = spec.get("validationDatasetUri", "")
    for uri, proto in ((training, "training_dataset_uri"), (validation, "validation_dataset_uri")):
        if not uri:
            continue
        if re.match(r"^projects/[^/]+/locations/[^/]+/datasets/[^/]+", uri):
            raise bad_request(
                f"Vertex AI multimodal datasets ({uri}) are not supported by this emulator; "
                "use a gs:// JSONL file.",
                f"tuning_job.{kind}.{proto}",
            )
        if parse_gs_uri(uri) is None:
            raise bad_request(
                f'Invalid dataset URI "{uri}": it must be a Cloud Storage URI gs://<bucket>/<object>.',
                f"tuning_job.{kind}.{proto}",
            )
    return training, validation


def check_job_fields(request: dict[str, Any]) -> None:
    """Refuse a bad display name, labels, KMS key name or service account."""
    display_name = request.get("tunedModelDisplayName", "")
    if len(display_name) > 128:
        raise bad_request(
            "tuned_model_display_name must have at most 128 characters.", "tuned_model_display_name"
        )
    labels = request.get("labels", {})
    if (problem := labels_problem(labels)) is not None:
        raise bad_request(problem, "tuning_job.labels")
    kms = request.get("encryptionSpec", {}).get("kmsKeyName")
    if kms is not None and not _KMS.match(kms):
        raise bad_request(
            f'Invalid kms_key_name "{kms}": expected projects/*/locations/*/keyRings/*/cryptoKeys/*.',
            "tuning_job.encryption_spec.kms_key_name",
        )
    account = request.get("serviceAccount")
    if account is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", account):
        raise bad_request(f'Invalid service_account "{account}".', "tuning_job.service_account")
