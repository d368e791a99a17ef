"""Import cost of the provider's operator and sensor modules, and of parsing the example DAGs.

Every figure comes from a fresh subprocess that first imports ``airflow.sdk`` (what any DAG file pays
anyway) and then measures what is ADDED: wall time, RSS, and (in a separate subprocess, since
tracing slows imports) the bytes tracemalloc sees allocated and still alive. Each measurement is
repeated and the median is reported.

Baseline in the same run: the Google provider's generative-AI operators module
``airflow.providers.google.cloud.operators.gen_ai``, in a throwaway virtualenv (apache-airflow 3.3.2 +
apache-airflow-providers-google) made by this script and reused when present. The provider's own
modules are also measured inside that virtualenv (via PYTHONPATH), so the ratio compares the two in
the same interpreter and site-packages.

DAG files: each ``dags/*.py`` parsed alone in a ``DagBag`` (after ``DagBag`` itself is imported), and
two one-task DAGs as references (an ``EmptyOperator``; a ``@task``, whose Airflow modules load on
first use). Goal: < 50 ms and < 5 MiB added per DAG file.

The probes import a copy of the package made in a temporary directory, never the working tree, in two
forms: as ``pip install`` leaves it (each module compiled to ``__pycache__``), which is what a DAG
processor loads and what the goal is judged on; and bare sources with ``PYTHONDONTWRITEBYTECODE=1``
(each import compiles every module again), as an editable install on a machine that sets it.

Usage: ``python bench/import_cost.py [--quick] [--repeat 5] [--google-venv /tmp/bench-google-venv]``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, command_line, isolated_airflow_env, machine_header, median, table

PACKAGE = "airflow_provider_tuning"
GOOGLE_MODULE = "airflow.providers.google.cloud.operators.gen_ai"
GOOGLE_REQUIREMENTS = ["apache-airflow==3.3.2", "apache-airflow-providers-google"]
OURS = {
    "operators.tuning": ["airflow_provider_tuning.operators.tuning"],
    "operators.generate": ["airflow_provider_tuning.operators.generate"],
    "sensors.tuning": ["airflow_provider_tuning.sensors.tuning"],
    "all three": [
        "airflow_provider_tuning.operators.tuning",
        "airflow_provider_tuning.operators.generate",
        "airflow_provider_tuning.sensors.tuning",
    ],
}
GOAL_MS = 50.0
GOAL_MIB = 5.0
MIB = 1024 * 1024

# Runs in the fresh subprocess: import airflow.sdk, then measure the import of argv modules.
_IMPORT_PROBE = r"""
import importlib, json, os, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
trace = sys.argv[1] == "trace"
t = time.perf_counter()
import airflow.sdk
sdk_s = time.perf_counter() - t
if trace:
    import tracemalloc
    tracemalloc.start()
rss0 = rss()
t0 = time.perf_counter()
for name in sys.argv[2:]:
    importlib.import_module(name)
elapsed = time.perf_counter() - t0
out = {"sdk_s": sdk_s, "s": elapsed, "rss": rss() - rss0}
out["origin"] = getattr(sys.modules.get("airflow_provider_tuning"), "__file__", None)
if trace:
    out["traced"] = tracemalloc.get_traced_memory()[0]
print(json.dumps(out))
"""

# Parses one DAG file (or folder) in a DagBag after DagBag and airflow.sdk are imported.
_DAGBAG_PROBE = r"""
import json, os, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
trace = sys.argv[1] == "trace"
import airflow.sdk
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
if sys.argv[3:] == ["pre"]:  # as the DAG processor pre-imports the airflow.* modules a file uses
    import airflow_provider_tuning.operators.generate
    import airflow_provider_tuning.operators.tuning
    import airflow_provider_tuning.sensors.tuning
if trace:
    import tracemalloc
    tracemalloc.start()
rss0 = rss()
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[2])
elapsed = time.perf_counter() - t0
errors = {k: str(v)[:300] for k, v in bag.import_errors.items()}
out = {"s": elapsed, "rss": rss() - rss0, "dags": len(bag.dags), "errors": errors}
out["origin"] = getattr(sys.modules.get("airflow_provider_tuning"), "__file__", None)
if trace:
    out["traced"] = tracemalloc.get_traced_memory()[0]
