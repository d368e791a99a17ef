"""Batch inference: GenerateContentOperator's bounded concurrency and rate limit against the emulator.

The emulator runs in a subprocess with added latency on ``GenerateContent``; one tuned model is
created and tuned (fast steps) first. Each run measures, in this order:

1. baseline: a sequential loop of plain ``requests.post`` as the seeds do it (no session, one
   new connection per call), bounded to ``--baseline-prompts`` prompts and extrapolated to the batch;
2. ``GenerateContentOperator.execute`` on the whole batch at the default concurrency (8):
   throughput as a percentage of the bound ``concurrency / latency``, and the speed-up over the
   baseline;
3. the same operator with ``requests_per_minute``: the emulator's request log timestamps give the
   largest number of requests in any 60 s sliding window, which must equal the limit.

Usage: ``python bench/batch_inference.py [--quick] [--runs 2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    API_KEY,
    CONN_ENV,
    EmulatorProcess,
    apply_airflow_env,
    command_line,
    connection_json,
    control,
    create_tuned_models,
    machine_header,
    table,
    wait_active,
)

GOAL_PCT = 90.0
WINDOW = 60.0


def prompts_for(count: int) -> list[str]:
    """Number prompts like the seeds' (``"六"`` -> ``"七"``), all distinct."""
    return [f"{i} {['one', 'two', 'three', 'four', 'five'][i % 5]}" for i in range(count)]


def seed_loop(url: str, model: str, prompts: list[str]) -> float:
    """The seeds' inference: ``requests.post`` per prompt, one after the other; returns seconds."""
    import requests

    headers = {"Content-Type": "application/json", "x-goog-api-key": API_KEY}
    start = time.perf_counter()
    for prompt in prompts:
        response = requests.post(
            url=f"{url}/v1beta/{model}:generateContent",
            headers=headers,
            json={"contents": [{"parts": [{"text": prompt}]}]},
            timeout=30,
        )
        response.raise_for_status()
    return time.perf_counter() - start


def run_operator(model: str, prompts: list[str], **kwargs: Any) -> tuple[float, dict[str, Any]]:
    """``GenerateContentOperator(...).execute({})``; returns (seconds, XCom summary)."""
    from airflow_provider_tuning.operators.generate import GenerateContentOperator

    operator = GenerateContentOperator(task_id="bench_generate", model=model, prompts=prompts, **kwargs)
    start = time.perf_counter()
    output = operator.execute({})  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    if output["succeeded"] != len(prompts):
        raise RuntimeError(f"only {output['succeeded']} of {len(prompts)} prompts succeeded")
    return elapsed, output


