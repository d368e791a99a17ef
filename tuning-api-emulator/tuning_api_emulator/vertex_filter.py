"""``tuningJobs.list`` filters: the subset of AIP-160 a caller needs to find its jobs.

Terms joined by ``AND``; each is ``field op value`` with ``=``, ``!=``, ``:`` (``labels.k:*``
means the label is set), and ``<``, ``<=``, ``>``, ``>=`` on ``create_time``/``update_time``. Fields:
``labels.<key>``, ``state``, ``base_model``, ``tuned_model_display_name``, ``create_time``,
``update_time`` (camelCase works too). Values are bare words or double-quoted strings. The
service does not document its filter grammar; anything else is a 400 naming what is unsupported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tuning_api_emulator.errors import bad_request
from tuning_api_emulator.schema import camel

_TERM = re.compile(
    r'\s*(?P<field>[A-Za-z_][\w.-]*)\s*(?P<op><=|>=|!=|=|:|<|>)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s"()]+)\s*'
)
_AND = re.compile(r"AND\s+|AND$")
_FIELDS = ("state", "baseModel", "tunedModelDisplayName", "createTime", "updateTime")
Predicate = Callable[[dict[str, Any]], bool]


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _term(field: str, op: str, value: str) -> Predicate:
    if field.startswith("labels."):
        key = field[len("labels.") :]

        def label(job: dict[str, Any]) -> bool:
            actual = job.get("labels", {}).get(key)
            if op == ":" and value == "*":
                return actual is not None
            if op in ("=", ":"):
                return actual == value
            if op == "!=":
                return actual != value
            raise bad_request(f"Unsupported operator {op} for {field} in the filter.", "filter")

        if op not in ("=", ":", "!="):
            raise bad_request(f"Unsupported operator {op} for {field} in the filter.", "filter")
        return label
    name = camel(field)
    if name not in _FIELDS:
        raise bad_request(
            f'Unsupported field "{field}" in the filter: use labels.<key>, state, base_model, '
            "tuned_model_display_name, create_time or update_time.",
            "filter",
        )
    if op in ("<", "<=", ">", ">=") and name not in ("createTime", "updateTime"):
        raise bad_request(f"Unsupported operator {op} for {field} in the filter.", "filter")
    compare: dict[str, Callable[[str, str], bool]] = {
        "=": lambda a, b: a == b,
        ":": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    check = compare[op]
    return lambda job: check(str(job.get(name, "")), value)


def compile_filter(expression: str) -> Predicate:
    """A predicate on rendered ``TuningJob`` JSON for ``expression`` (empty: everything).

    :raises StatusError: 400 INVALID_ARGUMENT on a syntax error or an unsupported field.
    """
    terms: list[Predicate] = []
    position, text = 0, expression.strip()
    while position < len(text):
        found = _TERM.match(text, position)
        if found is None:
            raise bad_request(
                f'Invalid filter "{expression}": cannot parse at position {position}.', "filter"
            )
        terms.append(_term(found.group("field"), found.group("op"), _unquote(found.group("value"))))
        position = found.end()
        if position < len(text):
            joined = _AND.match(text, position)
            if joined is None:
                raise bad_request(
                    f'Invalid filter "{expression}": only AND joins terms (at position {position}).', "filter"
                )
            position = joined.end()
            if position >= len(text):
                raise bad_request(f'Invalid filter "{expression}": a term must follow AND.', "filter")
    return lambda job: all(term(job) for term in terms)
