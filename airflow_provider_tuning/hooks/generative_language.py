"""``GenerativeLanguageHook``: one method per REST call of the Generative Language tuning API.

Methods return plain dicts (the API's JSON). Requests follow ``CONTRACT.md``: ``tunedModelId`` and
``updateMask`` are query parameters, the create body is the ``TunedModel`` itself, list methods
follow ``nextPageToken``. Importing this module is cheap: requests and google-auth load on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_tuning import validation
from airflow_provider_tuning.constants import LEGACY_CONN_TYPE
from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.hooks.base import TuningApiHook
from airflow_provider_tuning.hooks.connection import (
    API_VERSIONS,
    DEFAULT_API_VERSION,
    DEFAULT_CONN_ID,
    ConnectionHookAttributes,
    ConnectionSettings,
)
from airflow_provider_tuning.hooks.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow_provider_tuning.hooks.ratelimit import SlidingWindowRateLimiter

# Which API versions serve each group of calls (CONTRACT.md section 2).
_TUNED_MODEL_VERSIONS = ("v1beta", "v1beta3")
_ALL_VERSIONS = API_VERSIONS
_GENERATE_CONTENT_VERSIONS = ("v1", "v1beta")
_GENERATE_TEXT_VERSIONS = ("v1beta", "v1beta3")
_TEST_CONNECTION_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.5, max_delay=2.0)
_quote = validation.quote


def _text_content(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}]}


class GenerativeLanguageHook(ConnectionHookAttributes, TuningApiHook):
    """Calls the Generative Language API (tuned models, operations, generation, permissions).

    :param conn_id: the Airflow connection (type ``generativelanguage``).
    :param api_version: default API version for this hook; a method's ``api_version`` wins,
        then this, then the connection's, then ``v1beta``.
    :param timeout: ``(connect, read)`` timeout of every request, in seconds.
    :param retry: retry policy for 408/429/5xx answers and connection errors.
    :param pool_size: connections kept open per host: at least the number of concurrent calls.
    :param rate_limiter: a limiter every HTTP request of this hook (retries included) must pass.
    """

    hook_name = "Generative Language (tuning)"

    def __init__(
        self,
        conn_id: str = DEFAULT_CONN_ID,
        api_version: str | None = None,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        pool_size: int = 10,
        rate_limiter: SlidingWindowRateLimiter | None = None,
    ) -> None:
        if api_version is not None and api_version not in API_VERSIONS:
            raise InvalidInputError(
                f"unknown api_version {_quote(api_version)}; expected one of {', '.join(API_VERSIONS)}"
            )
        super().__init__(
            conn_id, timeout=timeout, retry=retry, pool_size=pool_size, rate_limiter=rate_limiter
        )
        self.api_version = api_version

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r}, api_version={self.api_version!r})"

    def read_settings(self, conn: Any) -> ConnectionSettings:
        """Parse a ``generativelanguage`` connection.

        :param conn: the Airflow connection.
        """
        return ConnectionSettings.from_connection(conn)

    def default_api_version(self) -> str:
        """The version used when a call names none: the hook's, else the connection's."""
        return self.api_version or self.settings.api_version or DEFAULT_API_VERSION

    # --- helpers ---------------------------------------------------------------------------------

    def _version(self, requested: str | None, allowed: Sequence[str], what: str) -> str:
        """Resolve the API version (method > hook > connection > v1beta) and check ``what`` exists."""
        version = requested or self.default_api_version()
        if version not in API_VERSIONS:
            raise InvalidInputError(
                f"unknown api_version {_quote(version)}; expected one of {', '.join(API_VERSIONS)}"
            )
        if version not in allowed:
            raise InvalidInputError(
                f"{what} is not available in the {version} API; use {' or '.join(allowed)}"
            )
        return version

    @staticmethod
    def _mapping(value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{what} must be a dict, got {type(value).__name__}")
        return dict(value)

    @staticmethod
    def _update_mask(update_mask: str | Sequence[str] | None) -> str | None:
        if update_mask is None:
            return None
        if isinstance(update_mask, str):
            paths = [p.strip() for p in update_mask.split(",")]
        elif isinstance(update_mask, Sequence) and all(isinstance(p, str) for p in update_mask):
            paths = [p.strip() for p in update_mask]
        else:
            raise InvalidInputError("update_mask must be a comma-separated string or a list of field paths")
        paths = [p for p in paths if p]
        if not paths:
            raise InvalidInputError("update_mask is empty; leave it out or name at least one field")
        return ",".join(paths)

    # --- tuned models ----------------------------------------------------------------------------

    def create_tuned_model(
        self,
        tuned_model: dict[str, Any],
        tuned_model_id: str | None = None,
        *,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """Start tuning: ``POST /{version}/tunedModels?tunedModelId=``; the body is the TunedModel.

        Without ``tuned_model_id`` the server picks the id, and a dropped connection is not retried
        (a retry could create a second model).

        :param tuned_model: the TunedModel (``baseModel``, ``tuningTask``, ``displayName``, ...).
        :param tuned_model_id: the id to create, ``[a-z]([a-z0-9-]{0,38}[a-z0-9])?``.
        :param api_version: ``v1beta`` or ``v1beta3``.
        :return: the long-running Operation.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "tunedModels.create")
        body = self._mapping(tuned_model, "tuned_model")
        if tuned_model_id is not None:
            tuned_model_id = validation.tuned_model_id(tuned_model_id)
        return self._call(
            "POST",
            f"/{version}/tunedModels",
            params={"tunedModelId": tuned_model_id},
            body=body,
            retry_connection_errors=tuned_model_id is not None,
        )

    def get_tuned_model(self, name: str, *, api_version: str | None = None) -> dict[str, Any]:
        """``GET /{version}/tunedModels/<id>``.

        :param name: ``tunedModels/<id>`` or ``<id>``.
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "tunedModels.get")
        return self._call("GET", f"/{version}/{validation.tuned_model_name(name)}")

    def list_tuned_models(
        self, *, page_size: int | None = None, filter: str | None = None, api_version: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Iterate over every tuned model, following ``nextPageToken``.

        :param page_size: models per page (server default 10, cap 1000).
        :param filter: full-text filter (``v1beta`` only), e.g. ``owner:me``.
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "tunedModels.list")
        page_size = validation.page_size(page_size)
        if filter is not None and version != "v1beta":
            raise InvalidInputError(f"tunedModels.list filter is only available in v1beta, not {version}")
        return self._paginate(
            f"/{version}/tunedModels", "tunedModels", {"pageSize": page_size, "filter": filter}
        )

    def update_tuned_model(
        self,
        name: str,
        tuned_model: dict[str, Any],
        update_mask: str | Sequence[str] | None = None,
        *,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """``PATCH /{version}/tunedModels/<id>?updateMask=``; the body is the (partial) TunedModel.

        :param name: ``tunedModels/<id>`` or ``<id>``.
        :param tuned_model: the fields to change.
        :param update_mask: field paths, as a list or a comma-separated string (required in v1beta3).
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "tunedModels.patch")
        path = f"/{version}/{validation.tuned_model_name(name)}"
        body = self._mapping(tuned_model, "tuned_model")
        mask = self._update_mask(update_mask)
        if mask is None and version == "v1beta3":
            raise InvalidInputError("update_mask is required by tunedModels.patch in v1beta3")
        return self._call("PATCH", path, params={"updateMask": mask}, body=body)

    def delete_tuned_model(self, name: str, *, api_version: str | None = None) -> dict[str, Any]:
        """``DELETE /{version}/tunedModels/<id>``; returns ``{}``.

        :param name: ``tunedModels/<id>`` or ``<id>``.
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "tunedModels.delete")
        return self._call("DELETE", f"/{version}/{validation.tuned_model_name(name)}")

    # --- operations ------------------------------------------------------------------------------

    def get_operation(self, name: str, *, api_version: str | None = "v1") -> dict[str, Any]:
        """``GET /{version}/tunedModels/<id>/operations/<op>`` (``v1`` by default, as Google polls).

        :param name: ``tunedModels/<id>/operations/<op>``.
        :param api_version: ``v1``, ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _ALL_VERSIONS, "operations.get")
        op = validation.operation_name(name)
        return self._call("GET", f"/{version}/{op}")

    def list_operations(
        self,
        tuned_model: str,
        *,
        page_size: int | None = None,
        filter: str | None = None,
        api_version: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the operations of a tuned model, following ``nextPageToken``.

        :param tuned_model: ``tunedModels/<id>`` or ``<id>``.
        :param page_size: operations per page.
        :param filter: a ``google.longrunning`` filter.
        :param api_version: ``v1``, ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _ALL_VERSIONS, "operations.list")
        page_size = validation.page_size(page_size)
        path = f"/{version}/{validation.tuned_model_name(tuned_model)}/operations"
        return self._paginate(path, "operations", {"pageSize": page_size, "filter": filter})

    def cancel_operation(self, name: str) -> dict[str, Any]:
        """``POST /v1/tunedModels/<id>/operations/<op>:cancel`` (only ``v1`` has it); returns ``{}``.

        :param name: ``tunedModels/<id>/operations/<op>``.
        """
        op = validation.operation_name(name)
        return self._call("POST", f"/v1/{op}:cancel", body={})

    # --- generation ------------------------------------------------------------------------------

    def generate_content(
        self,
        model: str,
        contents: list[dict[str, Any]] | str,
        *,
        generation_config: dict[str, Any] | None = None,
        safety_settings: list[dict[str, Any]] | None = None,
        system_instruction: dict[str, Any] | str | None = None,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """``POST /{version}/{model}:generateContent`` on a base or tuned model.

        :param model: ``models/<id>``, ``tunedModels/<id>`` or a bare base-model id.
        :param contents: a prompt string (one user turn) or a list of Content dicts.
        :param generation_config: a GenerationConfig dict.
        :param safety_settings: SafetySetting dicts.
        :param system_instruction: a Content dict or a plain string.
        :param api_version: ``v1beta`` or ``v1``.
        :return: the GenerateContentResponse.
        """
        version = self._version(api_version, _GENERATE_CONTENT_VERSIONS, "generateContent")
        path = f"/{version}/{validation.model_name(model)}:generateContent"
        if isinstance(contents, str):
            if not contents.strip():
                raise InvalidInputError("contents is an empty string")
            content_list = [_text_content(contents)]
        elif isinstance(contents, Sequence) and not isinstance(contents, (bytes, bytearray)):
            if not contents:
                raise InvalidInputError("contents is an empty list")
            content_list = [self._mapping(c, f"contents[{i}]") for i, c in enumerate(contents)]
        else:
            raise InvalidInputError("contents must be a string or a list of Content dicts")
        body: dict[str, Any] = {"contents": content_list}
        if generation_config is not None:
            body["generationConfig"] = self._mapping(generation_config, "generation_config")
        if safety_settings is not None:
            body["safetySettings"] = [self._mapping(s, "safety_settings item") for s in safety_settings]
        if system_instruction is not None:
            body["systemInstruction"] = (
                _text_content(system_instruction)
                if isinstance(system_instruction, str)
                else self._mapping(system_instruction, "system_instruction")
            )
        return self._call("POST", path, body=body)

    def generate_text(
        self,
        model: str,
        prompt: str,
        *,
        temperature: float | None = None,
        candidate_count: int | None = None,
        max_output_tokens: int | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        stop_sequences: Sequence[str] | None = None,
        safety_settings: list[dict[str, Any]] | None = None,
        api_version: str | None = "v1beta3",
    ) -> dict[str, Any]:
        """``POST /{version}/{model}:generateText`` (PaLM text generation) on a base or tuned model.

        :param model: ``models/<id>``, ``tunedModels/<id>`` or a bare base-model id.
        :param prompt: the prompt text.
        :param temperature: sampling temperature in [0, 1].
        :param candidate_count: candidates to return, in [1, 8].
        :param max_output_tokens: output token limit.
        :param top_p: nucleus sampling probability.
        :param top_k: top-k sampling size.
        :param stop_sequences: at most 5 stop strings.
        :param safety_settings: SafetySetting dicts.
        :param api_version: ``v1beta3`` (default) or ``v1beta``.
        :return: the GenerateTextResponse.
        """
        version = self._version(api_version, _GENERATE_TEXT_VERSIONS, "generateText")
        path = f"/{version}/{validation.model_name(model)}:generateText"
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInputError("prompt must be a non-empty string")
        body: dict[str, Any] = {"prompt": {"text": prompt}}
        options = {
            "temperature": temperature,
            "candidateCount": candidate_count,
            "maxOutputTokens": max_output_tokens,
            "topP": top_p,
            "topK": top_k,
        }
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInputError(f"{key} must be a number, got {_quote(value)}")
            body[key] = value
        if stop_sequences is not None:
            if isinstance(stop_sequences, str) or not all(isinstance(s, str) for s in stop_sequences):
                raise InvalidInputError("stop_sequences must be a list of strings")
            body["stopSequences"] = list(stop_sequences)
        if safety_settings is not None:
            body["safetySettings"] = [self._mapping(s, "safety_settings item") for s in safety_settings]
        return self._call("POST", path, body=body)

    # --- base models -----------------------------------------------------------------------------

    def list_models(
        self, *, page_size: int | None = None, api_version: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Iterate over every base model, following ``nextPageToken``.

        :param page_size: models per page (server default 50, cap 1000).
        :param api_version: ``v1``, ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _ALL_VERSIONS, "models.list")
        page_size = validation.page_size(page_size)
        return self._paginate(f"/{version}/models", "models", {"pageSize": page_size})

    def get_model(self, name: str, *, api_version: str | None = None) -> dict[str, Any]:
        """``GET /{version}/models/<id>``.

        :param name: ``models/<id>`` or ``<id>``.
        :param api_version: ``v1``, ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _ALL_VERSIONS, "models.get")
        return self._call("GET", f"/{version}/{validation.model_name(name, allow_tuned=False)}")

    # --- permissions -----------------------------------------------------------------------------

    def create_permission(
        self, tuned_model: str, permission: dict[str, Any], *, api_version: str | None = None
    ) -> dict[str, Any]:
        """``POST /{version}/tunedModels/<id>/permissions``; the body is the Permission.

        :param tuned_model: ``tunedModels/<id>`` or ``<id>``.
        :param permission: ``{"granteeType": "USER", "emailAddress": ..., "role": "READER"}``.
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "permissions.create")
        path = f"/{version}/{validation.tuned_model_name(tuned_model)}/permissions"
        return self._call("POST", path, body=self._mapping(permission, "permission"))

    def list_permissions(
        self, tuned_model: str, *, page_size: int | None = None, api_version: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the permissions of a tuned model, following ``nextPageToken``.

        :param tuned_model: ``tunedModels/<id>`` or ``<id>``.
        :param page_size: permissions per page (server default 10, cap 1000).
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "permissions.list")
        page_size = validation.page_size(page_size)
        path = f"/{version}/{validation.tuned_model_name(tuned_model)}/permissions"
        return self._paginate(path, "permissions", {"pageSize": page_size})

    def delete_permission(self, name: str, *, api_version: str | None = None) -> dict[str, Any]:
        """``DELETE /{version}/tunedModels/<id>/permissions/<perm>``; returns ``{}``.

        :param name: ``tunedModels/<id>/permissions/<permission>``.
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "permissions.delete")
        perm = validation.permission_name(name)
        return self._call("DELETE", f"/{version}/{perm}")

    def transfer_ownership(
        self, tuned_model: str, email_address: str, *, api_version: str | None = None
    ) -> dict[str, Any]:
        """``POST /{version}/tunedModels/<id>:transferOwnership``; returns ``{}``.

        :param tuned_model: ``tunedModels/<id>`` or ``<id>``.
        :param email_address: the new owner; the previous owner becomes a WRITER.
        :param api_version: ``v1beta`` or ``v1beta3``.
        """
        version = self._version(api_version, _TUNED_MODEL_VERSIONS, "tunedModels.transferOwnership")
        if not isinstance(email_address, str) or "@" not in email_address:
            raise InvalidInputError(f"email_address {_quote(email_address)} is not an email address")
        path = f"/{version}/{validation.tuned_model_name(tuned_model)}:transferOwnership"
        return self._call("POST", path, body={"emailAddress": email_address.strip()})

    # --- Airflow integration ---------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with one cheap authenticated call: ``models.list`` with pageSize=1."""
        try:
            version = self._version(None, _ALL_VERSIONS, "models.list")
            page = self._call(
                "GET", f"/{version}/models", params={"pageSize": 1}, retry=_TEST_CONNECTION_RETRY
            )
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        models = page.get("models") or []
        first = f", first model {models[0].get('name')!r}" if models and isinstance(models[0], dict) else ""
        return True, (
            f"Connection to {self.settings.base_url} ({version}, {self.settings.auth_type}) works{first}"
        )


class LegacyTypeGenerativeLanguageHook(GenerativeLanguageHook):
    """:class:`GenerativeLanguageHook` registered for connections of the earlier type
    ``generative_language``, so that Airflow finds a hook (and its connection test) for them too."""

    conn_type = LEGACY_CONN_TYPE
    hook_name = "Generative Language (tuning), earlier type name"
