"""How many TuningOperationTriggers one triggerer event loop can carry, against poke-mode sensors.

The emulator runs in a subprocess with added latency on ``GetOperation`` (the trigger's poll) and
tuning jobs so slow that none finishes. For each N a fresh child process:

* ``triggers``: builds N triggers from their serialized kwargs (as the triggerer does) and drives
  ``async for event in trigger.run()`` as N tasks of one event loop, next to a 100 ms ticker whose
  delay is the event-loop lag. After a warm-up, a steady-state window is measured: lag p50/p99,
  polls/s counted AT THE EMULATOR (its request log) against the N/interval scheduled, RSS delta / N,
  and CPU seconds per poll.
* ``idle`` (reference): N bare ``asyncio.sleep`` tasks, RSS delta / N.
* ``poke`` (baseline): the same N waits as poke-mode sensors do them: a thread per wait running
  ``TunedModelSensor.poke`` (sync hook, one session each) every interval; each holds a worker slot.

``--backend vertex`` measures waits on Vertex AI tuning jobs the same way: a
``google_cloud_platform`` connection whose OAuth user credentials refresh at the emulator's
``/token``, jobs that do not finish, the added latency on ``GetTuningJob``, and as the baseline a
thread per wait polling in the worker (``check_tuning`` on a sync ``VertexTuningHook``, what the
operator's in-worker wait does; there is no Vertex sensor). ``--backend vertex gemini`` runs both in
one run, against one emulator.

Usage: ``python bench/trigger_scale.py [--quick] [--backend gemini vertex] [--n 100 1000 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    CONN_ENV,
    EmulatorProcess,
    apply_airflow_env,
    command_line,
    connection_json,
    control,
    cpu_seconds,
    create_tuned_models,
    machine_header,
    percentile,
    rss_bytes,
    run_child,
    table,
)
from bench._vertex import GCP_CONN_ENV, GCP_CONN_ID, REFRESH_TOKEN, create_tuning_jobs, gcp_connection_json

CONN_ID = "generative_language_default"
TICK = 0.1
MAX_CONNECTIONS_VARIABLE = "AIRFLOW__GENERATIVE_LANGUAGE__TRIGGER_MAX_CONNECTIONS"

#: Goals, each (N, poll interval or None for any, lag p99 ms, % of polls on schedule, RSS KB per wait),
#: for rows at default settings: N = 1,000 at any interval; 5,000 waits polled every 5 s; 10,000
#: waits at the default 30 s interval.
GOALS: tuple[tuple[int, float | None, float | None, float, float | None], ...] = (
    (1000, None, 100.0, 95.0, 20.0),
    (5000, 5.0, 100.0, 95.0, None),
    (10000, 30.0, None, 95.0, 20.0),
)


# --- children (each in a fresh process) -------------------------------------------------------------


async def _warm_imports(backend: str = "gemini") -> None:
    """Load what the trigger loads lazily, so the RSS baseline holds the modules (a triggerer has them).

    :param backend: ``vertex`` also loads the OAuth modules its connection's credentials use
        (google-auth's OAuth 2.0 and service-account credentials and ``cryptography``, about 3 MB:
        loaded once per triggerer, not per wait).
    """
    from airflow_provider_tuning.hooks import async_hook

    await asyncio.to_thread(async_hook._import_dependencies)
    from airflow_provider_tuning.hooks.connection import ConnectionSettings  # noqa: F401
    from airflow_provider_tuning.hooks.credentials import build_request_auth  # noqa: F401

    if backend == "vertex":
        import google.auth.transport.requests
        import google.oauth2.credentials
        import google.oauth2.service_account  # noqa: F401

        from airflow_provider_tuning.backends import vertex  # noqa: F401
        from airflow_provider_tuning.hooks import vertex_connection  # noqa: F401


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK)
        lags.append(loop.time() - start - TICK)


def _emulator_count(url: str) -> int:
    return int(control(url, "GET", "state")["requestCount"])


async def child_triggers(opts: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    import importlib

    from airflow_provider_tuning.triggers.tuning import TuningOperationTrigger
    from airflow_provider_tuning.tuning_status import TuningStatus

    if opts.max_connections:  # as a deployment sets it, in the triggerer's environment
        os.environ[MAX_CONNECTIONS_VARIABLE] = str(opts.max_connections)
    else:  # the default rows measure the default, whatever the caller's environment says
        os.environ.pop(MAX_CONNECTIONS_VARIABLE, None)

    await _warm_imports(opts.backend)
    # The bench's own tool (requests, for the emulator's control paths) is loaded before the baseline.
    await asyncio.to_thread(_emulator_count, opts.url)
    outcomes: Counter[str] = Counter()
    original = TuningOperationTrigger._poll

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            outcome = await original(self, *args, **kwargs)
        except Exception:
            outcomes["failed"] += 1
            raise
        outcomes["ok" if isinstance(outcome, TuningStatus) else "failed"] += 1
        return outcome

    TuningOperationTrigger._poll = counted  # type: ignore[method-assign]

    # What the scheduler stores (classpath + kwargs), made from the operation names up front.
    conn_id = GCP_CONN_ID if opts.backend == "vertex" else CONN_ID
    stored = [
        TuningOperationTrigger(
            conn_id=conn_id, name=name, poll_interval=opts.interval, backend=opts.backend
        ).serialize()
        for name in names[: opts.n]
    ]
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    await asyncio.sleep(0.5)
    gc.collect()
    rss0 = rss_bytes()
    events: list[Any] = []

    async def drive(classpath: str, kwargs: dict[str, Any]) -> None:
        module, _, cls_name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), cls_name)(**kwargs)
        async for event in trigger.run():
            events.append(event.payload)

    tasks = [asyncio.create_task(drive(path, kwargs)) for path, kwargs in stored]
    del stored
    await asyncio.sleep(opts.warmup)

    await asyncio.to_thread(control, opts.url, "DELETE", "requests")
    lags.clear()
    before = Counter(outcomes)
    cpu0, t0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(opts.window)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    window_lags = list(lags)
    served = await asyncio.to_thread(_emulator_count, opts.url)
    gc.collect()
    rss1 = rss_bytes()
    polls = outcomes["ok"] - before["ok"]
    failed = outcomes["failed"] - before["failed"]

    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, ticker, return_exceptions=True)
    return {
        "mode": "triggers",
        "backend": opts.backend,
        "n": opts.n,
        "elapsed": elapsed,
        "emulator_requests": served,
        "polls": polls,
        "failed": failed,
        "events": len(events),
        "lag_p50_ms": percentile(window_lags, 50) * 1000,
        "lag_p99_ms": percentile(window_lags, 99) * 1000,
        "lag_max_ms": max(window_lags) * 1000 if window_lags else float("nan"),
        "rss0": rss0,
        "rss1": rss1,
        "cpu": cpu,
    }


async def child_idle(opts: argparse.Namespace) -> dict[str, Any]:
    await _warm_imports()
    await asyncio.sleep(0.5)
    gc.collect()
    rss0 = rss_bytes()

    async def idle() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(idle()) for _ in range(opts.n)]
    await asyncio.sleep(1.0)
    gc.collect()
    rss1 = rss_bytes()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"mode": "idle", "n": opts.n, "rss0": rss0, "rss1": rss1}


def _threaded_waits(
    opts: argparse.Namespace, names: list[str], make_poll: Callable[[int, str], Callable[[], bool]]
) -> dict[str, Any]:
    """Run ``opts.n`` waits as threads, each calling its poll (``True`` when done) every interval,
    and measure the steady-state window: polls at the emulator, outcomes, RSS and CPU.

    :param opts: the benchmark's options.
    :param names: the operations or jobs to wait on.
    :param make_poll: builds the poll of wait ``index`` on ``name`` (in its thread).
    """
    _emulator_count(opts.url)  # the bench's own tool, loaded before the baseline
    time.sleep(0.5)
    gc.collect()
    rss0 = rss_bytes()
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()

    def wait(index: int, name: str) -> None:
        poll = make_poll(index, name)
        while not stop.is_set():
            try:
                key = "done" if poll() else "ok"
            except Exception:
                key = "failed"
            with lock:
                outcomes[key] += 1
            stop.wait(opts.interval)

    threads = [
        threading.Thread(target=wait, args=(i, name), daemon=True, name=f"wait-{i}")
        for i, name in enumerate(names[: opts.n])
    ]
    for thread in threads:
        thread.start()
    time.sleep(opts.warmup)
    control(opts.url, "DELETE", "requests")
    with lock:
        before = Counter(outcomes)
    cpu0, t0 = cpu_seconds(), time.monotonic()
    time.sleep(opts.window)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    with lock:
        after = Counter(outcomes)
    served = _emulator_count(opts.url)
    gc.collect()
    rss1 = rss_bytes()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return {
        "mode": "poke",
        "n": opts.n,
        "elapsed": elapsed,
        "emulator_requests": served,
        "polls": after["ok"] + after["done"] - before["ok"] - before["done"],
        "failed": after["failed"] - before["failed"],
        "events": after["done"],
        "rss0": rss0,
        "rss1": rss1,
        "cpu": cpu,
    }


def child_poke(opts: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    import requests  # noqa: F401  (loaded before the baseline, as in a worker)

    from airflow_provider_tuning.hooks._http import ApiClient  # noqa: F401
    from airflow_provider_tuning.sensors.tuning import TunedModelSensor
    from airflow_provider_tuning.waiting import check_tuning  # noqa: F401

    def make_poll(index: int, name: str) -> Callable[[], bool]:
        sensor = TunedModelSensor(
            task_id=f"wait_{index}", operation_name=name, poke_interval=opts.interval, mode="poke"
        )
        return lambda: bool(sensor.poke({}))  # type: ignore[arg-type]

    return _threaded_waits(opts, names, make_poll)


def child_poke_vertex(opts: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The baseline of Vertex AI waits: a thread per wait polling in the worker, as the operator's
    in-worker wait does (a sync hook each, one poll per interval; each holds a worker slot)."""
    import requests  # noqa: F401  (loaded before the baseline, as in a worker)

    from airflow_provider_tuning.hooks.vertex import VertexTuningHook
    from airflow_provider_tuning.waiting import WaitState, check_tuning

    def make_poll(index: int, name: str) -> Callable[[], bool]:
        hook = VertexTuningHook(GCP_CONN_ID, location=name.split("/")[3])
        state = WaitState()
        return lambda: check_tuning(hook, name, backend="vertex", state=state).done

    return {**_threaded_waits(opts, names, make_poll), "backend": "vertex"}


