"""The docs cannot drift from the code: their snippets match the example DAGs, their links resolve.

Also tests the snippet mechanism itself (``scripts/docs_snippets.py``) on throw-away files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
from airflow_provider_tuning.waiting import wait_for_tuning
from scripts import docs_snippets
from tuning_api_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
LINKED_FILES = [*DOCS, ROOT / "README.md"]
#: The operator snippets the example DAGs mark; every one is shown in the docs.
HOWTO_MARKERS = {
    "howto_operator_create_tuned_model",
    "howto_operator_generate_content",
    "howto_operator_generate_text",
    "howto_operator_delete_tuned_model",
    "howto_operator_list_tuned_models",
    "howto_sensor_tuned_model",
    "howto_trigger_form_params",
}
LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE_RE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN_RE = re.compile(r"``.*?``|`[^`\n]*`")


# --- the repository's docs ---------------------------------------------------------------------


def test_every_snippet_in_the_docs_matches_its_source() -> None:
    stale, problems = docs_snippets.run(ROOT, write=False)
    assert problems == []
    assert stale == [], "run python scripts/docs_snippets.py"


def test_the_docs_show_every_marked_operator_snippet() -> None:
    used = {name for _, _, name in docs_snippets.used_snippets(ROOT)}
    assert used >= HOWTO_MARKERS, f"not shown in any doc: {sorted(HOWTO_MARKERS - used)}"


def test_the_check_command_passes_on_the_repository() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_snippets.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE_RE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def broken_links(files: list[Path]) -> list[str]:
    """Relative links (and their #anchors) in ``files`` that do not resolve."""
    broken = []
    for path in files:
        text = CODE_SPAN_RE.sub("", FENCE_RE.sub("", path.read_text(encoding="utf-8")))
        for target in LINK_RE.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_in_the_docs_and_readme_resolves() -> None:
    assert DOCS, "no docs found"
    assert broken_links(LINKED_FILES) == []


def test_the_index_links_every_page() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    linked = {(ROOT / "docs" / t.partition("#")[0]).resolve() for t in LINK_RE.findall(index)}
    missing = [str(p.relative_to(ROOT)) for p in DOCS if p.name != "index.md" and p not in linked]
    assert missing == []


# --- the mechanism -------------------------------------------------------------------------------

SOURCE = """\
from airflow.sdk import DAG

with DAG("d"):
    # [START howto_example]
    task = Operator(
        task_id="t",
    )
    # [END howto_example]
"""
EXPECTED_BLOCK = '```python\ntask = Operator(\n    task_id="t",\n)\n```'


def _tree(tmp_path: Path, block: str) -> Path:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "example.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "page.md"
    doc.write_text(
        f"# Page\n\n<!-- snippet: dags/example.py howto_example -->\n{block}\n<!-- /snippet -->\n\nAfter.\n",
        encoding="utf-8",
    )
    return doc


def test_a_stale_block_is_reported_and_then_refreshed_dedented(tmp_path: Path) -> None:
    doc = _tree(tmp_path, "```python\nold = True\n```")
    stale, problems = docs_snippets.run(tmp_path, write=False)
    assert problems == []
    assert stale == ["docs/page.md:3: dags/example.py howto_example is stale"]
    assert "old = True" in doc.read_text(encoding="utf-8")  # --check never writes

    docs_snippets.run(tmp_path, write=True)
    text = doc.read_text(encoding="utf-8")
    assert EXPECTED_BLOCK in text
    assert text.startswith("# Page\n")
    assert text.endswith("After.\n")
    assert docs_snippets.run(tmp_path, write=False) == ([], [])


def test_an_empty_block_is_filled(tmp_path: Path) -> None:
    doc = _tree(tmp_path, "")
    docs_snippets.run(tmp_path, write=True)
    assert EXPECTED_BLOCK in doc.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "source file"),
        ("x = 1\n", "marker '# [START howto_example]' not found"),
        ("# [START howto_example]\nx = 1\n", "marker '# [END howto_example]' not found"),
        (
            "# [START howto_example]\n# [END howto_example]\n# [START howto_example]\n",
            "appears 2 times",
        ),
    ],
)
def test_missing_sources_and_markers_are_problems(tmp_path: Path, source: str | None, message: str) -> None:
    _tree(tmp_path, "```python\n```")
    target = tmp_path / "dags" / "example.py"
    if source is None:
        target.unlink()
    else:
        target.write_text(source, encoding="utf-8")
    _stale, problems = docs_snippets.run(tmp_path, write=False)
    assert len(problems) == 1
    assert message in problems[0]
    assert problems[0].startswith("docs/page.md:3: ")


def test_an_unclosed_block_is_a_problem(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- snippet: dags/example.py howto_example -->\n```python\n```\n", encoding="utf-8")
    _, problems = docs_snippets.run(tmp_path, [doc], write=False)
    assert problems == ["doc.md:1: snippet is not closed (<!-- /snippet --> missing)"]


def test_the_check_command_exits_1_and_lists_the_stale_block(tmp_path: Path) -> None:
    _tree(tmp_path, "```python\nold = True\n```")
    script = str(ROOT / "scripts" / "docs_snippets.py")
    check = [sys.executable, script, "--root", str(tmp_path), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 1
    assert "docs/page.md:3: dags/example.py howto_example is stale" in result.stdout
    fix = subprocess.run(check[:-1], capture_output=True, text=True, check=False, timeout=60)
    assert fix.returncode == 0
    assert "refreshed docs/page.md:3" in fix.stdout
    assert subprocess.run(check, capture_output=True, check=False, timeout=60).returncode == 0


def test_the_link_checker_finds_a_broken_file_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Some `code` here\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#some-code-here) [web](https://example.com) [self](#top)\n"
        "# Top\n[gone](missing.md) [bad](a.md#nope) `[x](in-code.md)`\n```\n[in code](ignored.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links([page]) == [
        "page.md: missing.md (no such file)",
        "page.md: a.md#nope (no such heading)",
    ]


# --- the pytest fixture that docs/emulator.md shows (it runs here) -------------------------------


# [START howto_emulator_pytest_fixture]
@pytest.fixture
def tuning_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A local tuning API for one test; the default connection points at it."""
    with Emulator(step_seconds=0.01, api_keys=["test-key"]) as emulator:
        connection = {"conn_type": "generativelanguage", "host": emulator.url, "password": "test-key"}
        monkeypatch.setenv("AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT", json.dumps(connection))
        yield emulator


def test_tune_and_ask(tuning_api: Emulator) -> None:
    hook = GenerativeLanguageHook()
    operation = hook.create_tuned_model(
        {
            "baseModel": "models/gemini-1.5-flash-001-tuning",
            "tuningTask": {
                "trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}},
                "hyperparameters": {"epochCount": 3, "batchSize": 1},
            },
        },
        "my-test-model",
    )
    status = wait_for_tuning(hook, operation["name"], poll_interval=0.02, deadline=time.time() + 60)
    assert status.state == "ACTIVE"
    assert status.total_steps == 3

    answer = hook.generate_content("tunedModels/my-test-model", "1")
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "2"
    assert [entry["rpc"] for entry in tuning_api.request_log][:2] == ["CreateTunedModel", "GetOperation"]


# [END howto_emulator_pytest_fixture]


def test_the_configuration_table_lists_every_option_with_its_default() -> None:
    from airflow_provider_tuning.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["generative_language"]["options"]
    text = (ROOT / "docs" / "index.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (\S+) \|", section, re.MULTILINE))
    assert rows == {name: option["default"] for name, option in options.items()}
