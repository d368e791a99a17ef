"""Keep the code snippets of the docs identical to the example DAGs they are taken from.

A doc marks a snippet like this (the fenced block in between is generated)::

    <!-- snippet: dags/example_gemini_tuning.py howto_operator_create_tuned_model -->
    ```python
    ...
    ```
    <!-- /snippet -->

and the source file marks the region with ``# [START howto_operator_create_tuned_model]`` and
``# [END howto_operator_create_tuned_model]`` lines. The block is the region between those two
lines, dedented, without leading or trailing blank lines.

``python scripts/docs_snippets.py`` rewrites every block from its source;
``python scripts/docs_snippets.py --check`` changes nothing and exits 1 listing stale blocks and
missing files or markers. Both scan ``docs/**/*.md`` and ``README.md`` (or the files given).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPEN_RE = re.compile(r"^<!-- snippet: (?P<path>\S+) (?P<name>\S+) -->\s*$")
CLOSE = "<!-- /snippet -->"
FENCE = "```"


class SnippetError(Exception):
    """A snippet cannot be rendered: its source file or one of its markers is missing."""


@dataclass(frozen=True)
class Snippet:
    """One snippet block of a doc.

    :param path: the source file, relative to the repository root.
    :param name: the marker name (``# [START <name>]`` / ``# [END <name>]``).
    :param line: the 1-based line of the opening comment in the doc.
    :param start: index of the first line after the opening comment.
    :param end: index of the closing comment line.
    """

    path: str
    name: str
    line: int
    start: int
    end: int


def find_snippets(lines: list[str], doc: str = "doc") -> tuple[list[Snippet], list[str]]:
    """Return the snippet blocks of a doc's lines, and the problems found (unclosed or nested blocks).

    :param lines: the doc's lines, without line endings.
    :param doc: the doc's name, for messages.
    """
    snippets: list[Snippet] = []
    problems: list[str] = []
    opened: tuple[int, re.Match[str]] | None = None
    for index, line in enumerate(lines):
        match = OPEN_RE.match(line.strip())
        if match:
            if opened is not None:
                problems.append(f"{doc}:{opened[0] + 1}: snippet is not closed before the next one")
            opened = (index, match)
        elif line.strip() == CLOSE:
            if opened is None:
                problems.append(f"{doc}:{index + 1}: {CLOSE} without an opening snippet comment")
                continue
            first, found = opened
            snippets.append(Snippet(found["path"], found["name"], first + 1, first + 1, index))
            opened = None
    if opened is not None:
        problems.append(f"{doc}:{opened[0] + 1}: snippet is not closed ({CLOSE} missing)")
    return snippets, problems


def extract(source: Path, name: str, shown: str | None = None) -> str:
    """Return the region of ``source`` between its ``[START name]`` and ``[END name]`` comment lines.

    :param source: the source file.
    :param name: the marker name.
    :param shown: how messages name the file (default: its path).
    :raises SnippetError: the file or a marker is missing, or a marker appears twice.
    """
    label = shown or str(source)
    if not source.is_file():
        raise SnippetError(f"source file {label} not found")
    lines = source.read_text(encoding="utf-8").splitlines()
    start_marker, end_marker = f"# [START {name}]", f"# [END {name}]"
    starts = [i for i, line in enumerate(lines) if line.strip() == start_marker]
    ends = [i for i, line in enumerate(lines) if line.strip() == end_marker]
    for marker, found in ((start_marker, starts), (end_marker, ends)):
        if not found:
            raise SnippetError(f"marker {marker!r} not found in {label}")
        if len(found) > 1:
            raise SnippetError(f"marker {marker!r} appears {len(found)} times in {label}")
    if ends[0] < starts[0]:
        raise SnippetError(f"marker {end_marker!r} comes before {start_marker!r} in {label}")
    body = textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).strip("\n")
    if not body.strip():
        raise SnippetError(f"the region {name!r} of {label} is empty")
    return body


def render_block(body: str, language: str = "python") -> list[str]:
    """Return the fenced block lines for ``body``."""
    return [f"{FENCE}{language}", *body.splitlines(), FENCE]


def refresh(text: str, root: Path, doc: str = "doc") -> tuple[str, list[str], list[str]]:
    """Fill every snippet block of a doc from its source.

    :param text: the doc's text.
    :param root: the directory the snippet paths are relative to.
    :param doc: the doc's name, for messages.
    :return: the new text, the stale blocks (``doc:line: path name``) and the problems.
    """
    lines = text.splitlines()
    snippets, problems = find_snippets(lines, doc)
    stale: list[str] = []
    for snippet in reversed(snippets):  # from the end, so earlier indexes stay valid
        try:
            block = render_block(extract(root / snippet.path, snippet.name, snippet.path))
        except SnippetError as err:
            problems.append(f"{doc}:{snippet.line}: {err}")
            continue
        if lines[snippet.start : snippet.end] != block:
            stale.append(f"{doc}:{snippet.line}: {snippet.path} {snippet.name} is stale")
            lines[snippet.start : snippet.end] = block
    new_text = "\n".join(lines) + ("\n" if text.endswith("\n") or not text else "")
    return new_text, sorted(stale), sorted(problems)


def default_docs(root: Path) -> list[Path]:
    """``docs/**/*.md`` and ``README.md`` under ``root``."""
    docs = sorted((root / "docs").rglob("*.md"))
    readme = root / "README.md"
    return [*docs, readme] if readme.is_file() else docs


def used_snippets(root: Path, docs: list[Path] | None = None) -> list[tuple[str, str, str]]:
    """Every ``(doc, path, name)`` snippet the docs use."""
    found = []
    for doc in docs if docs is not None else default_docs(root):
        snippets, _ = find_snippets(doc.read_text(encoding="utf-8").splitlines())
        found += [(str(doc.relative_to(root)), s.path, s.name) for s in snippets]
    return found


def run(root: Path, docs: list[Path] | None = None, *, write: bool) -> tuple[list[str], list[str]]:
    """Check (and with ``write``, refresh) the docs; return the stale blocks and the problems.

    :param root: the repository root.
    :param docs: the docs to process (default :func:`default_docs`).
    :param write: rewrite the docs whose blocks are stale.
    """
    all_stale: list[str] = []
    all_problems: list[str] = []
    for doc in docs if docs is not None else default_docs(root):
        text = doc.read_text(encoding="utf-8")
        name = str(doc.relative_to(root)) if doc.is_relative_to(root) else str(doc)
        new_text, stale, problems = refresh(text, root, name)
        all_stale += stale
        all_problems += problems
        if write and new_text != text:
            doc.write_text(new_text, encoding="utf-8")
    return all_stale, all_problems


def main(argv: list[str] | None = None) -> int:
    """Refresh (or with ``--check``, verify) the snippet blocks of the docs."""
    parser = argparse.ArgumentParser(description="Fill the docs' code snippets from the example DAGs.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    parser.add_argument("docs", nargs="*", type=Path, help="docs to process (default: docs/**/*.md, README)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    docs = [d.resolve() for d in args.docs] or None
    stale, problems = run(root, docs, write=not args.check)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if args.check:
        for item in stale:
            print(item)
        if stale:
            print(f"{len(stale)} stale snippet(s): run python scripts/docs_snippets.py", file=sys.stderr)
    else:
        for item in stale:
            print(f"refreshed {item.removesuffix(' is stale')}")
    return 1 if problems or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