def child_main(opts: argparse.Namespace) -> None:
    os.environ[CONN_ENV] = connection_json(opts.url)
    os.environ[GCP_CONN_ENV] = gcp_connection_json(opts.url)
    apply_airflow_env()
    names = json.loads(Path(opts.names).read_text())
    if opts.child == "triggers":
        result = asyncio.run(child_triggers(opts, names))
    elif opts.child == "idle":
        result = asyncio.run(child_idle(opts))
    elif opts.backend == "vertex":
        result = child_poke_vertex(opts, names)
    else:
        result = child_poke(opts, names)
    result.setdefault("backend", opts.backend)
    print(json.dumps(result), flush=True)


# --- the orchestrator ------------------------------------------------------------------------------------


def _child(
    mode: str,
    n: int,
    opts: argparse.Namespace,
    url: str,
    names_file: str,
    max_connections: int = 0,
    backend: str = "gemini",
) -> dict[str, Any]:
    args = [
        __file__,
        "--backend",
        backend,
        "--max-connections",
        str(max_connections),
        "--child",
        mode,
        "--n",
        str(n),
        "--url",
        url,
        "--names",
        names_file,
        "--interval",
        str(opts.interval),
        "--warmup",
        str(opts.warmup),
        "--window",
        str(opts.window),
    ]
    timeout = opts.warmup + opts.window + 300
    return run_child(args, timeout=timeout)


