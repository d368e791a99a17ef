"""The hook's cost per request, and how often it refreshes an OAuth token.

1. ``GenerativeLanguageHook.get_tuned_model`` against the emulator (subprocess) versus a bare
   ``requests.Session`` sending the same GET with the API key header (as is, and with
   ``trust_env=False`` like the hook's session for a loopback API): interleaved rounds (the order
   rotates), after a warm-up; median and p90 per call and the ratios.
2. 10,000 ``get_tuned_model`` calls with OAuth ``authorized_user`` credentials whose ``token_uri`` is a
   loopback token endpoint that counts refreshes, once with a long token lifetime (one refresh
   expected) and once with a short one (``ceil(duration / lifetime)`` expected). google-auth treats
   a token as expired ``REFRESH_THRESHOLD`` (3 min 45 s) before its ``expires_in``, so the lifetime
   the client sees is ``expires_in - 225 s``; the short case sets ``expires_in`` just above 225 s.

Usage: ``python bench/hook_overhead.py [--quick] [--pairs 3000] [--calls 10000] [--runs 2]``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    create_tuned_models,
    machine_header,
    median,
    percentile,
    table,
)

#: The access token the bench's token endpoint issues on every refresh (refreshes are counted there).
BENCH_TOKEN = "bench-access-token"  # noqa: S105 - a loopback test token


class TokenEndpoint:
    """An OAuth token endpoint on 127.0.0.1 that counts refresh requests.

    :param expires_in: the ``expires_in`` of every token it issues, in seconds.
    """

    def __init__(self, expires_in: float) -> None:
        self.expires_in = expires_in
        self.refreshes = 0
        self.times: list[float] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                endpoint.refreshes += 1
                endpoint.times.append(time.monotonic())
                body = json.dumps(
                    {
                        "access_token": BENCH_TOKEN,
                        "expires_in": endpoint.expires_in,
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="token-endpoint")

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def __enter__(self) -> TokenEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextmanager
def connection(value: str) -> Iterator[None]:
    """Set the default connection's environment variable for the block."""
    previous = os.environ.get(CONN_ENV)
    os.environ[CONN_ENV] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CONN_ENV, None)
        else:
            os.environ[CONN_ENV] = previous


def overhead(url: str, model: str, rounds: int, warmup: int = 50) -> dict[str, list[float]]:
    """Interleaved rounds of hook.get_tuned_model and two bare sessions; per-call seconds of each.

    ``bare`` is ``requests.Session()`` as is; ``bare_noenv`` also sets ``trust_env = False``, as the hook
    does for a loopback API (no proxy or ``.netrc`` lookup per request): the same transport settings,
    so ``hook - bare_noenv`` is the hook's own work (auth headers, error mapping, JSON checks).
    The order of the three calls rotates from round to round.
    """
    import requests

    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

    hook = GenerativeLanguageHook()
    sessions = {"bare": requests.Session(), "bare_noenv": requests.Session()}
    sessions["bare_noenv"].trust_env = False
    for session in sessions.values():
        session.headers["x-goog-api-key"] = API_KEY
    target = f"{url}/v1beta/{model}"
    perf = time.perf_counter

    def bare(session: requests.Session) -> float:
        start = perf()
        response = session.get(target, timeout=10)
        response.raise_for_status()
        response.json()
        return perf() - start

    def via_hook() -> float:
        start = perf()
        hook.get_tuned_model(model)
        return perf() - start

    calls = {
        "hook": via_hook,
        "bare": lambda: bare(sessions["bare"]),
        "bare_noenv": lambda: bare(sessions["bare_noenv"]),
    }
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            times[name].append(calls[name]())
    hook.close()
    for session in sessions.values():
        session.close()
    return times


