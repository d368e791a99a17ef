"""Smoke test of the benchmarks: each script runs with ``--quick`` and prints its tables.

No timing is asserted (figures belong in BENCHMARKS.md); only that every script finishes, exits 0 and
prints the table headers and rows it promises.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# script -> header cells that must appear in a Markdown table header line, and a row marker.
EXPECTED = {
    "trigger_scale.py": (
        ["lag p99 ms", "polls/s (at emulator)", "% of scheduled", "RSS KB per wait", "CPU ms per poll"],
        ["TuningOperationTrigger (1 loop)", "poke sensor (thread each)"],
    ),
    "batch_inference.py": (
        ["seed loop prompts/s", "operator prompts/s", "% of bound", "max requests in any 60 s window"],
        ["| 1 "],
    ),
    "import_cost.py": (
        ["ms (median)", "RSS MiB", "goal < 50 ms, < 5 MiB"],
        ["provider: all three", "REFERENCE trivial 1-task DAG"],
    ),
    "big_job_poll.py": (
        ["response bytes", "CPU ms/poll", "max loop hold ms", "event bytes"],
        ["| full ", "| partial "],
    ),
    "hook_overhead.py": (
        ["Session(trust_env=False) µs p50", "hook µs p50", "refreshes at token endpoint"],
        ["| 3600 "],
    ),
    "ui_list.py": (
        ["ms (median)", "x baseline median", "gzip bytes"],
        ["| plain hook list (baseline) ", "| view API, cold cache ", "| total (goal < 300 KB) "],
    ),
}


def _table_header_lines(output: str) -> list[str]:
    lines = output.splitlines()
    return [
        line for line, below in itertools.pairwise(lines) if line.startswith("| ") and below.startswith("| -")
    ]


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_script_prints_its_tables(script: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        encoding="utf-8",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    headers = _table_header_lines(out)
    assert headers, out[-4000:]
    columns, rows = EXPECTED[script]
    for column in columns:
        assert any(f" {column} " in header for header in headers), (column, headers)
    for row in rows:
        assert any(line.startswith("| ") and row in line for line in out.splitlines()), (row, out[-4000:])
    assert f"bench/{script} --quick" in out
    assert "machine: nproc=" in out