_LABELS = {
    ("gemini", "triggers"): "TuningOperationTrigger (1 loop)",
    ("gemini", "poke"): "poke sensor (thread each)",
    ("vertex", "triggers"): "Vertex AI: TuningOperationTrigger (1 loop)",
    ("vertex", "poke"): "Vertex AI: in-worker wait (thread each)",
}


def _row(result: dict[str, Any], interval: float, idle_kb: float | None) -> list[Any]:
    n = result["n"]
    per_wait_kb = (result["rss1"] - result["rss0"]) / n / 1024
    polls = result["emulator_requests"]
    rate = polls / result["elapsed"]
    scheduled = n / interval
    cpu_ms = result["cpu"] / max(result["polls"], 1) * 1000
    lag50 = result.get("lag_p50_ms")
    lag99 = result.get("lag_p99_ms")
    return [
        n,
        result.get("label") or _LABELS[result.get("backend", "gemini"), result["mode"]],
        0 if result["mode"] == "triggers" else n,
        "n/a" if lag50 is None else f"{lag50:.1f}",
        "n/a" if lag99 is None else f"{lag99:.1f}",
        f"{rate:.1f}",
        f"{scheduled:.1f}",
        f"{100 * rate / scheduled:.1f}%",
        f"{per_wait_kb:.1f}",
        "n/a" if not idle_kb else f"{per_wait_kb / idle_kb:.1f}x",
        f"{result['rss0'] / 2**20:.0f}",
        f"{cpu_ms:.2f}",
        result["failed"],
    ]


