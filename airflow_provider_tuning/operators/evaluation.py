"""Scoring generated texts against expected outputs (stdlib only).

Two metrics, each the fraction of prompts with an expected output whose answer matches it:

``exact``
    ``text == expected``, character for character (no stripping, case-sensitive).

``normalized``
    ``normalize_text(text) == normalize_text(expected)``, where :func:`normalize_text` applies, in
    this order:

    1. ``str.casefold()`` (Unicode case folding: ``"LXIV"`` -> ``"lxiv"``, ``"Straße"`` -> ``"strasse"``);
    2. whitespace collapse: every run of whitespace (as ``str.split()`` sees it, Unicode spaces and
       newlines included) becomes one ASCII space, and leading/trailing whitespace is removed;
    3. trailing punctuation strip: the characters in :data:`TRAILING_PUNCTUATION`
       (``. , ; : ! ?``, the ellipsis U+2026, the ideographic full stop U+3002 and comma U+3001,
       and the full-width forms of ``. , ; : ! ?``: U+FF0E U+FF0C U+FF1B U+FF1A U+FF01 U+FF1F) are
       removed from the end, repeatedly, together with any whitespace between them (``"Two hundred one !"`` ->
       ``"two hundred one"``). Punctuation inside the text, and closing brackets or quotes at its end,
       are kept.

A prompt whose call failed (``continue_on_error``) or was blocked (no text) counts as a non-match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Characters removed from the end of a text by :func:`normalize_text`.
TRAILING_PUNCTUATION = (
    ".,;:!?\u2026"  # ASCII . , ; : ! ? and the ellipsis
    "\u3002\u3001"  # ideographic full stop and comma
    "\uff0e\uff0c\uff1b\uff1a\uff01\uff1f"  # full-width . , ; : ! ?
)

#: The metrics :func:`score` computes, usable as ``min_score_metric``.
METRICS = ("exact", "normalized")


def normalize_text(text: str) -> str:
    """Normalise a text for the ``normalized`` metric (see the module docstring for the exact rules).

    :param text: the text to normalise.
    """
    folded = " ".join(text.casefold().split())
    return folded.rstrip(TRAILING_PUNCTUATION + " ")


def match_flags(text: str | None, expected: str) -> dict[str, bool]:
    """Return ``{"exact_match": ..., "normalized_match": ...}`` for one answer.

    :param text: the generated text (``None`` when there is none: error or blocked prompt).
    :param expected: the expected output.
    """
    if text is None:
        return {"exact_match": False, "normalized_match": False}
    return {
        "exact_match": text == expected,
        "normalized_match": normalize_text(text) == normalize_text(expected),
    }


def score(results: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Aggregate the match flags of results that have an ``expected`` value.

    :param results: per-prompt results carrying ``expected``, ``exact_match`` and ``normalized_match``.
    :return: ``{"exact": float, "normalized": float, "total": int, "exact_matches": int,
        "normalized_matches": int}``, or ``None`` when no result has an expected output.
    """
    total = exact = normalized = 0
    for result in results:
        if result.get("expected") is None:
            continue
        total += 1
        exact += bool(result.get("exact_match"))
        normalized += bool(result.get("normalized_match"))
    if total == 0:
        return None
    return {
        "exact": exact / total,
        "normalized": normalized / total,
        "total": total,
        "exact_matches": exact,
        "normalized_matches": normalized,
    }


def format_table(
    results: Sequence[Mapping[str, Any]], evaluation: Mapping[str, Any], *, limit: int = 20
) -> str:
    """Render the evaluation as a plain-text table for the task log.

    :param results: per-prompt results (only those with an ``expected`` value are listed).
    :param evaluation: the output of :func:`score`.
    :param limit: list at most this many mismatching rows (the summary lines always appear).
    """

    def cell(value: Any, width: int = 30) -> str:
        text = "<none>" if value is None else " ".join(str(value).split())
        return text if len(text) <= width else text[: width - 1] + "…"

    total = evaluation["total"]
    lines = [
        f"evaluation over {total} prompt(s) with an expected output:",
        f"  exact      {evaluation['exact_matches']:>6}/{total}  {evaluation['exact']:.4f}",
        f"  normalized {evaluation['normalized_matches']:>6}/{total}  {evaluation['normalized']:.4f}",
    ]
    misses = [
        (i, r)
        for i, r in enumerate(results)
        if r.get("expected") is not None and not r.get("normalized_match")
    ]
    if misses:
        lines.append(f"  normalized mismatches ({len(misses)}, first {min(limit, len(misses))}):")
        lines.append(f"  {'#':>5}  {'prompt':<30}  {'expected':<30}  got")
        for i, r in misses[:limit]:
            got = r.get("text") if r.get("error") is None else f"error: {r['error'].get('message')}"
            lines.append(
                f"  {i:>5}  {cell(r.get('prompt')):<30}  {cell(r.get('expected')):<30}  {cell(got, 80)}"
            )
    return "\n".join(lines)
