"""``python -m bluegreen_provider.sandbox.daemon``: run one Sandbox until SIGTERM or SIGINT.

The CLI starts this detached; the state file it writes once serving is the signal that it is ready.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from bluegreen_provider.sandbox.core import Sandbox
from bluegreen_provider.sandbox.profile import parse_overrides
from bluegreen_provider.sandbox.state import SandboxState, remove_state, write_state

log = logging.getLogger("bluegreen_provider.sandbox.daemon")
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bluegreen_provider.sandbox.daemon")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 inside a container)")
    parser.add_argument("--port", type=int, default=5055, help="moto port (0 picks a free one)")
    parser.add_argument("--http-port", type=int, default=0, help="health/status port (0 picks a free one)")
    parser.add_argument("--rate", type=float, default=20.0, help="simulated requests per second")
    parser.add_argument("--flush", type=float, default=10.0, help="seconds between metric flushes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--profile", default="fast", help="fast (default) or aws")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SETTING=VALUE", help="override a setting"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Blocked before any thread starts, so every thread inherits the mask and the signal waits for
    # sigwait() below instead of interrupting whichever thread the kernel picks.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    state_dir = args.state_dir.resolve()
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        rate_per_second=args.rate,
        flush_seconds=args.flush,
        seed=args.seed,
        state_dir=state_dir,
        profile=args.profile,
        **parse_overrides(args.overrides),
    )
    sandbox.start()
    try:
        write_state(
            state_dir,
            SandboxState.of(sandbox, os.getpid()),
        )
        log.info("serving: moto %s, http %s, profile %s", sandbox.endpoint_url, sandbox.http_url, sandbox.profile)
        received = signal.sigwait(_STOP_SIGNALS)
        log.info("received %s, stopping", signal.Signals(received).name)
    finally:
        remove_state(state_dir, os.getpid())
        sandbox.stop()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
