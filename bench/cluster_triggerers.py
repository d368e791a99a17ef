"""Tuning waits held by two real triggerers on PostgreSQL, beside one triggerer on SQLite.

For each N (1,000 and 5,000 by default) and each deployment, from the same run:

* ``postgres``: ``scripts/cluster.py``'s PostgreSQL and two ``airflow triggerer`` processes;
* ``sqlite``: one ``airflow triggerer`` on a SQLite metadata DB (``tests/e2e/airflow_stack.py``).

N tuned models are created at an emulator subprocess whose jobs never finish (+100 ms on each
``GetOperation``, as in ``bench/trigger_scale.py``). N ``TuningOperationTrigger`` rows (polling
every ``--interval`` s) are written to the metadata DB as Airflow writes them (``Trigger.from_object``:
classpath and Fernet-encrypted kwargs); each is watched by one asset, which keeps it alive without a
task instance (no scheduler runs: nothing but the triggerers touches the rows). The triggerers claim
them (``[triggerer] max_trigger_to_select_per_loop`` at a time). Once every row is claimed and a
warm-up has passed, the emulator's request log is cleared and, over a window:

* polls/s counted AT THE EMULATOR against N / interval scheduled;
* lag p50/p99: how late each poll came, at the emulator, after the previous poll of the same
  operation plus the interval plus the added 100 ms;
* RSS per wait: the triggerers' process groups (triggerer and trigger runner) at the end of the
  window, minus their RSS once 10 priming waits ran (so the provider's import is not counted), over
  the N - 10 other waits;
* waits per triggerer.

Usage: ``python bench/cluster_triggerers.py [--n 1000 5000] [--interval 5] [--window 60]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from bench._common import (
    API_KEY,
    EmulatorProcess,
    command_line,
    control,
    create_tuned_models,
    machine_header,
    percentile,
    table,
)
from scripts.cluster import TRIGGERERS, Cluster, ensure_installed, live_members
from tests.e2e.airflow_stack import AirflowStack

CONN_ID = "generative_language_default"
#: Seconds the emulator adds to each ``GetOperation`` answer.
ADDED_LATENCY = 0.1
#: Waits written first, so that the RSS baseline includes the provider's import and first use.
PRIMING = 10


def group_rss_kb(pgid: int) -> int:
    """The summed VmRSS (KB) of every live member of a process group."""
    total = 0
    for pid in live_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def write_triggers(env: dict[str, str], names: list[str], interval: float) -> None:
    """Write one trigger row per operation name (and an asset watching each) in a child process
    that has the deployment's Airflow environment."""
    spec = json.dumps({"names": names, "interval": interval, "conn_id": CONN_ID})
    done = subprocess.run(
        [sys.executable, __file__, "--child-write"], input=spec, text=True, env=env, capture_output=True,
        timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"writing the trigger rows failed:\n{done.stderr[-3000:]}")


def child_write() -> None:
    """``--child-write``: read the spec on stdin, write the rows with Airflow's models."""
    from airflow.models.asset import AssetModel, AssetWatcherModel
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger

    spec = json.loads(sys.stdin.read())
    with create_session() as session:
        first = spec["names"][0]
        asset = AssetModel(name=f"bench-waits-{first}", uri=f"bench://waits/{first}", group="asset")
        session.add(asset)
        session.flush()
        for start in range(0, len(spec["names"]), 500):
            rows = [
                Trigger.from_object(
                    TuningOperationTrigger(conn_id=spec["conn_id"], name=name, poll_interval=spec["interval"])
                )
                for name in spec["names"][start : start + 500]
            ]
            session.add_all(rows)
            session.flush()
            session.add_all(
                AssetWatcherModel(name=f"wait-{row.id}", asset_id=asset.id, trigger_id=row.id) for row in rows
            )
            session.commit()


def claimed(db_rows: Any) -> dict[int | None, int]:
    counts: dict[int | None, int] = defaultdict(int)
    for row in db_rows:
        counts[row["triggerer_id"]] += 1
    return dict(counts)


def poll_stats(log: list[dict[str, Any]], interval: float, window: float) -> dict[str, float]:
    """Polls/s and lateness (ms) from the emulator's request log: the time between two polls of one
    operation beyond the interval and the emulator's added latency (a trigger waits ``interval``
    after each answer)."""
    by_op: dict[str, list[float]] = defaultdict(list)
    for entry in log:
        if entry["method"] == "GET" and "/operations/" in entry["path"]:
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            by_op[entry["path"]].append(at)
    late = []
    for times in by_op.values():
        times.sort()
        late += [max(0.0, (b - a - interval - ADDED_LATENCY) * 1000) for a, b in itertools.pairwise(times)]
    polls = sum(len(times) for times in by_op.values())
    return {
        "polls_per_s": polls / window,
        "lag_p50_ms": percentile(late, 50) if late else float("nan"),
        "lag_p99_ms": percentile(late, 99) if late else float("nan"),
    }


