"""Recognisable secrets and a scanner that looks for them in files, DB rows, logs and requests.

Each secret is ``LEAKCHECK-<KIND>-<20 random hex>``. The scanner looks for the whole secret and
also for its random part alone (first 12 characters), so a truncated, re-prefixed or partly
masked copy is still found. A secret of another form (an access token the emulator issued) is
also looked for by its middle 16 characters.
"""

from __future__ import annotations

import base64
import secrets as _random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PREFIX = "LEAKCHECK"
_UNIQUE_CHARS = 12
_MIDDLE_CHARS = 16


def make_secret(kind: str) -> str:
    """A fresh recognisable secret, e.g. ``LEAKCHECK-APIKEY-3f0c...``.

    :param kind: a short upper-case label (``APIKEY``, ``TOKEN``, ...).
    """
    return f"{_PREFIX}-{kind}-{_random.token_hex(10)}"


def _unique_part(secret: str) -> str:
    """The part of ``secret`` that no other text contains by chance (see the module docstring)."""
    if secret.startswith(f"{_PREFIX}-"):
        return secret.rsplit("-", 1)[-1][:_UNIQUE_CHARS]
    if len(secret) < 2 * _MIDDLE_CHARS:
        raise ValueError(f"a secret of {len(secret)} characters is too short to look for reliably")
    start = (len(secret) - _MIDDLE_CHARS) // 2
    return secret[start : start + _MIDDLE_CHARS]


@dataclass(frozen=True)
class Hit:
    """One place where a secret was found."""

    source: str
    secret_name: str
    context: str


class LeakScanner:
    """Search texts for a set of named secrets.

    :param named_secrets: ``{name: secret}``.
    """

    def __init__(self, named_secrets: Mapping[str, str]) -> None:
        self.secrets = dict(named_secrets)
        self._needles: list[tuple[str, bytes]] = []
        for name, value in self.secrets.items():
            unique = _unique_part(value)
            for needle in {value, unique, base64.b64encode(value.encode()).decode()}:
                self._needles.append((name, needle.encode()))
        self.sources_scanned = 0
        self.bytes_scanned = 0

    def scan_bytes(self, source: str, data: bytes) -> list[Hit]:
        """Search one blob."""
        self.sources_scanned += 1
        self.bytes_scanned += len(data)
        hits = []
        for name, needle in self._needles:
            start = data.find(needle)
            if start >= 0:
                context = data[max(0, start - 60) : start + len(needle) + 60]
                hits.append(Hit(source, name, context.decode("utf-8", errors="replace")))
        return hits

    def scan_text(self, source: str, text: str) -> list[Hit]:
        """Search one string."""
        return self.scan_bytes(source, text.encode("utf-8", errors="surrogateescape"))

    def scan_value(self, source: str, value: Any) -> list[Hit]:
        """Search any value through its ``repr`` (nested dicts, lists, rows...)."""
        return self.scan_text(source, repr(value))

    def scan_tree(self, root: Path) -> list[Hit]:
        """Search every file under ``root`` as raw bytes (logs, the sqlite DB file, configs...)."""
        hits: list[Hit] = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            hits += self.scan_bytes(str(path), path.read_bytes())
        return hits

    def scan_many(self, items: Iterable[tuple[str, Any]]) -> list[Hit]:
        """Search several ``(source, value)`` pairs (strings or other values)."""
        hits: list[Hit] = []
        for source, value in items:
            if isinstance(value, bytes):
                hits += self.scan_bytes(source, value)
            elif isinstance(value, str):
                hits += self.scan_text(source, value)
            else:
                hits += self.scan_value(source, value)
        return hits


def request_log_items(label: str, request_log: Iterable[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """The parts of an emulator request log to scan: path, query, body and (redacted) headers."""
    items: list[tuple[str, Any]] = []
    for index, entry in enumerate(request_log):
        where = f"{label}[{index}] {entry.get('method')} {entry.get('path')}"
        items += [
            (f"{where} path", str(entry.get("path"))),
            (f"{where} query", str(entry.get("query"))),
            (f"{where} body", str(entry.get("body"))),
            (f"{where} headers", entry.get("headers")),
        ]
    return items