def orchestrate(opts: argparse.Namespace) -> int:
    counts = sorted(set(opts.n))
    baseline_counts = sorted(set(opts.baseline_n) & set(counts))
    backends = list(dict.fromkeys(opts.backend))
    rules = [{"match": rpc, "latency": opts.latency} for rpc in ("GetOperation", "GetTuningJob")]
    faults = {"seed": 1, "rules": rules}
    print(machine_header(command_line()))
    print(
        f"setup: emulator subprocess, +{opts.latency * 1000:.0f} ms on GetOperation and GetTuningJob, "
        f"backends {', '.join(backends)}, poll interval "
        f"{opts.interval:g} s, warm-up {opts.warmup:g} s, steady-state window {opts.window:g} s, "
        f"all N started at once (as after a triggerer restart), {opts.runs} run(s), a fresh process "
        "per row"
    )
    with EmulatorProcess(step_seconds=3600.0, faults=faults, refresh_tokens=(REFRESH_TOKEN,)) as emu:
        names_files: dict[str, str] = {}
        for backend in backends:
            make = create_tuning_jobs if backend == "vertex" else create_tuned_models
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(make(emu.url, max(counts)), handle)
                names_files[backend] = handle.name
        names_file = names_files[backends[0]]
        try:
            for run in range(1, opts.runs + 1):
                results: list[dict[str, Any]] = []
                idle: dict[int, float] = {}
                for n in counts:
                    ref = _child("idle", n, opts, emu.url, names_file)
                    idle[n] = (ref["rss1"] - ref["rss0"]) / n / 1024
                    for backend in backends:
                        where = names_files[backend]
                        results.append(_child("triggers", n, opts, emu.url, where, backend=backend))
                        if n in baseline_counts:
                            results.append(_child("poke", n, opts, emu.url, where, backend=backend))
                    print(f"  run {run}: done N={n}", file=sys.stderr, flush=True)
                if opts.max_connections:
                    extra = _child(
                        "triggers",
                        max(counts),
                        opts,
                        emu.url,
                        names_file,
                        max_connections=opts.max_connections,
                        backend=backends[0],
                    )
                    extra["label"] = f"trigger, trigger_max_connections={opts.max_connections}"
                    results.append(extra)
                _report(run, results, idle, opts)
        finally:
            for path in names_files.values():
                os.unlink(path)
    return 0


def _report(
    run: int, results: list[dict[str, Any]], idle: dict[int, float], opts: argparse.Namespace
) -> None:
    headers = [
        "N",
        "waits run as",
        "worker slots held",
        "lag p50 ms",
        "lag p99 ms",
        "polls/s (at emulator)",
        "scheduled/s",
        "% of scheduled",
        "RSS KB per wait",
        "RSS vs bare task",
        "process RSS MB before",
        "CPU ms per poll",
        "failed polls",
    ]
    print(f"\n### run {run}\n")
    print(table(headers, [_row(r, opts.interval, idle.get(r["n"])) for r in results]))
    print()
    trig = sorted(
        (
            r
            for r in results
            if r["mode"] == "triggers" and "label" not in r and r["backend"] == opts.backend[0]
        ),
        key=lambda r: r["n"],
    )
    marginal = {
        b["n"]: ((b["rss1"] - b["rss0"]) - (a["rss1"] - a["rss0"])) / (b["n"] - a["n"]) / 1024
        for a, b in itertools.pairwise(trig)
    }
    print(
        table(
            [
                "N",
                "bare idle asyncio task: RSS KB per task",
                "trigger: marginal RSS KB per trigger from previous N",
            ],
            [
                [n, f"{kb:.2f}", f"{marginal[n]:.1f}" if n in marginal else "n/a"]
                for n, kb in sorted(idle.items())
            ],
        )
    )
    _ratios(results)
    _goals(results, opts)
    print("raw: " + json.dumps({"run": run, "idle_kb": idle, "results": results}))


def _ratios(results: list[dict[str, Any]]) -> None:
    by = {(r["backend"], r["mode"], r["n"]): r for r in results if "label" not in r}
    rows = []
    for (backend, mode, n), poke in sorted(by.items()):
        trig = by.get((backend, "triggers", n))
        if mode != "poke" or trig is None:
            continue
        rss_t = (trig["rss1"] - trig["rss0"]) / n
        rss_p = (poke["rss1"] - poke["rss0"]) / n
        cpu_t = trig["cpu"] / max(trig["polls"], 1)
        cpu_p = poke["cpu"] / max(poke["polls"], 1)
        rows.append(
            [
                backend,
                n,
                f"{rss_t / rss_p:.2f}" if rss_p > 0 else "n/a",
                f"{cpu_t / cpu_p:.2f}" if cpu_p > 0 else "n/a",
                f"0 vs {n}",
            ]
        )
    _backend_ratios(by)
    if rows:
        print()
        print(
            table(
                [
                    "backend",
                    "N",
                    "RSS per wait: trigger / poke",
                    "CPU per poll: trigger / poke",
                    "worker slots",
                ],
                rows,
            )
        )