print(json.dumps(out))
"""

TRIVIAL_DAG = '''"""A one-task DAG: the reference cost of parsing any DAG file."""
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("bench_trivial_dag", schedule=None):
    EmptyOperator(task_id="noop")
'''

TASK_DAG = '''"""A one-task DAG with @task: what Airflow itself loads for a DAG file using the decorator."""
from airflow.sdk import DAG, task

with DAG("bench_task_dag", schedule=None):

    @task
    def noop() -> None:
        pass

    noop()
'''


@dataclass(frozen=True)
class Layout:
    """A copy of the provider package that the probes import, outside the working tree.

    :param label: how the copy was prepared, for the tables.
    :param path: the directory that holds the ``airflow_provider_tuning`` package.
    """

    label: str
    path: Path

    @property
    def env(self) -> dict[str, str]:
        """Put the copy first on ``sys.path``; never write bytecode during a measurement."""
        return {"PYTHONPATH": str(self.path), "PYTHONDONTWRITEBYTECODE": "1"}


def make_layouts(tmp: Path) -> tuple[Layout, Layout]:
    """Two copies of the package: as ``pip install`` leaves it (compiled), and bare sources.

    :param tmp: an empty directory to hold both copies.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    installed = Layout("installed (.pyc)", tmp / "installed")
    source = Layout("source, no .pyc", tmp / "source")
    for layout in (installed, source):
        shutil.copytree(ROOT / PACKAGE, layout.path / PACKAGE, ignore=ignore)
    # pip compiles every module of a wheel it installs; compileall is what it uses.
    if not compileall.compile_dir(str(installed.path / PACKAGE), quiet=1):
        raise RuntimeError(f"compileall failed for {installed.path / PACKAGE}")
    return installed, source


def probe(python: str, code: str, args: list[str], layout: Layout) -> dict[str, Any]:
    """Run ``code`` in a fresh ``python`` process importing ``layout``'s copy; return its JSON line."""
    env = {**os.environ, **isolated_airflow_env(), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", **layout.env}
    proc = subprocess.run(
        [python, "-c", code, *args], cwd=layout.path, env=env, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(f"probe {args} failed:\n{proc.stderr[-3000:]}")
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    origin = out.get("origin")
    if origin is not None and not Path(origin).is_relative_to(layout.path):
        raise RuntimeError(f"probe {args} imported {PACKAGE} from {origin}, not from {layout.path}")
    return out


def measure(
    python: str,
    code: str,
    args: list[str],
    repeat: int,
    layout: Layout,
    trace: bool = True,
) -> dict:
    """Medians of ``repeat`` timed probes (s, rss) and ``repeat`` traced probes (traced bytes)."""
    timed = [probe(python, code, ["time", *args], layout) for _ in range(repeat)]
    traced = [probe(python, code, ["trace", *args], layout) for _ in range(repeat if trace else 0)]
    return {
        "ms": median([t["s"] for t in timed]) * 1000,
        "ms_all": [round(t["s"] * 1000, 1) for t in timed],
        "rss_mib": median([t["rss"] for t in timed]) / MIB,
        "traced_mib": median([t["traced"] for t in traced]) / MIB,
        "sdk_ms": median([t.get("sdk_s", 0.0) for t in timed]) * 1000,
        "extra": timed[0],
    }


def ensure_google_venv(path: Path, *, install: bool, timeout: float) -> str | None:
    """The baseline virtualenv's python: reused when it imports the module, else made (time-bound)."""
    python = path / "bin" / "python"
    if python.exists() and _imports(str(python), GOOGLE_MODULE):
        return str(python)
    if not install:
        return None
    print(f"installing {' '.join(GOOGLE_REQUIREMENTS)} into {path} (at most {timeout:.0f} s) ...", flush=True)
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(path)
    log = path.parent / f"{path.name}-install.log"
    start = time.monotonic()
    with log.open("w") as handle:
        try:
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *GOOGLE_REQUIREMENTS],
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=True,
            )
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as err:
            print(f"baseline install failed ({type(err).__name__}); see {log}")
            return None
    print(f"installed in {time.monotonic() - start:.0f} s")
    return str(python) if _imports(str(python), GOOGLE_MODULE) else None


