"""The Tuning view's list API for 1,000 jobs, against a plain hook ``list`` of the same jobs; and
the size of the view's page assets.

1. The emulator (subprocess) holds ``--jobs`` finished tuned models (19 loss snapshots each).
2. Interleaved rounds, after a warm-up, each timing:
   - baseline: ``list(GenerativeLanguageHook(conn).list_tuned_models(page_size=1000))`` (a fresh
     hook, as the view makes one per read);
   - the view's ``GET /tuning/api/jobs?conn_id=...&limit=50`` through Airflow's own api-server app
     (``create_app("core")``, in process: authentication, the auth manager's checks, the API read,
     the XCom lookup of creators, filter, sort and page), with its cache emptied first (cold);
   - the same request again within the cache's lifetime (warm), with a text filter and sort.
   Median and p90 per request, and each as a ratio of the baseline's median.
3. The bytes of the page assets a browser loads (HTML, CSS, JS), raw and gzipped.

Usage: ``python bench/ui_list.py [--quick] [--jobs 1000] [--rounds 15] [--runs 1]``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    CONN_ENV,
    EmulatorProcess,
    apply_airflow_env,
    command_line,
    connection_json,
    create_tuned_models,
    machine_header,
    median,
    percentile,
    table,
    wait_active,
)

CONN_ID = "generative_language_default"


def migrate() -> None:
    """Migrate the bench's own Airflow DB (idempotent), as the api-server needs one."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=600)


def assets() -> list[tuple[str, int, int]]:
    """``(file, bytes, gzipped bytes)`` of every asset the view's pages load."""
    from airflow_provider_tuning.ui.api import ASSETS, STATIC

    out = []
    for name in ["list.html", "job.html", "ti.html", *ASSETS]:
        data = (STATIC / name).read_bytes()
        out.append((name, len(data), len(gzip.compress(data, 9))))
    return out


def run(jobs: int, rounds: int) -> list[list[Any]]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
    from airflow_provider_tuning.ui import source

    with EmulatorProcess(step_seconds=0.01) as emu:
        names = create_tuned_models(emu.url, jobs, prefix="ui")
        wait_active(emu.url, names[-1].split("/operations/")[0])
        os.environ[CONN_ENV] = connection_json(emu.url)
        app = create_app("core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        client = TestClient(app, headers={"Authorization": f"Bearer {token}"})

        def baseline() -> int:
            with GenerativeLanguageHook(CONN_ID) as hook:
                return len(list(hook.list_tuned_models(page_size=1000)))

        def view(cold: bool) -> int:
            if cold:
                source.CACHE.clear()
                params = {"conn_id": CONN_ID, "limit": "50"}
            else:
                params = {"conn_id": CONN_ID, "limit": "50", "q": "ui-9", "sort": "final_loss"}
            answer = client.get("/tuning/api/jobs", params=params)
            answer.raise_for_status()
            return int(answer.json()["total"])

        cases = {
            "plain hook list (baseline)": baseline,
            "view API, cold cache": lambda: view(True),
            "view API, warm cache": lambda: view(False),
        }
        for fn in cases.values():  # warm-up; every case must see every job
            assert fn() == jobs
        times: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for r in range(rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                started = time.perf_counter()
                cases[name]()
                times[name].append((time.perf_counter() - started) * 1000)
    base = median(times["plain hook list (baseline)"])
    return [
        [name, jobs, f"{median(v):.1f}", f"{percentile(v, 90):.1f}", f"{median(v) / base:.2f}"]
        for name, v in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 jobs, 3 rounds (a smoke run)")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.rounds = 200, 3
    apply_airflow_env(quiet=True)
    migrate()
    print(machine_header(command_line()))
    for run_number in range(1, args.runs + 1):
        rows = run(args.jobs, args.rounds)
        print(f"\nRun {run_number}: list API, {args.rounds} interleaved rounds\n")
        print(table(["request", "jobs", "ms (median)", "ms p90", "x baseline median"], rows))
    files = assets()
    total, total_gz = sum(f[1] for f in files), sum(f[2] for f in files)
    rows_a: list[list[Any]] = [[name, size, gz] for name, size, gz in files]
    rows_a.append(["total (goal < 300 KB)", total, total_gz])
    print("\nPage assets\n")
    print(table(["asset", "bytes", "gzip bytes"], rows_a))


if __name__ == "__main__":
    main()