def measure(
    kind: str, n: int, names: list[str], emulator_url: str, opts: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Start one deployment, load it with ``n`` waits, measure, stop it."""
    from tests.reliability.airflow_db import rows

    conn = json.dumps({"conn_type": "generativelanguage", "host": emulator_url, "password": API_KEY})
    extra = {
        "AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT": conn,
        "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, n)),
    }
    base = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=workdir))
    os.chmod(base, 0o755)  # noqa: S103 - PostgreSQL runs as nobody under root
    cluster: Cluster | None = None
    stack: AirflowStack | None = None
    try:
        if kind == "postgres":
            cluster = Cluster(base=base, extra_env=extra, airflow_processes=TRIGGERERS, step_seconds=3600)
            cluster.up()
            assert cluster.stack is not None
            env, db, pgids = cluster.stack.env, cluster.dsn, [cluster.stack.procs[t].pid for t in TRIGGERERS]
        else:
            from cryptography.fernet import Fernet

            extra["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
            stack = AirflowStack(base / "home", base / "dags", extra_env=extra)
            (base / "dags").mkdir()
            stack.migrate()
            stack.start("triggerer")
            env, db, pgids = stack.env, str(base / "home" / "airflow.db"), [stack.procs["triggerer"].pid]
            db = Path(db)  # type: ignore[assignment]
        write_triggers(env, names[:PRIMING], opts.interval)
        time.sleep(opts.settle)
        rss0 = sum(group_rss_kb(p) for p in pgids)
        write_triggers(env, names[PRIMING:n], opts.interval)
        started = time.monotonic()

        def all_claimed() -> bool:
            counts = claimed(rows(db, "SELECT triggerer_id FROM trigger"))
            return counts.get(None, 0) == 0 and sum(counts.values()) == n

        while not all_claimed():
            if time.monotonic() - started > opts.claim_timeout:
                raise RuntimeError(f"{kind}: not every trigger was claimed in {opts.claim_timeout} s")
            time.sleep(1)
        claim_seconds = time.monotonic() - started
        time.sleep(opts.warmup)
        control(emulator_url, "DELETE", "requests")
        time.sleep(opts.window)
        log = control(emulator_url, "GET", "requests")["requests"]
        rss1 = sum(group_rss_kb(p) for p in pgids)
        per_triggerer = sorted(claimed(rows(db, "SELECT triggerer_id FROM trigger")).values(), reverse=True)
        stats = poll_stats(log, opts.interval, opts.window)
        scheduled = n / opts.interval
        return {
            "kind": kind,
            "n": n,
            "triggerers": len(pgids),
            "per_triggerer": per_triggerer,
            "claim_s": claim_seconds,
            **stats,
            "scheduled_per_s": scheduled,
            "pct": 100.0 * stats["polls_per_s"] / scheduled,
            "rss_kb_per_wait": (rss1 - rss0) / (n - PRIMING),
        }
    finally:
        if cluster is not None:
            cluster.down()
        if stack is not None:
            stack.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval of every wait (s)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds after every row is claimed")
    parser.add_argument("--window", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds for idle triggerers to settle")
    parser.add_argument("--claim-timeout", type=float, default=600.0)
    parser.add_argument("--child-write", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child_write:
        child_write()
        return
    ensure_installed()
    print(machine_header(command_line()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-triggerers-"))
    os.chmod(workdir, 0o755)  # noqa: S103
    results = []
    latency = {"rules": [{"match": "GetOperation", "latency": ADDED_LATENCY}]}
    try:
        with EmulatorProcess(step_seconds=3600.0, faults=latency) as emulator:
            names = create_tuned_models(emulator.url, max(opts.n), prefix="cluster-bench")
            for n in opts.n:
                for kind in ("postgres", "sqlite"):
                    result = measure(kind, n, names, emulator.url, opts, workdir)
                    print(json.dumps(result), flush=True)
                    results.append(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        table(
            [
                "N",
                "deployment",
                "waits per triggerer",
                "claimed in s (after the last write)",
                "lag p50 ms",
                "lag p99 ms",
                "polls/s (at emulator)",
                "scheduled/s",
                "% of scheduled",
                "RSS KB per wait",
            ],
            [
                [
                    r["n"],
                    f"{r['triggerers']} triggerer(s), {r['kind']}",
                    " / ".join(map(str, r["per_triggerer"])),
                    r["claim_s"],
                    r["lag_p50_ms"],
                    r["lag_p99_ms"],
                    r["polls_per_s"],
                    r["scheduled_per_s"],
                    f"{r['pct']:.1f}%",
                    r["rss_kb_per_wait"],
                ]
                for r in results
            ],
        )
    )


if __name__ == "__main__":
    main()
