"""The emulator's live state shared by the HTTP app, the control paths and the Python API.

Handlers run on the server's event loop thread while tests call :class:`Runtime` methods from
their own thread, so every access goes through one re-entrant lock (uncontended in practice:
handlers hold it only for in-memory work).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from tuning_api_emulator import oauth
from tuning_api_emulator.bodies import BodyLimits
from tuning_api_emulator.faults import FaultPlan
from tuning_api_emulator.service import DEFAULT_OWNER, Service
from tuning_api_emulator.storage import StorageService
from tuning_api_emulator.store import Store
from tuning_api_emulator.tuning import progress
from tuning_api_emulator.vertex_jobs import status as job_status
from tuning_api_emulator.vertex_service import VertexService

FaultsArg = FaultPlan | dict[str, Any] | list[Any] | str | None


class Runtime:
    """Store, services (Gemini, Vertex AI, Cloud Storage), credentials, fault plan and request log.

    :param step_seconds: seconds per tuning step.
    :param api_keys: accepted API keys; with ``tokens`` also ``None``, any non-empty key.
    :param tokens: accepted OAuth access tokens; with ``api_keys`` also ``None``, any non-empty token.
    :param state_file: JSON file to load at start and rewrite after every change.
    :param seed: seed of generated ids and (by default) of fault draws.
    :param faults: a fault configuration (see :mod:`.faults`): dict, list, JSON text or file path.
    :param owner_email: the identity that owns the models it creates.
    :param request_log_limit: how many API requests the log keeps (oldest dropped first).
    :param clock: the time source (seconds since the epoch).
    :param body_limits: the request body's maximum size, read deadline and logged prefix.
    :param refresh_tokens: refresh tokens ``POST /token`` honours once credentials are configured.
    :param service_accounts: service-account emails whose JWTs ``POST /token`` honours then.
    """

    def __init__(
        self,
        *,
        step_seconds: float = 0.5,
        api_keys: Collection[str] | None = None,
        tokens: Collection[str] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        seed: int = 0,
        faults: FaultsArg = None,
        owner_email: str = DEFAULT_OWNER,
        request_log_limit: int = 100_000,
        clock: Callable[[], float] = time.time,
        body_limits: BodyLimits | None = None,
        refresh_tokens: Collection[str] | None = None,
        service_accounts: Collection[str] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.body_limits = body_limits or BodyLimits()
        self.seed = seed
        self.clock = clock
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.tokens = frozenset(tokens) if tokens is not None else None
        self.refresh_tokens = frozenset(refresh_tokens) if refresh_tokens is not None else None
        self.service_accounts = frozenset(service_accounts) if service_accounts is not None else None
        self.store = Store(state_file)
        self.store.load()
        self.service = Service(self.store, step_seconds=step_seconds, seed=seed, owner_email=owner_email)
        self.vertex = VertexService(self.store, step_seconds=step_seconds, seed=seed)
        self.storage = StorageService(self)
        self.faults = self._plan(faults)
        self._log: deque[dict[str, Any]] = deque(maxlen=request_log_limit)

    @property
    def open_access(self) -> bool:
        """Whether no credential is configured, so any non-empty key or token is accepted."""
        return (
            self.api_keys is None
            and self.tokens is None
            and self.refresh_tokens is None
            and self.service_accounts is None
        )

    def accepted_tokens(self) -> frozenset[str] | None:
        """The access tokens API routes accept: ``None`` (any) while no credential is configured,
        else the configured ones plus those ``POST /token`` issued that have not expired."""
        if self.open_access:
            return None
        with self.lock:
            now = self.clock()
            issued = {token for token, expiry in self.store.issued_tokens.items() if expiry > now}
        return frozenset(self.tokens or ()) | issued

    def issue_token(self) -> str:
        """A new access token, valid for an hour (persisted with the state; expired ones pruned)."""
        with self.lock:
            now = self.clock()
            tokens = {t: expiry for t, expiry in self.store.issued_tokens.items() if expiry > now}
            token = oauth.new_token()
            tokens[token] = now + oauth.TOKEN_SECONDS
            self.store.issued_tokens = tokens
            self.store.save()
        return token

    def _plan(self, faults: FaultsArg) -> FaultPlan:
        if isinstance(faults, FaultPlan):
            return faults
        if isinstance(faults, str):
            return FaultPlan.from_text(faults, self.seed)
        return FaultPlan.from_config(faults, self.seed)

    def set_faults(self, faults: FaultsArg) -> dict[str, Any]:
        """Replace the fault plan (``None`` clears it); returns its JSON form."""
        plan = self._plan(faults)
        with self.lock:
            self.faults = plan
        return plan.to_config()

    def faults_config(self) -> dict[str, Any]:
        """The current fault plan as JSON."""
        with self.lock:
            return self.faults.to_config()

    def log_request(self, entry: dict[str, Any]) -> None:
        """Append one API request to the log."""
        with self.lock:
            self._log.append(entry)

    def request_log(self) -> list[dict[str, Any]]:
        """A copy of the request log, oldest first."""
        with self.lock:
            return [dict(entry) for entry in self._log]

    def clear_request_log(self) -> None:
        with self.lock:
            self._log.clear()

    def reset(self) -> None:
        """Forget every tuned model, tuning job, bucket, object, issued token, the request log and
        the faults."""
        with self.lock:
            self.store.clear()
            self.storage.uploads.clear()
            self._log.clear()
            self.faults = FaultPlan(seed=self.seed)

    def fail_model(self, model: str, *, message: str = "", at_step: int | None = None) -> dict[str, Any]:
        """Make a running tuning job fail (see :meth:`.service.Service.fail_model`)."""
        with self.lock:
            rendered = self.service.fail_model(model, self.clock(), message=message, at_step=at_step)
        return copy.deepcopy(rendered)  # the rendering shares cached snapshot dicts

    def fail_tuning_job(
        self, job_id: str, *, message: str = "", at_step: int | None = None
    ) -> dict[str, Any]:
        """Make a running Vertex tuning job fail (see :meth:`.vertex_service.VertexService.fail_job`)."""
        with self.lock:
            return self.vertex.fail_job(job_id, self.clock(), message=message, at_step=at_step)

    def state(self) -> dict[str, Any]:
        """A summary for ``GET /_emulator/state`` (never any credential)."""
        with self.lock:
            now = self.clock()
            models = []
            for record in self.store.sorted_models():
                status = progress(record, now)
                models.append(
                    {
                        "name": record.name,
                        "operation": record.operation_name,
                        "apiVersion": record.api_version,
                        "state": status.state,
                        "completedSteps": status.completed_steps,
                        "totalSteps": record.total_steps,
                    }
                )
            return {
                "emulator": "airflow-provider-tuning",
                "stepSeconds": self.service.step_seconds,
                "seed": self.seed,
                "stateFile": str(self.store.path) if self.store.path else None,
                "acceptedApiKeys": "any" if self.open_access else len(self.api_keys or ()),
                "acceptedTokens": "any" if self.open_access else len(self.tokens or ()),
                "tunedModels": models,
                "tuningJobs": [
                    {"name": job.name, "state": job_status(job, now).state, "totalSteps": job.total_steps}
                    for job in sorted(self.store.tuning_jobs.values(), key=lambda j: j.sort_key)
                ],
                "buckets": sorted(self.store.buckets),
                "objectCount": len(self.store.objects),
                "faults": self.faults.to_config(),
                "requestCount": len(self._log),
            }
