"""Concurrent pollers against the emulator: N aiohttp pollers, each polling ``GET /v1/{operation}``.

The emulator runs as a subprocess (its CLI), so client and server do not share a GIL. One
``aiohttp.ClientSession`` with a connector of ``max(N, 1000)`` connections carries all pollers; they
wait on one gate and are released together, so all N first requests are in flight at once (the
peak in-flight count is reported). Pollers poll back to back, with no interval: the point is the
server under N concurrent connections. Every response must be HTTP 200 and parse strictly
(``ignore_unknown_fields=False``) into ``google.longrunning.Operation`` whose name is the polled
operation and whose metadata is a ``CreateTunedModelMetadata`` of that tuned model; anything else,
and any client exception, is an error. Bodies are checked after the timed section.

Every run sends the same number of requests (``--requests``, split evenly: N=10 pollers poll
2,000 times each, N=1,000 pollers 20 times each), so runs last comparably long and the ratio
compares throughput, not start-up effects. Each level runs ``--repeat`` times, levels interleaved
(10, 1000, 10, 1000, ...) after one warm-up, against the same emulator process. The table gives,
per level: requests, errors, throughput (median of the repeats, requests/s from the gate's
release to the last response, and each repeat's), p50/p99 latency over every request of the
level, peak in-flight requests, CPU time per request of the emulator process and of this client
process, and the ratio of the level's throughput to the first level's (the N=10 baseline),
measured in the same run.

Usage: ``python bench/emulator_load.py [--pollers 10 1000] [--requests 20000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    API_KEY,
    EmulatorProcess,
    command_line,
    control,
    cpu_seconds,
    create_tuned_models,
    machine_header,
    percentile,
    table,
)

MIN_CONNECTIONS = 1000
METADATA_TYPES = {
    f"type.googleapis.com/google.ai.generativelanguage.{v}.CreateTunedModelMetadata"
    for v in ("v1beta", "v1beta3")
}


# --- checking a response --------------------------------------------------------------------------


def _register_types() -> None:
    """Import the generativelanguage packages so ``Any`` fields of an Operation resolve."""
    for version in ("v1", "v1beta", "v1beta3"):
        importlib.import_module(f"google.ai.generativelanguage_{version}")


def check_operation(body: bytes, operation: str) -> None:
    """Raise ``ValueError`` unless ``body`` is the JSON of the Operation named ``operation``.

    :param body: a response body.
    :param operation: the expected operation name (``tunedModels/x/operations/y``).
    """
    from google.longrunning import operations_pb2
    from google.protobuf import json_format

    _register_types()
    try:
        message = json_format.Parse(body, operations_pb2.Operation(), ignore_unknown_fields=False)
    except json_format.ParseError as err:
        raise ValueError(f"not a google.longrunning.Operation: {err}") from None
    if message.name != operation:
        raise ValueError(f"operation name {message.name!r}, expected {operation!r}")
    data = json.loads(body)
    metadata = data.get("metadata", {})
    if metadata.get("@type") not in METADATA_TYPES:
        raise ValueError(f"metadata is not CreateTunedModelMetadata: {metadata.get('@type')!r}")
    tuned_model = operation.split("/operations/", 1)[0]
    if metadata.get("tunedModel") != tuned_model or int(metadata.get("totalSteps", 0)) < 1:
        raise ValueError(f"metadata does not describe {tuned_model}: {metadata}")


# --- one run --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one run of N pollers measured."""

    pollers: int
    polls: int
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    peak_in_flight: int = 0
    connections_created: int = 0
    client_cpu: float = 0.0  # CPU seconds of this process from the gate's release to the last response
    server_cpu: float = 0.0  # CPU seconds of the emulator process during the run
    served: int = -1  # API requests the emulator logged during the run (-1: not asked)

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.elapsed if self.elapsed > 0 else float("nan")

    def error(self, message: str) -> None:
        """Count one error and keep the first few messages."""
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message)


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft open-files limit to ``needed`` (capped at the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def run_pollers(
    url: str,
    operations: list[str],
    *,
    pollers: int,
    polls: int,
    api_key: str = API_KEY,
    request_timeout: float = 30.0,
) -> RunResult:
    """``pollers`` concurrent pollers, each polling ``GET /v1/{operation}`` ``polls`` times.

    Poller ``i`` polls ``operations[i % len(operations)]``. Bounded: each request times out after
    ``request_timeout`` seconds (callers bound the whole run with ``asyncio.wait_for``).

    :param url: the emulator's base URL.
    :param operations: operation names to poll.
    :param pollers: how many pollers run at once.
    :param polls: requests per poller.
    :param api_key: the key sent in ``x-goog-api-key``.
    :param request_timeout: per-request timeout in seconds.
    """
    result = RunResult(pollers, polls)
    bodies: list[tuple[bytes, str]] = []
    gate = asyncio.Event()
    waiting = 0
    in_flight = 0
    trace = aiohttp.TraceConfig()

    async def on_connection(*_: Any) -> None:
        result.connections_created += 1

    trace.on_connection_create_end.append(on_connection)

    async def poller(session: aiohttp.ClientSession, operation: str) -> None:
        nonlocal waiting, in_flight
        waiting += 1
        await gate.wait()
        for _ in range(polls):
            in_flight += 1
            result.peak_in_flight = max(result.peak_in_flight, in_flight)
            started = time.perf_counter()
            try:
                async with session.get(f"{url}/v1/{operation}") as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
                result.error(f"{operation}: {type(err).__name__}: {err}")
                continue
            finally:
                in_flight -= 1
                result.requests += 1
            result.latencies.append(time.perf_counter() - started)
            if status != 200:
                result.error(f"{operation}: HTTP {status}: {body[:200]!r}")
            else:
                bodies.append((body, operation))

    connector = aiohttp.TCPConnector(limit=max(pollers, MIN_CONNECTIONS), limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"x-goog-api-key": api_key},
        trace_configs=[trace],
    ) as session:
        tasks = [
            asyncio.create_task(poller(session, operations[i % len(operations)])) for i in range(pollers)
        ]
        while waiting < pollers:
            await asyncio.sleep(0)
        started, cpu = time.perf_counter(), cpu_seconds()
        gate.set()
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - started
        result.client_cpu = cpu_seconds() - cpu
    checked: dict[tuple[bytes, str], str | None] = {}
    for key in bodies:
        if key not in checked:
            try:
                check_operation(*key)
                checked[key] = None
            except ValueError as err:
                checked[key] = f"{key[1]}: {err}"
        problem = checked[key]
        if problem is not None:
            result.error(problem)
    return result


