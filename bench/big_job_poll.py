"""What one poll of a 10,000-step tuning job costs the triggerer: CPU, loop hold time, bytes, event size.

A tuning job of 10,000 steps runs to its end in the emulator (a subprocess), so its operation holds
10,000 snapshots. In one process, the trigger's poll path (``GenerativeLanguageAsyncHook`` + the
Gemini backend's parser) reads it repeatedly two ways:

* ``partial`` (what the trigger does): ``?fields=`` asks only for state and progress counters;
* ``full`` (baseline, what a poll cost before partial responses, and the fallback if an API ever
  refused ``fields``): the whole operation, parsed in a worker thread when it is large.

For each: CPU ms per poll, the longest event-loop hold seen by a 5 ms ticker, response bytes, and
the size of the trigger's final event. Usage: ``python bench/big_job_poll.py [--polls 200] [--runs 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
    cpu_seconds,
    create_tuned_models,
    machine_header,
    table,
    wait_active,
)

STEPS = 10_000
TICK = 0.005


async def _ticker(holds: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK)
        holds.append(loop.time() - start - TICK)


async def measure(name: str, polls: int, partial: bool) -> dict[str, Any]:
    """Poll ``name`` ``polls`` times through the trigger's path; return the costs."""
    from airflow_provider_tuning.backends import get_backend
    from airflow_provider_tuning.hooks.async_hook import GenerativeLanguageAsyncHook
    from airflow_provider_tuning.waiting import POLL_RETRY

    backend = get_backend("gemini")
    sizes: list[int] = []
    async with GenerativeLanguageAsyncHook("generative_language_default") as hook:
        call = backend.poll_call(name, api_version="v1beta", partial=partial)

        def parse(resource: dict[str, Any]) -> Any:
            return backend.parse(name, resource)

        def measure_size(resource: dict[str, Any]) -> Any:
            sizes.append(len(json.dumps(resource, separators=(",", ":"))))
            return parse(resource)

        # warm-up (connection, imports) and the size of one answer, outside the timed polls
        status = await hook.call(call, retry=POLL_RETRY, then=measure_size)
        holds: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(holds, stop))
        cpu0, t0 = cpu_seconds(), time.monotonic()
        for _ in range(polls):
            status = await hook.call(call, retry=POLL_RETRY, then=parse)
        cpu, elapsed = cpu_seconds() - cpu0, time.monotonic() - t0
        stop.set()
        await ticker
    event = {
        "status": "success",
        "tuned_model": status.tuned_model,
        "name": name,
        "summary": status.summary(),
    }
    return {
        "mode": "partial" if partial else "full",
        "cpu_ms": cpu / polls * 1000,
        "wall_ms": elapsed / polls * 1000,
        "hold_max_ms": max(holds) * 1000 if holds else 0.0,
        "bytes": sizes[0],
        "event_bytes": len(json.dumps(event)),
        "steps": status.completed_steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--polls", type=int, default=200, help="polls measured per mode")
    parser.add_argument("--runs", type=int, default=1, help="repeat both modes")
    parser.add_argument("--quick", action="store_true", help="a few polls (smoke test)")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.polls, opts.runs = 5, 1
    print(machine_header(command_line()))
    print(
        f"setup: one finished job of {STEPS:,} steps in an emulator subprocess; {opts.polls} polls per mode"
    )
    with EmulatorProcess(step_seconds=0.00005) as emu:
        # 100 examples x 100 epochs at batch 1 = 10,000 steps
        (operation,) = create_tuned_models(emu.url, 1, prefix="bench-big", examples=100, epochs=100, batch=1)
        wait_active(emu.url, operation.split("/operations/")[0], timeout=120)
        os.environ[CONN_ENV] = connection_json(emu.url)
        apply_airflow_env(quiet=True)
        for run in range(1, opts.runs + 1):
            results = [asyncio.run(measure(operation, opts.polls, partial)) for partial in (False, True)]
            full, part = results
            print(f"\n### run {run}\n")
            rows = [
                [
                    r["mode"],
                    r["steps"],
                    f"{r['bytes']:,.0f}",
                    f"{r['cpu_ms']:.2f}",
                    f"{r['wall_ms']:.2f}",
                    f"{r['hold_max_ms']:.1f}",
                    r["event_bytes"],
                ]
                for r in results
            ]
            headers = [
                "poll",
                "steps",
                "response bytes",
                "CPU ms/poll",
                "wall ms/poll",
                "max loop hold ms",
                "event bytes",
            ]
            print(table(headers, rows))
            print(
                f"\npartial / full: CPU per poll {part['cpu_ms'] / full['cpu_ms']:.3f}, "
                f"bytes {part['bytes'] / full['bytes']:.5f}"
            )
            print("raw: " + json.dumps({"run": run, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
