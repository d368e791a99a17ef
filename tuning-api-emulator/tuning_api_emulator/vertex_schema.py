"""Vertex AI request schemas (``google.cloud.aiplatform.{v1,v1beta1}``) for the proto3-JSON parser.

Field names and versions follow the discovery documents (``aiplatform.v1.json`` and
``aiplatform.v1beta1.json``, revision 20261106), which are newer than the public protos: v1 has
``preferenceOptimizationSpec``; v1beta1 adds distillation, reinforcement, full fine-tuning,
partner and Veo specs. Output-only fields are accepted and ignored, as the service does; nested
configurations the emulator does not act on (reward scorers, autoraters, tools) are ``any``.
"""

from __future__ import annotations

import functools
from typing import Any

from tuning_api_emulator.schema import Enum, Field, Msg

ADAPTER_SIZES = (  # in proto number order (ADAPTER_SIZE_TWO is 6)
    "ADAPTER_SIZE_UNSPECIFIED",
    "ADAPTER_SIZE_ONE",
    "ADAPTER_SIZE_FOUR",
    "ADAPTER_SIZE_EIGHT",
    "ADAPTER_SIZE_SIXTEEN",
    "ADAPTER_SIZE_THIRTY_TWO",
    "ADAPTER_SIZE_TWO",
)
TUNING_MODES = ("TUNING_MODE_UNSPECIFIED", "TUNING_MODE_FULL", "TUNING_MODE_PEFT_ADAPTER")
THINKING_LEVELS = ("REINFORCEMENT_TUNING_THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH")
#: The output-only TuningJob fields (accepted on input, ignored), per version.
OUTPUT_ONLY = {
    "v1": [
        "name",
        "state",
        "create_time",
        "start_time",
        "end_time",
        "update_time",
        "error",
        "experiment",
        "tuned_model",
        "tuning_data_stats",
        "evaluate_dataset_runs",
        "gcs_metrics_uri",
    ],
    "v1beta1": [
        "name",
        "state",
        "create_time",
        "start_time",
        "end_time",
        "update_time",
        "error",
        "experiment",
        "tuned_model",
        "tuning_data_stats",
        "evaluate_dataset_runs",
        "gcs_metrics_uri",
        "pipeline_job",
        "tuning_job_state",
        "tuning_job_metadata",
        "satisfies_pzs",
        "satisfies_pzi",
    ],
}
#: The tuning spec fields (JSON names) each version accepts.
SPECS = {
    "v1": ("supervisedTuningSpec", "preferenceOptimizationSpec"),
    "v1beta1": (
        "supervisedTuningSpec",
        "preferenceOptimizationSpec",
        "distillationSpec",
        "reinforcementTuningSpec",
        "fullFineTuningSpec",
        "partnerModelTuningSpec",
        "veoTuningSpec",
        "veoLoraTuningSpec",
    ),
}


def _numbers(*names: str) -> dict[str, int]:
    return {name: number for number, name in enumerate(names)}


#: Enum numbers per response field name, for ``$alt=json;enum-encoding=int`` (what
#: google-cloud-aiplatform's REST transport asks for).
ENUM_NUMBERS: dict[str, dict[str, int]] = {
    "state": _numbers(
        "JOB_STATE_UNSPECIFIED",
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLING",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_PAUSED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_UPDATING",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    ),
    "tuningJobState": _numbers(  # discovery order (the published protos lack this enum)
        "TUNING_JOB_STATE_UNSPECIFIED",
        "TUNING_JOB_STATE_WAITING_FOR_QUOTA",
        "TUNING_JOB_STATE_PROCESSING_DATASET",
        "TUNING_JOB_STATE_WAITING_FOR_CAPACITY",
        "TUNING_JOB_STATE_TUNING",
        "TUNING_JOB_STATE_POST_PROCESSING",
    ),
    "adapterSize": _numbers(*ADAPTER_SIZES),
    "tuningMode": _numbers(*TUNING_MODES),
    "thinkingLevel": _numbers(*THINKING_LEVELS),
    "finishReason": _numbers("FINISH_REASON_UNSPECIFIED", "STOP", "MAX_TOKENS"),
    "trafficType": {"TRAFFIC_TYPE_UNSPECIFIED": 0, "ON_DEMAND": 1, "PROVISIONED_THROUGHPUT": 2},
    "sourceType": {"MODEL_SOURCE_TYPE_UNSPECIFIED": 0, "GENIE": 5},
}


