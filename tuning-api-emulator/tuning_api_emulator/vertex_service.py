"""Vertex AI handlers: tuning jobs, endpoints, models and operations, free of HTTP details.

Every request is validated completely before anything changes; names use the project number.
Handlers take the resolved route, the query parameters, the parsed JSON body and the time.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from typing import Any

from tuning_api_emulator import inference
from tuning_api_emulator.errors import bad_request, failed_precondition, not_found
from tuning_api_emulator.jsonio import timestamp
from tuning_api_emulator.paging import paginate
from tuning_api_emulator.routes import Match
from tuning_api_emulator.schema import parse
from tuning_api_emulator.service import Stream
from tuning_api_emulator.storage_data import parse_gs_uri
from tuning_api_emulator.store import Store
from tuning_api_emulator.vertex_datasets import Dataset, DatasetError, data_stats, parse_jsonl
from tuning_api_emulator.vertex_filter import compile_filter
from tuning_api_emulator.vertex_jobs import VertexJob, checkpoints, project_number, render_job, status
from tuning_api_emulator.vertex_resources import deployed, operation, render_endpoint, render_model
from tuning_api_emulator.vertex_schema import (
    SPECS,
    cancel_schema,
    generate_content_schema,
    tuning_job_schema,
    undeploy_model_schema,
)
from tuning_api_emulator.vertex_validation import (
    DEFAULT_ADAPTER,
    EXAMPLES_PER_STEP,
    TUNABLE_MODELS,
    check_hyperparameters,
    check_job_fields,
    check_spec,
    dataset_uris,
    default_epochs,
)

_INT64_HYPER = ("epochCount", "batchSize", "stepCount")
_LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_FAIL_AT = re.compile(r"emulator:fail-at=(\d+)")
_MODEL_REF = re.compile(r"^projects/([^/]+)/locations/([^/]+)/models/([^/@]+)(?:@([^/]+))?$")


class VertexService:
    """The emulated Vertex AI tuning surface over a :class:`~.store.Store`.

    :param store: the state (tuning jobs, operations, Cloud Storage objects).
    :param step_seconds: seconds per step for jobs created from now on.
    :param seed: seed of the generated (numeric) ids.
    """

    def __init__(self, store: Store, *, step_seconds: float, seed: int = 0) -> None:
        self.store = store
        self.step_seconds = step_seconds
        self.seed = seed
        self._drawn = 0

    def dispatch(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        """Run the route's handler."""
        handler: Callable[[Match, dict[str, str], dict[str, Any], float], Any] = getattr(
            self, match.route.handler
        )
        return handler(match, params, body, now)

    # --- helpers ----------------------------------------------------------------------------------

    def _new_id(self, digits: int = 19) -> str:
        """A numeric id no job, model, endpoint, deployment or operation has (even after a restart,
        which replays the seeded sequence)."""
        taken = {name.rsplit("/", 1)[1] for name in self.store.vertex_operations}
        for job in self.store.tuning_jobs.values():
            taken.update((job.id, job.model_id, job.endpoint_id, job.deployed_model_id))
        while True:  # a hash of (seed, draw number): reproducible for a seed, no random module
            self._drawn += 1
            digest = hashlib.sha256(f"vertex:{self.seed}:{self._drawn}".encode()).digest()
            value = str(10 ** (digits - 1) + int.from_bytes(digest[:8], "big") % (9 * 10 ** (digits - 1)))
            if value not in taken:
                return value

    @staticmethod
    def _parent(match: Match) -> tuple[str, str]:
        project, location = match.groups[0], match.groups[1]
        if not _LOCATION.match(location):
            raise bad_request(f"Invalid location '{location}'.", "parent")
        return project_number(project), location

    def _job(self, match: Match, job_id: str) -> VertexJob:
        number, location = self._parent(match)
        job = self.store.tuning_jobs.get(job_id)
        if job is None or job.project_number != number or job.location != location:
            raise not_found(
                f"The TuningJob projects/{number}/locations/{location}/tuningJobs/{job_id} does not exist."
            )
        return job

    def _model_versions(self, match: Match, model_ref: str, now: float) -> tuple[list[VertexJob], VertexJob]:
        """The versions of a tuned Model and the one ``model_ref`` (``id`` or ``id@version``) names."""
        number, location = self._parent(match)
        model_id, _, version = model_ref.partition("@")
        name = f"projects/{number}/locations/{location}/models/{model_id}"
        versions = sorted(
            (
                j
                for j in self.store.tuning_jobs.values()
                if j.model_id == model_id
                and j.project_number == number
                and j.location == location
                and j.model_delete_time is None
                and status(j, now).state == "JOB_STATE_SUCCEEDED"
            ),
            key=lambda j: j.model_version,
        )
        if not versions:
            raise not_found(f'The Model "{name}" does not exist.')
        if not version or version == "default":
            return versions, versions[-1]
        chosen = next((j for j in versions if str(j.model_version) == version), None)
        if chosen is None:
            raise not_found(f'The Model "{name}@{version}" does not exist.')
        return versions, chosen

    def _endpoint_job(self, match: Match, endpoint_id: str, now: float) -> VertexJob:
        number, location = self._parent(match)
        for job in self.store.tuning_jobs.values():
            if (
                job.endpoint_id == endpoint_id
                and job.project_number == number
                and job.location == location
                and job.endpoint_delete_time is None
                and status(job, now).state == "JOB_STATE_SUCCEEDED"
            ):
                return job
        raise not_found(
            f'The Endpoint "projects/{number}/locations/{location}/endpoints/{endpoint_id}" does not exist.'
        )

    def _save_operation(self, op: dict[str, Any]) -> dict[str, Any]:
        self.store.vertex_operations[op["name"]] = op
        self.store.save()
        return op

    # --- tuning jobs ------------------------------------------------------------------------------

    def create_tuning_job(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        number, location = self._parent(match)
        version = match.version
        request = parse(body, tuning_job_schema(version), "tuning_job")
        kinds = [k for k in SPECS[version] if k in request]
        if not kinds:
            raise bad_request(
                f"A tuning spec is required: set one of {', '.join(SPECS[version])}.",
                "tuning_job.tuning_spec",
            )
        kind = kinds[0]
        if kind in ("partnerModelTuningSpec", "veoTuningSpec", "veoLoraTuningSpec"):
            raise bad_request(
                f"{kind} (open, partner and video models) is not supported by this emulator.", kind
            )
        if "customBaseModel" in request:
            raise bad_request(
                "custom_base_model (open models) is not supported by this emulator.", "custom_base_model"
            )
        spec = request[kind]
        base, source, model_id, model_version = self._source(request, number, location, now)
        hyper = dict(spec.get("hyperParameters", {}))
        check_hyperparameters(kind, base, hyper)
        check_spec(kind, spec, location)
        check_job_fields(request)
        display_name = request.get("tunedModelDisplayName", "")
        labels = request.get("labels", {})
        training_uri, validation_uri = dataset_uris(kind, spec)
        # --- everything is valid: read the datasets (a problem fails the job, not the request) ---
        dataset, dataset_error = self._read(training_uri, kind, "training")
        if dataset is not None and validation_uri:
            _, dataset_error = self._read(validation_uri, kind, "validation")
        examples = len(dataset.examples) if dataset is not None else 0
        if kind == "reinforcementTuningSpec" and "stepCount" in hyper:
            epochs = max(1, int(hyper.get("epochCount", 1)))
            steps = int(hyper["stepCount"])
        else:
            hyper.setdefault("epochCount", default_epochs(examples))
            epochs = int(hyper["epochCount"])
            steps = max(1, math.ceil(examples * epochs / EXAMPLES_PER_STEP))
        if "learningRate" not in hyper:
            hyper.setdefault("learningRateMultiplier", 1.0)
        hyper.setdefault("adapterSize", DEFAULT_ADAPTER)
        if kind == "preferenceOptimizationSpec":
            hyper.setdefault("beta", 0.1)
        for key in _INT64_HYPER:
            if key in hyper and not (kind == "reinforcementTuningSpec" and key == "batchSize"):
                hyper[key] = str(hyper[key])
        spec = {**spec, "hyperParameters": hyper}
        marks = f"{display_name}\n{request.get('description', '')}"
        fail_at: int | None = None
        if found := _FAIL_AT.search(marks):
            fail_at = int(found.group(1))
        elif "emulator:fail" in marks:
            fail_at = max(1, steps // 2)
        echo: dict[str, Any] = {k: request[k] for k in ("encryptionSpec", "serviceAccount") if k in request}
        if source is not None:
            echo["preTunedModel"] = source
        job = VertexJob(
            id=self._new_id(),
            project_number=number,
            location=location,
            base_model=base,
            spec_kind=kind,
            spec=spec,
            create_time=now,
            step_seconds=self.step_seconds,
            total_steps=steps,
            epochs=epochs,
            model_id=model_id or self._new_id(),
            endpoint_id=self._new_id(),
            deployed_model_id=self._new_id(),
            model_version=model_version,
            display_name=display_name,
            description=request.get("description", ""),
            labels=dict(labels),
            echo=echo,
            examples=[{"textInput": e.prompt, "output": e.answer} for e in dataset.examples]
            if dataset
            else [],
            data_stats=data_stats(kind, dataset, epochs, steps) if dataset is not None else {},
            dataset_error=dataset_error,
            fail_at_step=fail_at,
        )
        self.store.tuning_jobs[job.id] = job
        self.store.save()
        return render_job(job, version, now)

    def _source(
        self, request: dict[str, Any], number: str, location: str, now: float
    ) -> tuple[str, dict[str, Any] | None, str | None, int]:
        """``(base model, preTunedModel echo, model id to add a version to, version)``."""
        if "preTunedModel" in request:
            ref = request["preTunedModel"]
            name = ref.get("tunedModelName", "")
            found = _MODEL_REF.match(name)
            if found is None:
                raise bad_request(
                    f'Invalid tuned_model_name "{name}": expected projects/*/locations/*/models/*[@version].',
                    "tuning_job.pre_tuned_model.tuned_model_name",
                )
            if project_number(found.group(1)) != number or found.group(2) != location:
                raise bad_request(
                    "The pre-tuned model must be in the tuning job's project and location.",
                    "tuning_job.pre_tuned_model.tuned_model_name",
                )
            versions = [
                j
                for j in self.store.tuning_jobs.values()
                if j.model_id == found.group(3)
                and j.model_delete_time is None
                and status(j, now).state == "JOB_STATE_SUCCEEDED"
            ]
            wanted = found.group(4)
            source = max(versions, key=lambda j: j.model_version, default=None)
            if wanted and wanted != "default":
                source = next((j for j in versions if str(j.model_version) == wanted), None)
            if source is None:
                raise not_found(f'The Model "{name}" does not exist.')
            checkpoint = ref.get("checkpointId")
            if checkpoint is not None and checkpoint not in {c["checkpointId"] for c in checkpoints(source)}:
                raise bad_request(
                    f'Checkpoint "{checkpoint}" does not exist in model {name}.',
                    "tuning_job.pre_tuned_model.checkpoint_id",
                )
            display = request.get("tunedModelDisplayName", "")
            echo = {k: v for k, v in ref.items() if k != "baseModel"}
            if display and display != source.display_name:
                return source.base_model, echo, None, 1
            latest = max(
                j.model_version for j in self.store.tuning_jobs.values() if j.model_id == source.model_id
            )
            return source.base_model, echo, source.model_id, latest + 1
        model = request.get("baseModel")
        if not model:
            raise bad_request("base_model is required.", "tuning_job.base_model")
        short = re.sub(r"^(projects/[^/]+/locations/[^/]+/)?publishers/google/models/", "", model)
        if short not in TUNABLE_MODELS:
            raise bad_request(
                f"Base model {model} is not supported for tuning. Supported: {', '.join(TUNABLE_MODELS)}.",
                "tuning_job.base_model",
            )
        return short, None, None, 1

    def _read(self, uri: str, kind: str, role: str) -> tuple[Dataset | None, str]:
        """The parsed dataset at ``uri``, or ``None`` and why it cannot be used."""
        bucket, name = parse_gs_uri(uri) or ("", "")
        if bucket not in self.store.buckets:
            return None, f"Failed to read the {role} dataset {uri}: the bucket {bucket} does not exist."
        stored = self.store.objects.get(f"{bucket}/{name}")
        if stored is None:
            return None, f"Failed to read the {role} dataset {uri}: the object does not exist."
        try:
            return parse_jsonl(uri, stored.data, kind, role), ""
        except DatasetError as err:
            return None, str(err)

    def get_tuning_job(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        return render_job(self._job(match, match.groups[2]), match.version, now)

    def list_tuning_jobs(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        number, location = self._parent(match)
        expression = params.get("filter", "")
        predicate = compile_filter(expression)
        jobs = sorted(
            (
                j
                for j in self.store.tuning_jobs.values()
                if j.project_number == number and j.location == location
            ),
            key=lambda j: j.sort_key,
        )
        rendered = {j.id: render_job(j, match.version, now) for j in jobs}
        matching = [j for j in jobs if predicate(rendered[j.id])]
        chunk, token = paginate(
            matching,
            lambda j: j.sort_key,
            raw_page_size=params.get("pageSize"),
            page_token=params.get("pageToken"),
            default_size=100,
            params=f"tuningJobs|{number}|{location}|{expression}",
        )
        out: dict[str, Any] = {}
        if chunk:
            out["tuningJobs"] = [rendered[j.id] for j in chunk]
        if token:
            out["nextPageToken"] = token
        return out

    def cancel_tuning_job(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        if body:
            parse(body, cancel_schema(match.version), "")
        job = self._job(match, match.groups[2])
        state = status(job, now).state
        if state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"):
            raise failed_precondition(f"Cannot cancel TuningJob {job.name}: it is already in state {state}.")
        job.cancel_time = now
        self.store.save()
        return {}

    def fail_job(
        self, job_id: str, now: float, *, message: str = "", at_step: int | None = None
    ) -> dict[str, Any]:
        """Make a running job fail now (or at step ``at_step``, now if it is past); returns the job
        (``v1``)."""
        job = self.store.tuning_jobs.get(job_id)
        if job is None:
            raise not_found(f"No tuning job with id {job_id}.")
        current = status(job, now)
        if current.done:
            raise failed_precondition(f"TuningJob {job.name} has already ended.")
        job.fail_message = message
        if at_step is None or at_step <= current.completed_steps:
            job.fail_time = now
        else:
            job.fail_at_step = max(0, at_step)
        self.store.save()
        return render_job(job, "v1", now)

    # --- endpoints, models, operations ----------------------------------------------------------

    def get_endpoint(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        return render_endpoint(self._endpoint_job(match, match.groups[2], now), now)

    def undeploy_model(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        request = parse(body, undeploy_model_schema(match.version), "")
        job = self._endpoint_job(match, match.groups[2], now)
        wanted = request.get("deployedModelId", "")
        if not wanted:
            raise bad_request("deployed_model_id is required.", "deployed_model_id")
        if not deployed(job) or wanted != job.deployed_model_id:
            raise not_found(f'The DeployedModel "{wanted}" does not exist in Endpoint "{job.endpoint_name}".')
        job.undeploy_time = now
        name = f"{job.endpoint_name}/operations/{self._new_id()}"
        return self._save_operation(
            operation(name, match.version, "UndeployModelOperationMetadata", "UndeployModelResponse", now)
        )

    def delete_endpoint(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        job = self._endpoint_job(match, match.groups[2], now)
        if deployed(job):
            raise failed_precondition(
                f'Endpoint "{job.endpoint_name}" has deployed models ({job.deployed_model_id}); '
                "undeploy them before deleting the endpoint."
            )
        job.endpoint_delete_time = now
        name = f"{job.parent}/operations/{self._new_id()}"
        return self._save_operation(operation(name, match.version, "DeleteOperationMetadata", "Empty", now))

    def get_model(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        versions, chosen = self._model_versions(match, match.groups[2], now)
        return render_model(versions, chosen, now)

    def delete_model(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        versions, chosen = self._model_versions(match, match.groups[2], now)
        still = [v.endpoint_name for v in versions if deployed(v)]
        if still:
            raise failed_precondition(
                f'The Model "{chosen.model_name}" is deployed or being deployed at the following '
                f"Endpoint(s): {', '.join(still)}."
            )
        for version in versions:
            version.model_delete_time = now
        name = f"{chosen.parent}/operations/{self._new_id()}"
        return self._save_operation(operation(name, match.version, "DeleteOperationMetadata", "Empty", now))

    def get_operation(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        number, location = self._parent(match)
        if len(match.groups) == 5:
            tail = f"{match.groups[2]}/{match.groups[3]}/operations/{match.groups[4]}"
        else:
            tail = f"operations/{match.groups[2]}"
        name = f"projects/{number}/locations/{location}/{tail}"
        op = self.store.vertex_operations.get(name)
        if op is None:
            raise not_found(f'The Operation "{name}" does not exist.')
        return op

    # --- inference --------------------------------------------------------------------------------

    def _generate(
        self, target: inference.Target, version: str, body: dict[str, Any], now: float
    ) -> dict[str, Any]:
        request = parse(body, generate_content_schema(version), "")
        contents = request.get("contents", [])
        inference.check_contents(contents)
        config = request.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise bad_request("generation_config must be an object.", "generation_config")
        count = config.get("candidateCount", config.get("candidate_count", 1))
        limit = config.get("maxOutputTokens", config.get("max_output_tokens", target.output_token_limit))
        if not isinstance(count, int) or not 1 <= count <= inference.MAX_CANDIDATES:
            raise bad_request(
                f"candidate_count must be from 1 to {inference.MAX_CANDIDATES}.",
                "generation_config.candidate_count",
            )
        if not isinstance(limit, int) or limit < 1:
            raise bad_request("max_output_tokens must be positive.", "generation_config.max_output_tokens")
        candidates = []
        total = 0
        for index, answer in enumerate(inference.answers(target, inference.prompt_text(contents), count)):
            text, cut = inference.truncate_tokens(answer, limit)
            total += inference.count_tokens(text)
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "MAX_TOKENS" if cut else "STOP",
                "avgLogprobs": -0.05,
            }
            if index:
                candidate["index"] = index
            candidates.append(candidate)
        prompt = inference.prompt_tokens(request)
        return {
            "candidates": candidates,
            "usageMetadata": {
                "promptTokenCount": prompt,
                "candidatesTokenCount": total,
                "totalTokenCount": prompt + total,
                "trafficType": "ON_DEMAND",
            },
            "modelVersion": target.model_version,
            "createTime": timestamp(now),
            "responseId": f"emu{self._new_id(12)}",
        }

    def _endpoint_target(self, match: Match, now: float) -> inference.Target:
        job = self._endpoint_job(match, match.groups[2], now)
        if not deployed(job):
            raise failed_precondition(f'Endpoint "{job.endpoint_name}" has no deployed model.')
        return inference.Target(job.endpoint_name, job.examples, 8192, job.base_model)

    def generate_content(self, match: Match, params: dict[str, str], body: dict[str, Any], now: float) -> Any:
        return self._generate(self._endpoint_target(match, now), match.version, body, now)

    def stream_generate_content(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        return Stream([self._generate(self._endpoint_target(match, now), match.version, body, now)])

    def generate_content_publisher(
        self, match: Match, params: dict[str, str], body: dict[str, Any], now: float
    ) -> Any:
        self._parent(match)
        model = match.groups[2]
        target = inference.Target(f"models/{model}", None, 8192, model)  # answers with an echo
        return self._generate(target, match.version, body, now)
