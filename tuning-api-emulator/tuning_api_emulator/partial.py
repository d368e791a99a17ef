"""Partial responses: Google's ``fields`` system parameter.

``?fields=name,done,metadata(completedSteps,totalSteps),error`` keeps only those fields of the
response. The syntax is Google's:

* a comma-separated list of field paths;
* ``a/b`` selects ``b`` inside ``a`` (``a(b,c)`` selects ``b`` and ``c`` inside ``a``, nestable);
* ``*`` selects every field at its level (``tunedModels/*`` or ``*``);
* names are the JSON (lowerCamelCase) names; snake_case proto names are accepted too.

A selection inside a repeated field applies to each element (``tunedModels(name,state)``); an
object that is kept keeps its ``@type`` (so an ``Any`` such as ``Operation.metadata`` can still be
decoded). A name the response does not have selects nothing. A malformed expression (empty name,
unbalanced parentheses, a character outside names and ``, / ( ) *``) is a 400 INVALID_ARGUMENT
naming the problem. The parser is iterative, so no expression can exhaust the stack.
"""

from __future__ import annotations

import re
from typing import Any

from tuning_api_emulator.errors import StatusError, bad_request
from tuning_api_emulator.schema import camel

#: A parsed selection: field name -> ``None`` (the whole field) or a nested selection.
Selection = dict[str, "Selection | None"]

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*|\*)|(?P<sep>[,/()]))\s*")


_SHOWN = 200  # characters of an invalid expression quoted in the error


def _invalid(expression: str, reason: str) -> StatusError:
    shown = expression if len(expression) <= _SHOWN else f"{expression[:_SHOWN]}..."
    return bad_request(f"Invalid field selection {shown!r} in the fields parameter: {reason}.", "fields")


def _tokens(expression: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs, kind ``name`` or ``sep``."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        found = _TOKEN.match(expression, position)
        if found is None:
            raise _invalid(expression, f"unexpected character {expression[position]!r} at {position}")
        kind = "name" if found.group("name") is not None else "sep"
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


def _add(selection: Selection, path: list[str], *, nested: bool) -> Selection:
    """Add ``path`` to ``selection``; returns the selection inside its last name when ``nested``."""
    for index, name in enumerate(path):
        last = index == len(path) - 1
        if name in selection and selection[name] is None:
            return {}  # the whole field is already selected: narrower selections change nothing
        if last and not nested:
            selection[name] = None
            return selection
        inner = selection.get(name)  # absent here: a whole-field selection returned above
        if inner is None:
            inner = selection[name] = {}
        selection = inner
    return selection


def parse_fields(expression: str) -> Selection:
    """Parse a ``fields`` expression.

    :param expression: e.g. ``name,metadata(completedSteps,totalSteps)``.
    :raises StatusError: 400 INVALID_ARGUMENT for a malformed expression.
    """
    stack: list[Selection] = [{}]
    path: list[str] = []
    expect_name, closed = True, False
    for kind, text in _tokens(expression):
        if expect_name:
            if kind != "name":
                raise _invalid(expression, f"a field name is missing before {text!r}")
            path.append(text)
            expect_name = False
        elif text in ("/", "(") and closed:
            raise _invalid(expression, f"{text!r} cannot follow ')'")
        elif kind == "name":
            raise _invalid(expression, f"{text!r} must be separated from the name before it by ',' or '/'")
        elif text == "/":
            expect_name = True
        elif text == "(":
            stack.append(_add(stack[-1], path, nested=True))
            path, expect_name = [], True
        else:  # "," or ")"
            if path:
                _add(stack[-1], path, nested=False)
            path, closed = [], False
            if text == ",":
                expect_name = True
            elif len(stack) == 1:
                raise _invalid(expression, "')' without a matching '('")
            else:
                stack.pop()
                closed = True
    if expect_name:
        raise _invalid(expression, "it is empty or ends with a separator")
    if len(stack) > 1:
        raise _invalid(expression, "'(' without a matching ')'")
    if path:
        _add(stack[0], path, nested=False)
    return stack[0]


def _normalized(selection: Selection) -> dict[str, Selection | None]:
    normalized: dict[str, Selection | None] = {}
    for name, inner in selection.items():
        key = name if name == "*" else camel(name)
        if key in normalized and (normalized[key] is None or inner is None):
            normalized[key] = None
        elif key in normalized:
            normalized[key] = {**(normalized[key] or {}), **(inner or {})}
        else:
            normalized[key] = inner
    return normalized


_ABSENT = object()


def select(value: Any, selection: Selection) -> Any:
    """The part of a response body ``selection`` keeps.

    :param value: a response body (or part of one).
    :param selection: from :func:`parse_fields`.
    """
    if isinstance(value, list):
        return [select(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    wanted = _normalized(selection)
    out: dict[str, Any] = {}
    for key, item in value.items():
        inner = wanted.get(key, wanted.get("*", _ABSENT))
        if key == "@type" or inner is None:
            out[key] = item
        elif inner is not _ABSENT:
            out[key] = select(item, inner)  # type: ignore[arg-type]
    return out
