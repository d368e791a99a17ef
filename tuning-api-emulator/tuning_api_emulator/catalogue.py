"""The base models the emulator serves (``models/*``), with their sampling defaults.

Tunable models list ``createTunedModel`` in ``supportedGenerationMethods``. Tuned models inherit
``temperature``/``topP``/``topK`` from their base model (text-bison: 0.7/0.95/40, as the PaLM seed shows).
Gemini models are served in ``v1beta`` and ``v1``; PaLM ``text-bison-001`` in ``v1beta3`` and ``v1beta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuning_api_emulator.errors import StatusError, not_found

GEMINI_VERSIONS = frozenset({"v1beta", "v1"})
PALM_VERSIONS = frozenset({"v1beta", "v1beta3"})


@dataclass(frozen=True)
class BaseModel:
    """One ``Model`` resource."""

    name: str
    base_model_id: str
    version: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    methods: tuple[str, ...]
    temperature: float
    top_p: float
    top_k: int | None
    max_temperature: float | None
    versions: frozenset[str]

    @property
    def model_id(self) -> str:
        """The id after ``models/``."""
        return self.name.split("/", 1)[1]

    def supports(self, method: str) -> bool:
        """Whether ``method`` (e.g. ``generateContent``) is in ``supportedGenerationMethods``."""
        return method in self.methods

    def render(self, api_version: str) -> dict[str, Any]:
        """The ``Model`` JSON for ``api_version`` (``maxTemperature`` is not in v1beta3)."""
        body: dict[str, Any] = {
            "name": self.name,
            "baseModelId": self.base_model_id,
            "version": self.version,
            "displayName": self.display_name,
            "description": self.description,
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": self.output_token_limit,
            "supportedGenerationMethods": list(self.methods),
            "temperature": self.temperature,
            "topP": self.top_p,
        }
        if self.top_k is not None:
            body["topK"] = self.top_k
        if self.max_temperature is not None and api_version != "v1beta3":
            body["maxTemperature"] = self.max_temperature
        return body


_GEMINI_METHODS = ("generateContent", "countTokens", "createTunedModel")

CATALOGUE: tuple[BaseModel, ...] = (
    BaseModel(
        name="models/gemini-1.0-pro-001",
        base_model_id="gemini-1.0-pro",
        version="001",
        display_name="Gemini 1.0 Pro 001 (Tuning)",
        description="The best model for scaling across a wide range of tasks. This is a stable model "
        "that supports tuning.",
        input_token_limit=30720,
        output_token_limit=2048,
        methods=_GEMINI_METHODS,
        temperature=0.9,
        top_p=1.0,
        top_k=None,
        max_temperature=None,
        versions=GEMINI_VERSIONS,
    ),
    BaseModel(
        name="models/gemini-1.5-flash-001-tuning",
        base_model_id="gemini-1.5-flash",
        version="001",
        display_name="Gemini 1.5 Flash 001 Tuning",
        description="Version of Gemini 1.5 Flash that supports tuning, our fast and versatile multimodal "
        "model for scaling across diverse tasks, released in May of 2024.",
        input_token_limit=16384,
        output_token_limit=8192,
        methods=_GEMINI_METHODS,
        temperature=1.0,
        top_p=0.95,
        top_k=64,
        max_temperature=2.0,
        versions=GEMINI_VERSIONS,
    ),
    BaseModel(
        name="models/gemini-1.5-flash-001",
        base_model_id="gemini-1.5-flash",
        version="001",
        display_name="Gemini 1.5 Flash 001",
        description="Fast and versatile multimodal model for scaling across diverse tasks.",
        input_token_limit=1000000,
        output_token_limit=8192,
        methods=("generateContent", "countTokens", "createCachedContent", "createTunedModel"),
        temperature=1.0,
        top_p=0.95,
        top_k=64,
        max_temperature=2.0,
        versions=GEMINI_VERSIONS,
    ),
    BaseModel(
        name="models/gemini-1.5-pro-001",
        base_model_id="gemini-1.5-pro",
        version="001",
        display_name="Gemini 1.5 Pro 001",
        description="Mid-size multimodal model that supports up to 2 million tokens (not tunable).",
        input_token_limit=2000000,
        output_token_limit=8192,
        methods=("generateContent", "countTokens", "createCachedContent"),
        temperature=1.0,
        top_p=0.95,
        top_k=64,
        max_temperature=2.0,
        versions=GEMINI_VERSIONS,
    ),
    BaseModel(
        name="models/text-bison-001",
        base_model_id="text-bison",
        version="001",
        display_name="PaLM 2 (Legacy)",
        description="A legacy model that understands text and generates text as an output",
        input_token_limit=8196,
        output_token_limit=1024,
        methods=("generateText", "countTextTokens", "createTunedModel"),
        temperature=0.7,
        top_p=0.95,
        top_k=40,
        max_temperature=None,
        versions=PALM_VERSIONS,
    ),
)

_BY_NAME = {model.name: model for model in CATALOGUE}


def normalize_model_name(name: str) -> str:
    """``gemini-1.0-pro-001`` or ``models/gemini-1.0-pro-001`` -> ``models/gemini-1.0-pro-001``."""
    return name if name.startswith("models/") else f"models/{name}"


def find(name: str, api_version: str) -> BaseModel | None:
    """The base model called ``name`` if ``api_version`` serves it."""
    model = _BY_NAME.get(normalize_model_name(name))
    if model is None or api_version not in model.versions:
        return None
    return model


def get(name: str, api_version: str) -> BaseModel:
    """Like :func:`find`, raising 404 NOT_FOUND when absent."""
    model = find(name, api_version)
    if model is None:
        raise not_found(f"Model is not found: {normalize_model_name(name)} for api version {api_version}")
    return model


def listed(api_version: str) -> list[BaseModel]:
    """The models ``models.list`` shows in ``api_version``, in name order."""
    return sorted((m for m in CATALOGUE if api_version in m.versions), key=lambda m: m.name)


def unsupported(model: str, api_version: str, method: str) -> StatusError:
    """Google's 404 for a model that does not support ``method``."""
    return not_found(
        f"{model} is not found for API version {api_version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods."
    )


def any_version(name: str) -> BaseModel | None:
    """The base model called ``name`` regardless of version."""
    return _BY_NAME.get(normalize_model_name(name))