def _epoch(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def max_in_window(times: list[float], window: float = WINDOW) -> tuple[int, float]:
    """The most timestamps in any half-open window ``[t, t + window)``, and the first-to-last span (s)."""
    ordered = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best, (ordered[-1] - ordered[0]) if ordered else 0.0


def logged_times(url: str, model: str) -> list[float]:
    """Arrival times (epoch s) of the API requests about ``model`` in the emulator's request log."""
    log = control(url, "GET", "requests")["requests"]
    return [_epoch(entry["time"]) for entry in log if model in entry["path"]]


def one_run(opts: argparse.Namespace, url: str, model: str) -> dict[str, Any]:
    prompts = prompts_for(opts.prompts)
    baseline_s = seed_loop(url, model, prompts[: opts.baseline_prompts])
    control(url, "DELETE", "requests")
    operator_s, _ = run_operator(model, prompts)
    served = len(logged_times(url, model))

    control(url, "DELETE", "requests")
    limited = prompts_for(opts.rpm_prompts)
    limited_s, _ = run_operator(model, limited, requests_per_minute=opts.rpm)
    times = logged_times(url, model)
    window_max, span = max_in_window(times)
    return {
        "baseline_s": baseline_s,
        "operator_s": operator_s,
        "operator_requests": served,
        "limited_s": limited_s,
        "limited_requests": len(times),
        "window_max": window_max,
        "span": span,
    }


def report(opts: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    bound = 8 / opts.latency
    rows = []
    for i, r in enumerate(runs, 1):
        base_rate = opts.baseline_prompts / r["baseline_s"]
        extrapolated = r["baseline_s"] * opts.prompts / opts.baseline_prompts
        rate = opts.prompts / r["operator_s"]
        rows.append(
            [
                i,
                f"{base_rate:.2f}",
                f"{extrapolated:.1f}",
                f"{r['operator_s']:.1f}",
                f"{rate:.2f}",
                f"{bound:.1f}",
                f"{100 * rate / bound:.1f}%",
                f"{rate / base_rate:.2f}x",
                r["operator_requests"],
            ]
        )
    print(
        table(
            [
                "run",
                "seed loop prompts/s",
                f"seed loop s for {opts.prompts} (extrapolated x{opts.prompts / opts.baseline_prompts:g})",
                f"operator s for {opts.prompts}",
                "operator prompts/s",
                "bound 8/latency",
                "% of bound",
                "speed-up vs seed loop",
                "requests at emulator",
            ],
            rows,
        )
    )
    print()
    print(
        table(
            [
                "run",
                "requests_per_minute",
                "prompts",
                "requests at emulator (incl. 1 model check)",
                "wall s",
                "first-to-last request s",
                "max requests in any 60 s window",
                "== limit",
            ],
            [
                [
                    i,
                    opts.rpm,
                    opts.rpm_prompts,
                    r["limited_requests"],
                    f"{r['limited_s']:.1f}",
                    f"{r['span']:.1f}",
                    r["window_max"],
                    "yes" if r["window_max"] == opts.rpm else "NO",
                ]
                for i, r in enumerate(runs, 1)
            ],
        )
    )
    print()
    for i, r in enumerate(runs, 1):
        pct = 100 * opts.prompts / r["operator_s"] / bound
        print(
            f"run {i}: goal throughput >= {GOAL_PCT:g}% of bound: {pct:.1f}% "
            f"{'met' if pct >= GOAL_PCT else 'NOT met'}; rate limit held exactly: "
            f"{'met' if r['window_max'] == opts.rpm else 'NOT met'}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: few prompts, no 60 s wait")
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurements (same emulator)")
    parser.add_argument("--prompts", type=int, default=1000, help="batch size for the operator")
    parser.add_argument("--baseline-prompts", type=int, default=100, help="prompts of the seed loop")
    parser.add_argument("--latency", type=float, default=0.2, help="added GenerateContent latency, s")
    parser.add_argument("--rpm", type=int, default=120, help="requests_per_minute of the limited run")
    parser.add_argument(
        "--rpm-prompts",
        type=int,
        default=150,
        help="prompts of the limited run (more than the limit: the run spans more than 60 s)",
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        # 1 model check + 11 prompts = 12 requests = the limit: the limiter admits them all at once.
        opts.prompts, opts.baseline_prompts, opts.latency = 40, 5, 0.05
        opts.rpm, opts.rpm_prompts = 12, 11
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    apply_airflow_env(quiet=True)
    print(machine_header(command_line()))
    print(
        f"setup: emulator subprocess, +{opts.latency * 1000:.0f} ms on GenerateContent, one tuned "
        f"model, {opts.prompts} prompts, concurrency 8 (default), {opts.runs} run(s)"
    )
    faults = {"seed": 1, "rules": [{"match": "GenerateContent", "latency": opts.latency}]}
    with EmulatorProcess(step_seconds=0.01, faults=faults) as emu:
        os.environ[CONN_ENV] = connection_json(emu.url)
        (operation,) = create_tuned_models(emu.url, 1, prefix="bench-batch")
        model = operation.split("/operations/")[0]
        wait_active(emu.url, model)
        runs = [one_run(opts, emu.url, model) for _ in range(opts.runs)]
    print()
    report(opts, runs)
    print(json.dumps({"raw": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
