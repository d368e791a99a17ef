"""Template rendering that leaves inline data alone.

``training_data`` and ``prompts`` are template fields so that a path or URI can be templated
(``"/data/{{ ds }}.jsonl"``) and an ``XComArg`` resolves. Inline data is not a template: examples and
prompts may contain ``{{ ds }}`` or ``{% for %}`` as plain text, and must reach the API byte for byte.
Airflow's task SDK renders a field in ``_do_render_template_fields`` (called by
``BaseOperator.render_template_fields`` and, for a mapped task, on the unmapped operator by
``MappedOperator.render_template_fields``), so the operators override that method and hand the inline
fields to :func:`keep_inline_data` first.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any


def is_inline_text(text: str) -> bool:
    """Return whether ``text`` is inline data: a JSON (or Python-literal) list or object.

    A path, a URI, a single prompt or a Jinja expression such as ``"{{ ti.xcom_pull('prep') }}"`` is
    not (it does not parse), so it is still rendered.

    :param text: a template field's string value.
    """
    stripped = text.strip()
    if not stripped.startswith(("[", "{")):
        return False
    try:
        value = json.loads(stripped)
    except RecursionError:
        return True  # nested too deeply to parse: the loader names the problem
    except ValueError:
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return False
    return isinstance(value, (list, dict))


def is_inline_data(value: Any) -> bool:
    """Return whether a template field's value is inline data (never rendered as a template).

    :param value: a list, tuple or mapping, or a string of one (see :func:`is_inline_text`).
    """
    if isinstance(value, str):
        return is_inline_text(value)
    return isinstance(value, (list, tuple, Mapping))


def resolve_references(value: Any, context: Mapping[str, Any]) -> Any:
    """Return ``value`` with every ``XComArg`` inside it resolved and every string left as it is.

    :param value: inline data.
    :param context: the Airflow context.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, os.PathLike) and callable(getattr(value, "resolve", None)):
        return value.resolve(context)
    if isinstance(value, list):
        return [resolve_references(item, context) for item in value]
    if value.__class__ is tuple:
        return tuple(resolve_references(item, context) for item in value)
    if isinstance(value, dict):
        return {key: resolve_references(item, context) for key, item in value.items()}
    return value


def keep_inline_data(
    operator: Any, template_fields: Iterable[str], names: Iterable[str], context: Mapping[str, Any]
) -> list[str]:
    """Resolve the inline data among ``names`` on ``operator`` without rendering it; return the fields
    that are still to be rendered as templates.

    :param operator: the operator being rendered (the ``parent`` of ``_do_render_template_fields``).
    :param template_fields: the fields about to be rendered.
    :param names: the fields that may hold inline data (``training_data``, ``prompts``).
    :param context: the Airflow context.
    """
    remaining = list(template_fields)
    for name in names:
        value = getattr(operator, name, None)
        if name in remaining and is_inline_data(value):
            # Nested too deeply to walk: it holds no XComArg, and the loader names the problem.
            with suppress(RecursionError):
                setattr(operator, name, resolve_references(value, context))
            remaining.remove(name)
    return remaining