def _f(proto: str, kind: str = "string", **kw: Any) -> Field:
    return Field(proto, kind, **kw)


def _msg(pkg: str, name: str, *fields: Field) -> Msg:
    return Msg(f"{pkg}.{name}", fields)


@functools.lru_cache(maxsize=4)
def tuning_job_schema(version: str) -> Msg:
    """``TuningJob`` as ``tuningJobs.create`` accepts it in ``version`` (``v1`` or ``v1beta1``)."""
    pkg = f"google.cloud.aiplatform.{version}"
    beta = version == "v1beta1"
    adapter = Enum(f"{pkg}.SupervisedHyperParameters.AdapterSize", ADAPTER_SIZES)
    mode = Enum(f"{pkg}.SupervisedTuningSpec.TuningMode", TUNING_MODES)
    common_hyper = [
        _f("epoch_count", "int64"),
        _f("learning_rate_multiplier", "float"),
        _f("adapter_size", "enum", enum=adapter),
    ]
    beta_hyper = [_f("batch_size", "int64"), _f("learning_rate", "float")] if beta else []
    supervised_hyper = _msg(pkg, "SupervisedHyperParameters", *common_hyper, *beta_hyper)
    gcs_destination = _msg(pkg, "GcsDestination", _f("output_uri_prefix"))
    output_config = _msg(pkg, "OutputConfig", _f("gcs_destination", "message", message=gcs_destination))
    evaluation = _msg(
        pkg,
        "EvaluationConfig",
        _f("metrics", "any", repeated=True),
        _f("output_config", "message", message=output_config),
        _f("autorater_config", "any"),
        _f("inference_generation_config", "any"),
        _f("dataset_custom_metrics", "any", repeated=True),
    )
    datasets = [_f("training_dataset_uri"), _f("validation_dataset_uri")]
    supervised = _msg(
        pkg,
        "SupervisedTuningSpec",
        *datasets,
        _f("hyper_parameters", "message", message=supervised_hyper),
        _f("export_last_checkpoint_only", "bool"),
        _f("evaluation_config", "message", message=evaluation),
        *([_f("tuning_mode", "enum", enum=mode)] if beta else []),
    )
    preference_hyper = _msg(pkg, "PreferenceOptimizationHyperParameters", *common_hyper, _f("beta", "float"))
    preference = _msg(
        pkg,
        "PreferenceOptimizationSpec",
        *datasets,
        _f("hyper_parameters", "message", message=preference_hyper),
        _f("export_last_checkpoint_only", "bool"),
    )
    specs = [
        _f("supervised_tuning_spec", "message", message=supervised, oneof="tuning_spec"),
        _f("preference_optimization_spec", "message", message=preference, oneof="tuning_spec"),
    ]
    if beta:
        specs += _beta_specs(pkg, adapter, mode, datasets, supervised_hyper)
    pre_tuned = _msg(pkg, "PreTunedModel", _f("tuned_model_name"), _f("checkpoint_id"), _f("base_model"))
    encryption = _msg(pkg, "EncryptionSpec", _f("kms_key_name"))
    fields = [
        _f("base_model", oneof="source_model"),
        _f("pre_tuned_model", "message", message=pre_tuned, oneof="source_model"),
        *specs,
        _f("tuned_model_display_name"),
        _f("description"),
        _f("labels", "any"),
        _f("encryption_spec", "message", message=encryption),
        _f("service_account"),
        *(_f(name, "any") for name in OUTPUT_ONLY[version]),
    ]
    if beta:
        fields += [_f("custom_base_model", oneof="source_model"), _f("output_uri")]
    return _msg(pkg, "TuningJob", *fields)