def _backend_ratios(by: dict[tuple[str, str, int], dict[str, Any]]) -> None:
    """Vertex AI triggers against Gemini API triggers at the same N, when both ran."""
    rows = []
    for (backend, mode, n), vertex in sorted(by.items()):
        gemini = by.get(("gemini", "triggers", n))
        if backend != "vertex" or mode != "triggers" or gemini is None:
            continue
        rss_v, rss_g = vertex["rss1"] - vertex["rss0"], gemini["rss1"] - gemini["rss0"]
        cpu_v = vertex["cpu"] / max(vertex["polls"], 1)
        cpu_g = gemini["cpu"] / max(gemini["polls"], 1)
        rows.append(
            [
                n,
                f"{rss_v / rss_g:.2f}" if rss_g > 0 else "n/a",
                f"{cpu_v / cpu_g:.2f}" if cpu_g > 0 else "n/a",
                f"{vertex['lag_p99_ms'] / gemini['lag_p99_ms']:.2f}" if gemini["lag_p99_ms"] else "n/a",
                f"{vertex['emulator_requests'] / max(gemini['emulator_requests'], 1):.3f}",
            ]
        )
    if rows:
        print()
        print(
            table(
                [
                    "N",
                    "RSS per wait: Vertex / Gemini",
                    "CPU per poll: Vertex / Gemini",
                    "lag p99: Vertex / Gemini",
                    "polls served: Vertex / Gemini",
                ],
                rows,
            )
        )


def _goals(results: list[dict[str, Any]], opts: argparse.Namespace) -> None:
    """Print every goal whose N and interval this run measured (default settings rows only)."""
    print()
    evaluated = False
    for (n, interval, lag_goal, pct_goal, kb_goal), backend in itertools.product(
        GOALS, dict.fromkeys(opts.backend)
    ):
        if interval is not None and interval != opts.interval:
            continue
        trig = next(
            (
                r
                for r in results
                if r["mode"] == "triggers" and r["n"] == n and "label" not in r and r["backend"] == backend
            ),
            None,
        )
        if trig is None:
            continue
        evaluated = True
        lag = trig["lag_p99_ms"]
        pct = 100 * trig["emulator_requests"] / trig["elapsed"] / (n / opts.interval)
        kb = (trig["rss1"] - trig["rss0"]) / n / 1024
        print(f"goals at N={n}, interval {opts.interval:g} s, default settings, backend {backend}:")
        if lag_goal is not None:
            print(f"  event-loop lag p99 {lag:.1f} ms < {lag_goal:g} ms: {_met(lag < lag_goal)}")
        print(f"  polls {pct:.1f}% of scheduled >= {pct_goal:g}%: {_met(pct >= pct_goal)}")
        if kb_goal is not None:
            print(f"  RSS {kb:.1f} KB per waiting trigger < {kb_goal:g} KB: {_met(kb < kb_goal)}")
    if not evaluated:
        print("goals: none evaluated (no row at a goal's N and interval)")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: small N, short window")
    parser.add_argument(
        "--backend",
        nargs="+",
        choices=["gemini", "vertex"],
        default=["gemini"],
        help="the waits measured: Gemini API tuned-model operations and/or Vertex AI tuning jobs",
    )
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 5000], help="trigger counts")
    parser.add_argument(
        "--baseline-n", type=int, nargs="+", default=[100, 1000], help="N also run as poke threads"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval, seconds")
    parser.add_argument("--latency", type=float, default=0.1, help="added GetOperation latency, seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=60.0, help="steady-state window, seconds")
    parser.add_argument("--runs", type=int, default=1, help="repeat every row (same emulator)")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=0,
        help="also run the largest N with [generative_language] trigger_max_connections set to this",
    )
    parser.add_argument("--child", choices=["triggers", "idle", "poke"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.quick and not opts.child:
        opts.n, opts.baseline_n, opts.runs, opts.max_connections = [10], [10], 1, 0
        opts.interval, opts.latency, opts.warmup, opts.window = 0.5, 0.05, 0.5, 1.5
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.child:
        opts.n, opts.backend = opts.n[0], opts.backend[0]
        child_main(opts)
        return 0
    return orchestrate(opts)


if __name__ == "__main__":
    sys.exit(main())