# --- the benchmark ---------------------------------------------------------------------------------


@dataclass
class Level:
    """The runs of one poller count."""

    pollers: int
    runs: list[RunResult] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return statistics.median(run.throughput for run in self.runs)

    def row(self, baseline: float) -> list[Any]:
        latencies = [x for run in self.runs for x in run.latencies]
        requests = sum(run.requests for run in self.runs)
        return [
            self.pollers,
            requests,
            sum(run.errors for run in self.runs),
            self.throughput,
            " / ".join(f"{run.throughput:,.0f}" for run in self.runs),
            percentile(latencies, 50) * 1000,
            percentile(latencies, 99) * 1000,
            max(run.peak_in_flight for run in self.runs),
            round(sum(run.server_cpu for run in self.runs) / requests * 1e6),
            round(sum(run.client_cpu for run in self.runs) / requests * 1e6),
            f"{self.throughput / baseline:.2f}",
        ]


HEADERS = [
    "pollers",
    "requests",
    "errors",
    "throughput req/s (median)",
    "per repeat",
    "p50 ms",
    "p99 ms",
    "peak in flight",
    "server CPU µs/req",
    "client CPU µs/req",
    "ratio to baseline",
]


def run_benchmark(
    pollers: list[int], requests: int, repeat: int, operations: int, timeout: float
) -> list[Level]:
    """Run every level ``repeat`` times, interleaved, after a warm-up, against one emulator process.

    Before each run the emulator's request log is cleared; after it, the emulator's own count of
    API requests served is kept in :attr:`RunResult.served` (it must equal the requests sent).
    """
    raise_fd_limit(2 * max(pollers) + 256)
    levels = [Level(n) for n in pollers]
    with EmulatorProcess(step_seconds=3600.0) as emulator:
        names = create_tuned_models(emulator.url, operations, prefix="load")

        async def bounded(n: int) -> RunResult:
            polls = max(1, requests // n)
            return await asyncio.wait_for(run_pollers(emulator.url, names, pollers=n, polls=polls), timeout)

        def one(n: int) -> RunResult:
            control(emulator.url, "DELETE", "requests")
            server = emulator.cpu_seconds()
            run = asyncio.run(bounded(n))
            run.server_cpu = emulator.cpu_seconds() - server
            run.served = int(control(emulator.url, "GET", "state")["requestCount"])
            return run

        one(min(pollers))  # warm-up, not reported
        for _ in range(repeat):
            for level in levels:
                level.runs.append(one(level.pollers))
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--pollers", type=int, nargs="+", default=[10, 1000], help="poller counts; first = baseline"
    )
    parser.add_argument(
        "--requests", type=int, default=20_000, help="requests per run, split over the pollers"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per level (default 5)")
    parser.add_argument("--operations", type=int, default=5, help="distinct operations polled (default 5)")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of one run in seconds")
    args = parser.parse_args(argv)
    # google.api_core warns about the Python version on import; it says nothing about this benchmark.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core")
    print(machine_header(command_line()))
    levels = run_benchmark(args.pollers, args.requests, args.repeat, args.operations, args.timeout)
    runs = [run for level in levels for run in level.runs]
    baseline = levels[0]
    polls = ", ".join(f"N={n}: {max(1, args.requests // n):,}" for n in args.pollers)
    print(f"polls per poller: {polls}; repeats: {args.repeat}; operations polled: {args.operations}")
    agree = all(run.served == run.requests for run in runs)
    print(f"emulator's request count equals the requests sent in every run: {'yes' if agree else 'NO'}")
    for level in levels[1:]:
        pairs = [r.throughput / b.throughput for r, b in zip(level.runs, baseline.runs, strict=True)]
        print(
            f"ratio N={level.pollers} / N={baseline.pollers}, run by run: "
            + " / ".join(f"{x:.2f}" for x in pairs)
        )
    print()
    print(table(HEADERS, [level.row(baseline.throughput) for level in levels]))
    for sample in [sample for run in runs for sample in run.error_samples][:5]:
        print(f"error: {sample}", file=sys.stderr)
    return 0 if agree and not any(run.errors for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