def _imports(python: str, module: str) -> bool:
    proc = subprocess.run(
        [python, "-c", f"import {module}"],
        capture_output=True,
        timeout=300,
        env={**os.environ, **isolated_airflow_env()},
    )
    return proc.returncode == 0


def _mib(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def importtime_breakdown(python: str, modules: list[str], layout: Layout, top: int = 8) -> list[list[Any]]:
    """The provider's modules with the largest self import time, from one ``-X importtime`` run."""
    # __import__ goes through the C import path that -X importtime instruments (import_module does not).
    code = "import sys\nimport airflow.sdk\nfor m in sys.argv[1:]: __import__(m)"
    env = {**os.environ, **isolated_airflow_env(), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", **layout.env}
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", code, *modules],
        cwd=layout.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows: list[tuple[str, float, float]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not name.startswith(PACKAGE):  # not the editable-install finder that site.py loads
            continue
        rows.append((name, int(self_us) / 1000, int(cumulative_us) / 1000))
    rows.sort(key=lambda row: row[1], reverse=True)
    return [[name, f"{own:.1f}", f"{cum:.1f}"] for name, own, cum in rows[:top]]


def _module_rows(results: list[tuple[str, str, dict]], baseline: dict | None) -> list[list[Any]]:
    rows = []
    for where, label, r in results:
        rows.append(
            [
                label,
                where,
                f"{r['ms']:.1f}",
                " ".join(str(v) for v in r["ms_all"]),
                f"{r['rss_mib']:.2f}",
                _mib(r["traced_mib"]),
                f"{r['ms'] / baseline['ms']:.2f}" if baseline else "n/a",
                f"{r['rss_mib'] / baseline['rss_mib']:.2f}" if baseline and baseline["rss_mib"] else "n/a",
                f"{r['sdk_ms']:.0f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="one repeat, no baseline, no tracemalloc, one DAG file"
    )
    parser.add_argument("--repeat", type=int, default=5, help="fresh subprocesses per figure (median)")
    parser.add_argument("--google-venv", type=Path, default=Path(tempfile.gettempdir()) / "bench-google-venv")
    parser.add_argument("--install-timeout", type=float, default=1200.0, help="seconds for the pip install")
    opts = parser.parse_args(argv)
    repeat = 1 if opts.quick else opts.repeat

    print(machine_header(command_line()))
    print(f"setup: {repeat} fresh subprocess(es) per figure, median; timed and traced runs are separate")
    google_python = (
        None
        if opts.quick
        else ensure_google_venv(opts.google_venv, install=True, timeout=opts.install_timeout)
    )

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        installed, source = make_layouts(Path(tmp))
        print(f"package copies: {installed.label} and {source.label}, under {tmp}")
        _report(google_python, installed, source, repeat, quick=opts.quick)
    return 0


def _report(
    google_python: str | None, installed: Layout, source: Layout, repeat: int, *, quick: bool
) -> None:
    """Measure and print the module table, the import-time breakdown and the DAG-file table."""
    ours_sets = {"all three": OURS["all three"]} if quick else OURS
    here = sys.executable
    results: list[tuple[str, str, dict]] = []
    baseline = None
    if google_python:
        baseline = measure(google_python, _IMPORT_PROBE, [GOOGLE_MODULE], repeat, installed)
        results.append(("google venv", f"BASELINE {GOOGLE_MODULE}", baseline))
        results.append(
            (
                f"google venv, {installed.label}",
                "provider: all three",
                measure(google_python, _IMPORT_PROBE, OURS["all three"], repeat, installed),
            )
        )
    for label, modules in ours_sets.items():
        results.append(
            (
                f".venv, {installed.label}",
                f"provider: {label}",
                measure(here, _IMPORT_PROBE, modules, repeat, installed, trace=not quick),
            )
        )
    results.append(
        (
            f".venv, {source.label}",
            "provider: all three",
            measure(here, _IMPORT_PROBE, OURS["all three"], repeat, source, trace=not quick),
        )
    )

    print()
    print("Import over `import airflow.sdk` (added by the import; ratio = row / baseline):")
    print(
        table(
            [
                "module(s)",
                "interpreter, package",
                "ms (median)",
                "ms (each run)",
                "RSS MiB",
                "tracemalloc MiB",
                "time vs baseline",
                "RSS vs baseline",
                "import airflow.sdk ms",
            ],
            _module_rows(results, baseline),
        )
    )
    if baseline is None:
        print("baseline: not measured (skipped by --quick, or the virtualenv could not be made)")

    if not quick:
        print()
        print(
            f"Where the provider's import time goes ({installed.label}; one `python -X importtime` run, "
            "self time first):"
        )
        breakdown = importtime_breakdown(here, OURS["all three"], installed)
        print(table(["module", "self ms", "cumulative ms"], breakdown))

    dag_rows = _dag_rows(here, repeat, installed, source, quick=quick)
    print()
    print(
        "DagBag parse of one DAG file over `import airflow.sdk` + DagBag (ratio = row / trivial DAG); "
        f"the DAG processor parses each file in a fresh child process. Package: {installed.label}, "
        f"except the column '{source.label}':"
    )
    print(
        table(
            [
                "DAG file",
                "DAGs",
                "ms (median)",
                "ms (each run)",
                "RSS MiB",
                "tracemalloc MiB",
                "time vs trivial",
                f"ms, {source.label}",
                "ms, provider pre-imported",
                "RSS MiB, provider pre-imported",
                "goal < 50 ms, < 5 MiB",
                "import errors",
            ],
            dag_rows,
        )
    )


def _dag_rows(python: str, repeat: int, installed: Layout, source: Layout, *, quick: bool) -> list[list[Any]]:
    files = sorted((ROOT / "dags").glob("*.py"))
    if quick:
        files = files[:1]
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        references = {
            "REFERENCE trivial 1-task DAG": TRIVIAL_DAG,
            "REFERENCE 1-task DAG with @task": TASK_DAG,
        }
        trivial: dict | None = None
        for index, (label, text) in enumerate(references.items()):
            path = Path(tmp) / f"bench_reference_{index}.py"
            path.write_text(text)
            measured = measure(python, _DAGBAG_PROBE, [str(path)], repeat, installed, trace=not quick)
            trivial = trivial or measured
            rows.append(_dag_row(label, measured, trivial, None, None, goal=False))
        assert trivial is not None
        for path in files:
            alone = measure(python, _DAGBAG_PROBE, [str(path)], repeat, installed, trace=not quick)
            bare = None if quick else measure(python, _DAGBAG_PROBE, [str(path)], repeat, source, trace=False)
            pre = (
                None
                if quick
                else measure(python, _DAGBAG_PROBE, [str(path), "pre"], repeat, installed, trace=False)
            )
            rows.append(_dag_row(f"dags/{path.name}", alone, trivial, bare, pre, goal=True))
        if len(files) > 1 and not quick:
            whole = measure(python, _DAGBAG_PROBE, [str(ROOT / "dags")], repeat, installed, trace=False)
            per_file = {
                **whole,
                "ms": whole["ms"] / len(files),
                "ms_all": [round(v / len(files), 1) for v in whole["ms_all"]],
                "rss_mib": whole["rss_mib"] / len(files),
            }
            label = f"all {len(files)} files in one DagBag, per file"
            rows.append(_dag_row(label, per_file, trivial, None, None, goal=True))
    if not files:
        rows.append(["(no dags/*.py found)", "", "", "", "", "", "", "", "", "", "not measured", ""])
    return rows


def _dag_row(
    label: str, r: dict, trivial: dict, bare: dict | None, pre: dict | None, *, goal: bool
) -> list[Any]:
    ok = r["ms"] < GOAL_MS and r["rss_mib"] < GOAL_MIB
    return [
        label,
        r["extra"]["dags"],
        f"{r['ms']:.1f}",
        " ".join(str(v) for v in r["ms_all"]),
        f"{r['rss_mib']:.2f}",
        _mib(r["traced_mib"]),
        f"{r['ms'] / trivial['ms']:.2f}" if trivial["ms"] else "n/a",
        "n/a" if bare is None else f"{bare['ms']:.1f}",
        "n/a" if pre is None else f"{pre['ms']:.1f}",
        "n/a" if pre is None else f"{pre['rss_mib']:.2f}",
        ("met" if ok else "NOT met") if goal else "n/a",
        len(r["extra"]["errors"]) or "",
    ]


if __name__ == "__main__":
    sys.exit(main())
