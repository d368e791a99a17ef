"""Command line: ``tuning-api-emulator --port 8085 ...`` (or ``python -m tuning_api_emulator ...``).

Prints the base URL once it is serving and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from tuning_api_emulator.bodies import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_LOG_BODY_BYTES,
    DEFAULT_MAX_BODY_BYTES,
)
from tuning_api_emulator.faults import FaultPlan
from tuning_api_emulator.runner import Emulator


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="tuning-api-emulator",
        description="Local emulator of Google's model-tuning REST APIs (Generative Language API, "
        "Vertex AI tuning jobs) with a Cloud Storage subset and an OAuth token endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8085, help="port to bind, 0 for a free one (default 8085)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=0.5, help="seconds per tuning step (default 0.5)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="an accepted API key (repeatable); with no --api-key nor --token any non-empty key is "
        "accepted, with either only the configured credentials are",
    )
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="TOKEN",
        help="an accepted OAuth access token (repeatable); with no --api-key nor --token any non-empty "
        "token is accepted, with either only the configured credentials are",
    )
    parser.add_argument(
        "--refresh-token",
        action="append",
        dest="refresh_tokens",
        metavar="TOKEN",
        help="a refresh token POST /token honours (repeatable); counts as configuring credentials",
    )
    parser.add_argument(
        "--service-account",
        action="append",
        dest="service_accounts",
        metavar="EMAIL",
        help="a service account whose JWT grants POST /token honours (repeatable); counts as "
        "configuring credentials",
    )
    parser.add_argument("--state-file", help="JSON file that keeps tuned models across restarts")
    parser.add_argument("--faults", help="fault configuration: JSON text or the path of a JSON file")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of generated ids and fault draws (default 0)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted, larger ones get 413 (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        help="seconds a request body may take to arrive, slower ones get 408 "
        f"(default {DEFAULT_BODY_TIMEOUT:g})",
    )
    parser.add_argument(
        "--log-body-bytes",
        type=int,
        default=DEFAULT_LOG_BODY_BYTES,
        help=f"bytes of each request body the request log keeps (default {DEFAULT_LOG_BODY_BYTES})",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log one line per API request (never credentials)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM."""
    args = build_parser().parse_args(argv)
    if args.step_seconds <= 0:
        print("error: --step-seconds must be positive", file=sys.stderr)
        return 2
    faults = None
    if args.faults:
        try:
            faults = FaultPlan.from_text(args.faults, args.seed)
        except (OSError, ValueError, TypeError) as err:
            print(f"error: invalid --faults: {err}", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        stream=sys.stdout,
    )
    try:
        emulator = Emulator(
            step_seconds=args.step_seconds,
            api_keys=args.api_keys,
            tokens=args.tokens,
            state_file=args.state_file,
            seed=args.seed,
            host=args.host,
            port=args.port,
            faults=faults,
            max_body_bytes=args.max_body_bytes,
            body_timeout=args.body_timeout,
            log_body_bytes=args.log_body_bytes,
            refresh_tokens=args.refresh_tokens,
            service_accounts=args.service_accounts,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        url = emulator.start()
    except OSError as err:
        print(f"error: cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    print(f"Tuning API emulator serving on {url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        print("Tuning API emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