def refreshes(url: str, model: str, calls: int, expires_in: float) -> dict[str, Any]:
    """``calls`` hook calls with authorized_user credentials; refreshes counted at the token endpoint."""
    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

    with TokenEndpoint(expires_in) as endpoint:
        keyfile = {
            "type": "authorized_user",
            "client_id": "bench-client.apps.googleusercontent.com",
            "client_secret": "bench-client-secret",
            "refresh_token": "bench-refresh-token",
            "token_uri": endpoint.token_uri,
        }
        value = connection_json(url, api_key="", auth_type="authorized_user", keyfile_dict=keyfile)
        with connection(value):
            hook = GenerativeLanguageHook()
            start = time.monotonic()
            for _ in range(calls):
                hook.get_tuned_model(model)
            duration = time.monotonic() - start
            hook.close()
        gaps = [b - a for a, b in zip(endpoint.times, endpoint.times[1:], strict=False)]
        return {
            "expires_in": expires_in,
            "calls": calls,
            "duration": duration,
            "refreshes": endpoint.refreshes,
            "min_gap": min(gaps) if gaps else None,
        }


def main(argv: list[str] | None = None) -> int:
    from google.auth import _helpers

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: few pairs and calls")
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurements (same emulator)")
    parser.add_argument("--pairs", type=int, default=3000, help="interleaved rounds (one call of each)")
    parser.add_argument("--calls", type=int, default=10_000, help="calls per token-refresh case")
    parser.add_argument("--long-expires-in", type=float, default=3600.0, help="long token lifetime, s")
    parser.add_argument(
        "--short-lifetime", type=float, default=2.0, help="short lifetime seen by the client, s"
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.pairs, opts.calls, opts.short_lifetime = 100, 300, 0.2
    apply_airflow_env(quiet=True)
    threshold = _helpers.REFRESH_THRESHOLD.total_seconds()
    short_expires_in = threshold + opts.short_lifetime

    print(machine_header(command_line()))
    print(
        f"setup: emulator subprocess (no added latency), {opts.pairs} interleaved rounds after 50 warm-up "
        f"rounds; token refreshes over {opts.calls} calls; google-auth refresh threshold {threshold:g} s; "
        f"{opts.runs} run(s)"
    )
    rows, token_rows = [], []
    with EmulatorProcess(step_seconds=3600.0, tokens=(BENCH_TOKEN,)) as emu:
        (operation,) = create_tuned_models(emu.url, 1, prefix="bench-hook")
        model = operation.split("/operations/")[0]
        for run in range(1, opts.runs + 1):
            with connection(connection_json(emu.url)):
                result = overhead(emu.url, model, opts.pairs)
            us = {name: [t * 1e6 for t in values] for name, values in result.items()}
            hook, bare, noenv = (median(us[name]) for name in ("hook", "bare", "bare_noenv"))
            rows.append(
                [
                    run,
                    opts.pairs,
                    f"{bare:.0f}",
                    f"{noenv:.0f}",
                    f"{hook:.0f}",
                    f"{percentile(us['bare'], 90):.0f} / {percentile(us['bare_noenv'], 90):.0f} / "
                    f"{percentile(us['hook'], 90):.0f}",
                    f"{hook - noenv:.0f}",
                    f"{hook / noenv:.2f}x",
                    f"{hook / bare:.2f}x",
                ]
            )
            for expires_in in (opts.long_expires_in, short_expires_in):
                r = refreshes(emu.url, model, opts.calls, expires_in)
                lifetime = expires_in - threshold
                expected = max(1, math.ceil(r["duration"] / lifetime))
                token_rows.append(
                    [
                        run,
                        f"{expires_in:g}",
                        f"{lifetime:g}",
                        r["calls"],
                        f"{r['duration']:.2f}",
                        f"{r['duration'] / r['calls'] * 1e6:.0f}",
                        r["refreshes"],
                        expected,
                        "n/a" if r["min_gap"] is None else f"{r['min_gap']:.3f}",
                        "met" if r["refreshes"] == expected else "NOT met",
                    ]
                )
    print()
    print(
        table(
            [
                "run",
                "rounds",
                "Session() µs p50",
                "Session(trust_env=False) µs p50",
                "hook µs p50",
                "p90 (same order)",
                "hook - Session(trust_env=False) µs",
                "hook / Session(trust_env=False)",
                "hook / Session()",
            ],
            rows,
        )
    )
    print()
    print(
        table(
            [
                "run",
                "expires_in s",
                "lifetime seen s (- threshold)",
                "calls",
                "duration s",
                "µs per call",
                "refreshes at token endpoint",
                "expected ceil(duration/lifetime)",
                "min s between refreshes",
                "goal",
            ],
            token_rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
