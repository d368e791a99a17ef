"""The API's behaviour, one method per route handler, free of HTTP details.

Each handler takes the resolved route (:class:`~.routes.Match`), the query parameters (camelCase
keys), the parsed JSON body and the current time, and returns the response body (or a
:class:`Stream` of chunks); errors are raised as :class:`~.errors.StatusError`.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuning_api_emulator import catalogue, inference
from tuning_api_emulator.errors import StatusError, bad_request, failed_precondition, not_found
from tuning_api_emulator.jsonio import utf8_problem
from tuning_api_emulator.paging import paginate
from tuning_api_emulator.resources import render_operation, render_permission, render_tuned_model
from tuning_api_emulator.routes import Match
from tuning_api_emulator.schema import CANCEL_OPERATION, parse, schema
from tuning_api_emulator.store import PermissionRecord, Store, TunedModelRecord
from tuning_api_emulator.tuning import default_hyperparameters, progress, total_steps
from tuning_api_emulator.validation import (
    check_tuned_model_id,
    derive_model_id,
    infer_update_mask,
    parse_update_body,
    parse_update_mask,
    random_id,
    validate_create,
    validate_permission,
)

DEFAULT_OWNER = "emulator-owner@example.com"
_UPDATE_FIELDS: dict[str, tuple[str, Any]] = {
    "displayName": ("display_name", ""),
    "description": ("description", ""),
    "temperature": ("temperature", None),
    "topP": ("top_p", None),
    "topK": ("top_k", None),
    "readerProjectNumbers": ("reader_project_numbers", []),
}


@dataclass(frozen=True)
class Stream:
    """The chunks of a streaming response."""

    chunks: list[dict[str, Any]]


class Service:
    """The emulated API over a :class:`~.store.Store`.

    :param store: the state.
    :param step_seconds: seconds per tuning step for models created from now on.
    :param seed: seed of the random ids.
    :param owner_email: the caller's identity: owner of every model it creates.
    """

    def __init__(
        self, store: Store, *, step_seconds: float, seed: int = 0, owner_email: str = DEFAULT_OWNER
    ) -> None:
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        self.store = store
        self.step_seconds = step_seconds
        self.owner_email = owner_email
        self.rng = random.Random(seed)

    def dispatch(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        """Run the route's handler."""
        handler: Callable[[Match, dict[str, str], dict[str, Any], float], Any] = getattr(
            self, match.route.handler
        )
        return handler(match, params, body, now)

    # --- helpers ----------------------------------------------------------------------------------

    def _model(self, model_id: str) -> TunedModelRecord:
        record = self.store.models.get(model_id)
        if record is None:
            raise not_found(f"Tuned model tunedModels/{model_id} does not exist.")
        return record

    def _permission(self, record: TunedModelRecord, permission_id: str) -> PermissionRecord:
        for permission in record.permissions:
            if permission.id == permission_id:
                return permission
        raise not_found(f"Permission {record.name}/permissions/{permission_id} does not exist.")

    def _owner(self, record: TunedModelRecord) -> PermissionRecord | None:
        return next((p for p in record.permissions if p.role == "OWNER"), None)

    def _roles_of_caller(self, record: TunedModelRecord) -> set[str]:
        return {p.role for p in record.permissions if p.email_address == self.owner_email}

    # --- tuned models -----------------------------------------------------------------------------

    def create_tuned_model(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        version = match.version
        spec = validate_create(body, version)
        tuned_model_id = params.get("tunedModelId") or None
        if tuned_model_id is not None:
            check_tuned_model_id(tuned_model_id)
        if spec.source_tuned_model is not None:
            source_id = spec.source_tuned_model.removeprefix("tunedModels/")
            source = self.store.models.get(source_id)
            if source is None or "/" in source_id:
                raise not_found(f"Tuned model {spec.source_tuned_model} does not exist.")
            if progress(source, now).state != "ACTIVE":
                raise failed_precondition(
                    f"Tuned model {source.name} is not ACTIVE and cannot be tuned further."
                )
            base = catalogue.any_version(source.base_model)
        else:
            assert spec.base_model is not None
            base = catalogue.find(spec.base_model, version)
            if base is None:
                raise not_found(f"Base model {spec.base_model} is not found for API version {version}.")
            if not base.supports("createTunedModel"):
                raise bad_request(
                    f"Base model {base.name} does not support tuning: createTunedModel is not in its "
                    "supportedGenerationMethods.",
                    "tuned_model.base_model",
                )
        assert base is not None
        if tuned_model_id is not None and tuned_model_id in self.store.models:
            raise StatusError("ALREADY_EXISTS", f"Tuned model tunedModels/{tuned_model_id} already exists.")
        model_id = tuned_model_id or derive_model_id(spec.display_name, self.rng, self.store.models)
        hyper = default_hyperparameters(version, len(spec.examples))
        if "learningRateMultiplier" in spec.hyperparameters:
            hyper.pop("learningRate")
        hyper.update(spec.hyperparameters)
        steps = total_steps(len(spec.examples), hyper["epochCount"], hyper["batchSize"])
        fail_at = spec.fail_at_step
        if fail_at == -1:
            fail_at = max(1, steps // 2)
        record = TunedModelRecord(
            id=model_id,
            api_version=version,
            operation_id=random_id(self.rng),
            base_model=base.name,
            source_tuned_model=spec.source_tuned_model,
            examples=spec.examples,
            hyperparameters=hyper,
            create_time=now,
            start_time=now,
            step_seconds=self.step_seconds,
            total_steps=steps,
            update_time=now,
            display_name=spec.display_name,
            description=spec.description,
            temperature=spec.temperature if spec.temperature is not None else base.temperature,
            top_p=spec.top_p if spec.top_p is not None else base.top_p,
            top_k=spec.top_k if spec.top_k is not None else base.top_k,
            reader_project_numbers=spec.reader_project_numbers,
            fail_at_step=fail_at,
            permissions=[PermissionRecord(random_id(self.rng), "USER", "OWNER", self.owner_email)],
        )
        self.store.models[model_id] = record
        self.store.save()
        return render_operation(record, version, now)

    def get_tuned_model(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        return render_tuned_model(self._model(match.groups[0]), match.version, now)

    def _matches_filter(self, record: TunedModelRecord, terms: list[str]) -> bool:
        text = f"{record.display_name}\n{record.description}".lower()
        roles = self._roles_of_caller(record)
        for term in terms:
            lowered = term.lower()
            if lowered == "owner:me":
                ok = "OWNER" in roles
            elif lowered == "writers:me":
                ok = bool(roles & {"OWNER", "WRITER"})
            elif lowered == "readers:me":
                ok = bool(roles)
            elif lowered == "readers:everyone":
                ok = any(p.grantee_type == "EVERYONE" for p in record.permissions)
            else:
                ok = lowered in text
            if not ok:
                return False
        return True

    def list_tuned_models(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        version = match.version
        flt = params.get("filter", "")
        if flt and version != "v1beta":
            raise unknown_query("filter")
        try:
            terms = shlex.split(flt)
        except ValueError:
            raise bad_request(f"Invalid filter {flt!r}: unbalanced quotes.", "filter") from None
        for term in terms:
            if ":" in term and term.lower() not in (
                "owner:me",
                "writers:me",
                "readers:me",
                "readers:everyone",
            ):
                raise bad_request(
                    f"Invalid filter term {term!r}: the operators are owner:me, writers:me, readers:me "
                    "and readers:everyone.",
                    "filter",
                )
        records = [r for r in self.store.sorted_models() if self._matches_filter(r, terms)]
        chunk, token = paginate(
            records,
            lambda r: r.sort_key,
            raw_page_size=params.get("pageSize"),
            page_token=params.get("pageToken"),
            default_size=10,
            params=f"tunedModels|{version}|{flt}",
        )
        out: dict[str, Any] = {}
        if chunk:
            out["tunedModels"] = [render_tuned_model(r, version, now) for r in chunk]
        if token:
            out["nextPageToken"] = token
        return out

    def update_tuned_model(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        version = match.version
        record = self._model(match.groups[0])
        model = parse_update_body(body, version)
        mask = params.get("updateMask")
        if not mask:
            if version == "v1beta3":
                raise bad_request("update_mask is required.", "update_mask")
            paths = infer_update_mask(model, render_tuned_model(record, version, now), version)
        else:
            paths = parse_update_mask(mask, version)
        for path in paths:
            attribute, default = _UPDATE_FIELDS[path]
            value = model.get(path, default)
            setattr(record, attribute, list(value) if isinstance(value, list) else value)
        if paths:
            record.update_time = now
            self.store.save()
        return render_tuned_model(record, version, now)

    def delete_tuned_model(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        record = self._model(match.groups[0])
        del self.store.models[record.id]
        self.store.save()
        return {}

    # --- operations -------------------------------------------------------------------------------

    def get_operation(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        model_id, operation_id = match.groups
        record = self.store.models.get(model_id)
        if record is None or record.operation_id != operation_id:
            raise not_found(f"Operation tunedModels/{model_id}/operations/{operation_id} does not exist.")
        return render_operation(record, match.version, now)

    def _operations_page(
        self, records: list[TunedModelRecord], match: Match, params: dict[str, str], now: float
    ) -> Any:
        flt = params.get("filter", "").replace(" ", "").lower()
        if flt not in ("", "done=true", "done=false"):
            raise bad_request(
                f"Invalid filter {params['filter']!r}: only done=true and done=false are supported.", "filter"
            )
        if flt:
            wanted = flt == "done=true"
            records = [r for r in records if progress(r, now).done == wanted]
        chunk, token = paginate(
            records,
            lambda r: r.sort_key,
            raw_page_size=params.get("pageSize"),
            page_token=params.get("pageToken"),
            default_size=10,
            params=f"operations|{match.version}|{'/'.join(match.groups)}|{flt}",
        )
        out: dict[str, Any] = {}
        if chunk:
            out["operations"] = [render_operation(r, match.version, now) for r in chunk]
        if token:
            out["nextPageToken"] = token
        return out

    def list_model_operations(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        return self._operations_page([self._model(match.groups[0])], match, params, now)

    def list_operations(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        return self._operations_page(self.store.sorted_models(), match, params, now)

    def cancel_operation(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        parse(body, CANCEL_OPERATION)
        model_id, operation_id = match.groups
        record = self.store.models.get(model_id)
        if record is None or record.operation_id != operation_id:
            raise not_found(f"Operation tunedModels/{model_id}/operations/{operation_id} does not exist.")
        if progress(record, now).done:
            raise failed_precondition(
                f"Operation {record.operation_name} is already done and cannot be cancelled."
            )
        record.cancel_time = now
        self.store.save()
        return {}

    def delete_operation(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        raise not_found(f"Operation operations/{match.groups[0]} does not exist.")

    # --- base models ------------------------------------------------------------------------------

    def list_models(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        chunk, token = paginate(
            catalogue.listed(match.version),
            lambda m: m.name,
            raw_page_size=params.get("pageSize"),
            page_token=params.get("pageToken"),
            default_size=50,
            params=f"models|{match.version}",
        )
        out: dict[str, Any] = {"models": [m.render(match.version) for m in chunk]} if chunk else {}
        if token:
            out["nextPageToken"] = token
        return out

    def get_model(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        return catalogue.get(match.groups[0], match.version).render(match.version)

    # --- generation -------------------------------------------------------------------------------

    def _target(
        self, collection: str, model_id: str, version: str, method: str, now: float
    ) -> inference.Target:
        if collection == "models":
            base = catalogue.find(model_id, version)
            if base is None or not base.supports(method):
                raise catalogue.unsupported(f"models/{model_id}", version, method)
            return inference.Target(base.name, None, base.output_token_limit, base.model_id)
        record = self._model(model_id)
        tuned_base = catalogue.any_version(record.base_model)
        if tuned_base is None or not tuned_base.supports(method):
            raise catalogue.unsupported(record.name, version, method)
        state = progress(record, now).state
        if state != "ACTIVE":
            raise failed_precondition(
                f"Tuned model {record.name} is not ready for inference: its state is {state} "
                "(it must be ACTIVE)."
            )
        return inference.Target(record.name, record.examples, tuned_base.output_token_limit, record.name)

    def generate_content(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        request = parse(body, schema("generate_content", match.version))
        target = self._target(match.groups[0], match.groups[1], match.version, "generateContent", now)
        return inference.generate_content(target, request, match.version)

    def stream_generate_content(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        request = parse(body, schema("generate_content", match.version))
        target = self._target(match.groups[0], match.groups[1], match.version, "generateContent", now)
        return Stream(inference.stream_generate_content(target, request, match.version))

    def generate_text(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        request = parse(body, schema("generate_text", match.version))
        target = self._target(match.groups[0], match.groups[1], match.version, "generateText", now)
        return inference.generate_text(target, request, match.version)

    def count_tokens(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        request = parse(body, schema("count_tokens", match.version))
        self._target("models", match.groups[0], match.version, "countTokens", now)
        return inference.count_content_tokens(request)

    def count_text_tokens(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        request = parse(body, schema("count_text_tokens", match.version))
        self._target("models", match.groups[0], match.version, "countTextTokens", now)
        return inference.count_text_tokens(request)

    # --- permissions ------------------------------------------------------------------------------

    def create_permission(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        record = self._model(match.groups[0])
        fields = validate_permission(body, match.version)
        for existing in record.permissions:
            if (existing.grantee_type, existing.email_address) == (
                fields["granteeType"],
                fields["emailAddress"],
            ):
                raise StatusError(
                    "ALREADY_EXISTS",
                    f"A permission for this grantee already exists: {record.name}/permissions/{existing.id}.",
                )
        permission = PermissionRecord(
            random_id(self.rng), fields["granteeType"], fields["role"], fields["emailAddress"]
        )
        record.permissions.append(permission)
        self.store.save()
        return render_permission(record, permission)

    def list_permissions(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        record = self._model(match.groups[0])
        chunk, token = paginate(
            sorted(record.permissions, key=lambda p: p.id),
            lambda p: p.id,
            raw_page_size=params.get("pageSize"),
            page_token=params.get("pageToken"),
            default_size=10,
            params=f"permissions|{match.version}|{record.id}",
        )
        out: dict[str, Any] = {"permissions": [render_permission(record, p) for p in chunk]} if chunk else {}
        if token:
            out["nextPageToken"] = token
        return out

    def get_permission(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        record = self._model(match.groups[0])
        return render_permission(record, self._permission(record, match.groups[1]))

    def update_permission(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        record = self._model(match.groups[0])
        permission = self._permission(record, match.groups[1])
        fields = parse(body, schema("permission", match.version), "permission")
        mask = [p.strip() for p in params.get("updateMask", "").split(",") if p.strip()]
        if not mask:
            raise bad_request("update_mask is required; the only accepted path is role.", "update_mask")
        if any(path != "role" for path in mask):
            raise bad_request("update_mask may only contain role.", "update_mask")
        role = fields.get("role", "ROLE_UNSPECIFIED")
        if role in ("ROLE_UNSPECIFIED", "OWNER"):
            raise bad_request(
                "permission.role must be WRITER or READER (ownership moves with transferOwnership).",
                "permission.role",
            )
        if permission.role == "OWNER":
            raise bad_request(
                "The owner's permission cannot be changed; use transferOwnership.", "permission.role"
            )
        if permission.grantee_type == "EVERYONE" and role != "READER":
            raise bad_request("grantee_type EVERYONE can only be given the READER role.", "permission.role")
        permission.role = role
        self.store.save()
        return render_permission(record, permission)

    def delete_permission(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        record = self._model(match.groups[0])
        permission = self._permission(record, match.groups[1])
        if permission.role == "OWNER":
            raise failed_precondition("The owner's permission cannot be deleted; transfer ownership first.")
        record.permissions.remove(permission)
        self.store.save()
        return {}

    def transfer_ownership(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        record = self._model(match.groups[0])
        request = parse(body, schema("transfer_ownership", match.version))
        email = request.get("emailAddress", "")
        if not email or "@" not in email:
            raise bad_request("email_address is required and must be an email address.", "email_address")
        owner = self._owner(record)
        if owner is not None and owner.email_address == email:
            return {}
        if owner is not None:
            owner.role = "WRITER"
        grantee = next(
            (p for p in record.permissions if p.grantee_type == "USER" and p.email_address == email), None
        )
        if grantee is None:
            record.permissions.append(PermissionRecord(random_id(self.rng), "USER", "OWNER", email))
        else:
            grantee.role = "OWNER"
        self.store.save()
        return {}

    # --- emulator control -------------------------------------------------------------------------

    def fail_model(
        self, model_id: str, now: float, *, message: str = "", at_step: int | None = None
    ) -> dict[str, Any]:
        """Make a running tuning job fail now (or at ``at_step``); the operation gets error INTERNAL."""
        record = self._model(model_id.removeprefix("tunedModels/"))
        problem = utf8_problem(message)
        if problem is not None:
            raise bad_request(f"message: {problem}", "message")
        state = progress(record, now)
        if state.done:
            raise failed_precondition(f"Tuned model {record.name} already finished ({state.state}).")
        if at_step is not None and at_step > state.completed_steps:
            record.fail_at_step = at_step
        else:
            record.fail_time = now
        if message:
            record.fail_message = message
        self.store.save()
        return render_tuned_model(record, record.api_version, now)


def unknown_query(name: str) -> StatusError:
    """Google's 400 for a query parameter the method does not take."""
    return bad_request(
        f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
        f"Field '{name}' could not be found in request message.",
        name,
    )
