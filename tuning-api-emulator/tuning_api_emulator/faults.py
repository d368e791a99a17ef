"""Faults on demand, per route, from a seeded random source (reproducible across runs).

A fault configuration is a JSON object ``{"seed": 7, "rules": [rule, ...]}`` (a bare list of
rules, or a single rule object, is accepted too). The first rule whose ``match`` fits a request
applies; each rule has:

``match``
    ``"*"`` (every API route), an rpc name glob such as ``"GetOperation"`` or ``"*TunedModel*"``,
    or a path glob starting with ``/`` (optionally prefixed by an HTTP method), such as
    ``"/v1/tunedModels/*/operations/*"`` or ``"POST /v1beta/tunedModels"``.
``error_429``, ``error_500``, ``error_503``, ``drop``, ``drop_after``
    Probabilities (summing to at most 1) of answering 429 RESOURCE_EXHAUSTED (with ``Retry-After``),
    500 INTERNAL, 503 UNAVAILABLE (with ``Retry-After``), closing the connection without an answer
    before the request is handled (``drop``: nothing changed), or closing it without an answer
    *after* the request was handled (``drop_after``: a create committed but its response was lost,
    so a retry sees the change, e.g. a 409 ALREADY_EXISTS).
``latency``, ``jitter``
    Seconds added before answering: ``latency + uniform(0, jitter)``.
``retry_after``
    The ``Retry-After`` value in whole seconds (default 1).
"""

from __future__ import annotations

import fnmatch
import math
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tuning_api_emulator.errors import StatusError
from tuning_api_emulator.jsonio import loads_json

_OUTCOMES = ("error_429", "error_500", "error_503", "drop", "drop_after")


@dataclass(frozen=True)
class FaultRule:
    """One fault rule (see the module docstring)."""

    match: str = "*"
    error_429: float = 0.0
    error_500: float = 0.0
    error_503: float = 0.0
    drop: float = 0.0
    drop_after: float = 0.0
    latency: float = 0.0
    jitter: float = 0.0
    retry_after: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.match, str) or not self.match:
            raise ValueError("fault rule: match must be a non-empty string")
        for name in _OUTCOMES:
            self._check_number(name, 1.0, "a probability from 0 to 1")
        for name in ("latency", "jitter"):
            self._check_number(name, None, "a finite number of seconds, 0 or more")
        if sum(getattr(self, name) for name in _OUTCOMES) > 1.0 + 1e-9:
            raise ValueError(f"fault rule {self.match!r}: {' + '.join(_OUTCOMES)} exceeds 1")
        if (
            isinstance(self.retry_after, bool)
            or not isinstance(self.retry_after, int)
            or self.retry_after < 0
        ):
            raise ValueError(f"fault rule {self.match!r}: retry_after must be a non-negative integer")

    def _check_number(self, name: str, high: float | None, expected: str) -> None:
        """Raise unless field ``name`` is a finite number from 0 to ``high`` (no bound if ``None``).

        :param name: the field.
        :param high: the largest value allowed.
        :param expected: what the value must be, for the error message.
        """
        value = getattr(self, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
            or (high is not None and value > high)
        ):
            raise ValueError(f"fault rule {self.match!r}: {name} must be {expected}, got {value!r}")

    def matches(self, rpc: str | None, method: str, path: str) -> bool:
        """Whether this rule applies to a request."""
        pattern = self.match.strip()
        if pattern == "*":
            return True
        verb, _, rest = pattern.partition(" ")
        if rest.startswith("/"):
            return verb.upper() == method.upper() and fnmatch.fnmatchcase(path, rest.strip())
        if pattern.startswith("/"):
            return fnmatch.fnmatchcase(path, pattern)
        return rpc is not None and fnmatch.fnmatchcase(rpc, pattern)


@dataclass(frozen=True)
class Decision:
    """What to do to one request: wait ``delay`` seconds, then ``outcome`` (``None`` = serve it)."""

    delay: float = 0.0
    outcome: str | None = None  # error_429 | error_500 | error_503 | drop | drop_after
    retry_after: int = 1

    def error(self) -> StatusError | None:
        """The Status error to answer with, for the error outcomes."""
        retry = {"Retry-After": str(self.retry_after)}
        if self.outcome == "error_429":
            return StatusError(
                "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", headers=retry
            )
        if self.outcome == "error_500":
            return StatusError(
                "INTERNAL",
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
            )
        if self.outcome == "error_503":
            return StatusError("UNAVAILABLE", "The service is currently unavailable.", headers=retry)
        return None


class FaultPlan:
    """Fault rules plus their seeded random source.

    :param rules: the rules, first match wins.
    :param seed: seed of the random source (re-seeded whenever the plan is replaced).
    """

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self.rules = list(rules or [])
        self.seed = seed
        self._rng = random.Random(seed)

    @classmethod
    def from_config(cls, config: Any, default_seed: int = 0) -> FaultPlan:
        """Build a plan from parsed JSON (object with ``rules``, list of rules, or one rule).

        :raises ValueError: on an unknown key or a bad value.
        """
        if config is None:
            return cls(seed=default_seed)
        if isinstance(config, list):
            config = {"rules": config}
        if not isinstance(config, dict):
            raise ValueError("fault configuration must be a JSON object or a list of rules")
        if "rules" not in config and "seed" not in config:
            config = {"rules": [config]}
        unknown = set(config) - {"rules", "seed"}
        if unknown:
            raise ValueError(f"unknown fault configuration keys: {sorted(unknown)}")
        seed = config.get("seed", default_seed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("fault configuration seed must be an integer")
        known = {f.name for f in fields(FaultRule)}
        rules = []
        for raw in config.get("rules", []):
            if not isinstance(raw, dict):
                raise ValueError("each fault rule must be a JSON object")
            extra = set(raw) - known
            if extra:
                raise ValueError(f"unknown fault rule keys: {sorted(extra)} (known: {sorted(known)})")
            rules.append(FaultRule(**raw))
        return cls(rules, seed)

    @classmethod
    def from_text(cls, text: str, default_seed: int = 0) -> FaultPlan:
        """Build a plan from JSON text or from the path of a JSON file."""
        stripped = text.strip()
        if not stripped.startswith(("{", "[")):
            stripped = Path(stripped).read_text(encoding="utf-8")
        return cls.from_config(loads_json(stripped, constants=True), default_seed)

    def to_config(self) -> dict[str, Any]:
        """The JSON form of the plan."""
        return {"seed": self.seed, "rules": [asdict(rule) for rule in self.rules]}

    def decide(self, rpc: str | None, method: str, path: str) -> Decision:
        """Draw the fate of one request."""
        for rule in self.rules:
            if rule.matches(rpc, method, path):
                delay = rule.latency + (self._rng.uniform(0.0, rule.jitter) if rule.jitter else 0.0)
                draw = self._rng.random()
                edge = 0.0
                for outcome in _OUTCOMES:
                    edge += getattr(rule, outcome)
                    if draw < edge:
                        return Decision(delay, outcome, rule.retry_after)
                return Decision(delay, None, rule.retry_after)
        return Decision()