def _beta_specs(
    pkg: str, adapter: Enum, mode: Enum, datasets: list[Field], supervised_hyper: Msg
) -> list[Field]:
    """The v1beta1-only tuning specs."""
    distillation_hyper = _msg(
        pkg,
        "DistillationHyperParameters",
        _f("epoch_count", "int64"),
        _f("learning_rate_multiplier", "float"),
        _f("adapter_size", "enum", enum=adapter),
        _f("batch_size", "int64"),
        _f("learning_rate", "float"),
        _f("sft_loss_weight_multiplier", "float"),  # sent by google-genai; not in discovery
    )
    distillation = _msg(
        pkg,
        "DistillationSpec",
        _f("base_teacher_model", oneof="teacher_model"),
        _f("tuned_teacher_model_source", oneof="teacher_model"),
        _f("prompt_dataset_uri"),
        *datasets,
        _f("hyper_parameters", "message", message=distillation_hyper),
        _f("student_model"),
        _f("pipeline_root_directory"),
        _f("tuning_mode", "enum", enum=mode),
    )
    thinking = Enum(f"{pkg}.ReinforcementTuningHyperParameters.ThinkingLevel", THINKING_LEVELS)
    rl_hyper = _msg(
        pkg,
        "ReinforcementTuningHyperParameters",
        _f("epoch_count", "int64"),
        _f("step_count", "int64"),
        _f("learning_rate_multiplier", "float"),
        _f("adapter_size", "enum", enum=adapter),
        _f("batch_size", "int32"),
        _f("samples_per_prompt", "int32"),
        _f("evaluate_interval", "int32"),
        _f("checkpoint_interval", "int32"),
        _f("max_output_tokens", "int32"),
        _f("thinking_budget", "int32"),
        _f("thinking_level", "enum", enum=thinking),
    )
    reinforcement = _msg(
        pkg,
        "ReinforcementTuningSpec",
        *datasets,
        _f("single_reward_config", "any", oneof="reward_config"),
        _f("composite_reward_config", "any", oneof="reward_config"),
        _f("hyper_parameters", "message", message=rl_hyper),
    )
    full = _msg(
        pkg,
        "FullFineTuningSpec",
        *datasets,
        _f("hyper_parameters", "message", message=supervised_hyper),
    )
    partner = _msg(pkg, "PartnerModelTuningSpec", *datasets, _f("hyper_parameters", "any"))
    return [
        _f("distillation_spec", "message", message=distillation, oneof="tuning_spec"),
        _f("reinforcement_tuning_spec", "message", message=reinforcement, oneof="tuning_spec"),
        _f("full_fine_tuning_spec", "message", message=full, oneof="tuning_spec"),
        _f("partner_model_tuning_spec", "message", message=partner, oneof="tuning_spec"),
        _f("veo_tuning_spec", "any", oneof="tuning_spec"),
        _f("veo_lora_tuning_spec", "any", oneof="tuning_spec"),
    ]


@functools.lru_cache(maxsize=4)
def generate_content_schema(version: str) -> Msg:
    """``GenerateContentRequest`` (parts, tools and configs are passed through unparsed)."""
    pkg = f"google.cloud.aiplatform.{version}"
    content = _msg(pkg, "Content", _f("role"), _f("parts", "any", repeated=True))
    return _msg(
        pkg,
        "GenerateContentRequest",
        _f("model"),
        _f("contents", "message", message=content, repeated=True),
        _f("system_instruction", "message", message=content),
        _f("tools", "any", repeated=True),
        _f("tool_config", "any"),
        _f("safety_settings", "any", repeated=True),
        _f("generation_config", "any"),
        _f("labels", "any"),
        _f("cached_content"),
        _f("model_armor_config", "any"),
        _f("output_config", "any"),
        _f("continuation_token"),
    )


@functools.lru_cache(maxsize=4)
def undeploy_model_schema(version: str) -> Msg:
    """``UndeployModelRequest`` (the endpoint comes from the path)."""
    pkg = f"google.cloud.aiplatform.{version}"
    return _msg(pkg, "UndeployModelRequest", _f("deployed_model_id"), _f("traffic_split", "any"))


@functools.lru_cache(maxsize=4)
def cancel_schema(version: str) -> Msg:
    """``CancelTuningJobRequest`` (no fields besides the name from the path)."""
    return _msg(f"google.cloud.aiplatform.{version}", "CancelTuningJobRequest", _f("name"))
