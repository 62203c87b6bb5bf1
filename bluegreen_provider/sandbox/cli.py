"""``bluegreen sandbox up|down|status|inject``: run the sandbox as a background daemon.

``up`` starts the daemon in its own session (it outlives the shell) and returns once moto and the
HTTP server answer and the world is seeded; everything else talks to it through the state file and
its HTTP endpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bluegreen_provider.sandbox.profile import PROFILES, parse_overrides
from bluegreen_provider.sandbox.state import (
    DAEMON_MODULE,
    LOG_FILE,
    SandboxState,
    is_sandbox_daemon,
    read_state,
    remove_state,
    state_path,
)
from bluegreen_provider.sandbox.world import ALARM_NAMES, ZONE_NAME

_POLL = 0.1
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def _http(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _answers(state: SandboxState) -> bool:
    """True once the HTTP server answers and moto holds the seeded zone."""
    try:
        status, payload = _http(f"{state.http_url}/status", timeout=2.0)
        return status == 200 and payload.get("hosted_zone_id") == state.hosted_zone_id and _zone_seeded(state)
    except (OSError, ValueError):
        return False


def _zone_seeded(state: SandboxState) -> bool:
    import boto3  # only here: the other commands stay fast to start

    route53 = boto3.client(
        "route53",
        endpoint_url=state.endpoint_url,
        region_name=state.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    zones = route53.list_hosted_zones_by_name(DNSName=ZONE_NAME)["HostedZones"]
    return any(zone["Id"].endswith(state.hosted_zone_id) for zone in zones)


def _running(state_dir: Path) -> SandboxState | None:
    state = read_state(state_dir)
    if state is not None and is_sandbox_daemon(state.pid):
        return state
    return None


def _print_usage(state: SandboxState, state_dir: Path) -> None:
    print(f"sandbox running (pid {state.pid})")
    print(f"  moto (AWS):  {state.endpoint_url}   region {state.region}, hosted zone {state.hosted_zone_id}")
    print(f"  health:      {state.http_url}/blue/health  {state.http_url}/green/health")
    print(f"  status:      {state.http_url}/status")
    print("point Airflow at it with:")
    print(f"  export AIRFLOW_CONN_AWS_DEFAULT='{state.connection_json}'")
    print(f"state file: {state_path(state_dir)}; stop with: bluegreen sandbox down --state-dir {state_dir}")


def cmd_up(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    running = _running(state_dir)
    if running is not None:
        print(f"sandbox already running (pid {running.pid})")
        _print_usage(running, state_dir)
        return 0
    stale = read_state(state_dir)
    if stale is not None:
        remove_state(state_dir, stale.pid)
    try:
        parse_overrides(args.overrides)
    except ValueError as exc:
        print(f"bluegreen sandbox up: {exc}", file=sys.stderr)
        return 2
    state_dir.mkdir(parents=True, exist_ok=True)
    http_port = args.http_port if args.http_port is not None else (args.port + 1 if args.port else 0)
    command = [
        sys.executable, "-m", DAEMON_MODULE,
        "--port", str(args.port), "--http-port", str(http_port),
        "--rate", str(args.rate), "--flush", str(args.flush), "--seed", str(args.seed),
        "--state-dir", str(state_dir), "--profile", args.profile,
        *(f"--set={pair}" for pair in args.overrides),
    ]  # fmt: skip
    log_path = state_dir / LOG_FILE
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None and state.pid == process.pid and _answers(state):
            _print_usage(state, state_dir)
            return 0
        try:
            code = process.wait(timeout=_POLL)
        except subprocess.TimeoutExpired:
            continue
        print(f"sandbox daemon exited with {code} during start-up; last log lines ({log_path}):", file=sys.stderr)
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
        return 1
    print(f"sandbox did not become ready within {args.timeout:g} s; stopping it (log: {log_path})", file=sys.stderr)
    _terminate(process.pid, args.timeout)
    process.wait(timeout=5)
    remove_state(state_dir, process.pid)
    return 1


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL the daemon's process group; True if it ended."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_sandbox_daemon(pid):
            return True
        _wait_briefly(pid)
    try:
        os.killpg(pid, signal.SIGKILL)  # the daemon leads its own session and group
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_sandbox_daemon(pid):
        _wait_briefly(pid)
    return not is_sandbox_daemon(pid)


def _wait_briefly(pid: int) -> None:
    """Reap ``pid`` if it is our child (``up`` in the same process), else pause one poll interval."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return
    except ChildProcessError:
        pass
    time.sleep(_POLL)


def cmd_down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    state = read_state(state_dir)
    if state is None:
        print("sandbox is not running")
        return 0
    if is_sandbox_daemon(state.pid) and not _terminate(state.pid, args.timeout):
        print(f"sandbox (pid {state.pid}) did not stop", file=sys.stderr)
        return 1
    remove_state(state_dir, state.pid)
    print(f"sandbox stopped (pid {state.pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = _running(args.state_dir.resolve())
    if state is None:
        print("sandbox is not running")
        return 1
    code, status = _http(f"{state.http_url}/status")
    if code != 200:
        print(f"sandbox (pid {state.pid}) answered {code}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    weights = status["weights"]
    print(f"sandbox pid {state.pid}: moto {state.endpoint_url}, http {state.http_url}")
    print(_profile_line(status.get("profile") or {}))
    print(f"traffic {status['rate_per_second']:g} req/s, flush every {status['flush_seconds']:g} s")
    print("api.lego-mocs.com weights: " + ", ".join(f"{slot} {weight}" for slot, weight in weights.items()))
    print(f"{'slot':<6} {'requests':>9} {'errors':>7}  releases")
    for slot, data in status["slots"].items():
        releases = sorted({f["release"] for f in data["functions"].values() if f["release"]})
        print(f"{slot:<6} {data['requests']:>9} {data['errors']:>7}  {', '.join(releases) or '-'}")
    now = time.time()
    for slot, last in (status.get("served_last") or {}).items():
        at = last.get("last_request_at")
        print(f"last request to {slot}: " + (f"{now - at:.1f} s ago" if at else "never"))
    recent = (status.get("served_per_second") or [])[-5:]
    if recent:
        print("served per second (requests/failures): " + "; ".join(
            f"{time.strftime('%H:%M:%S', time.localtime(row['second']))} "
            + " ".join(f"{slot} {row[slot]['requests']}/{row[slot]['failures']}" for slot in ("blue", "green"))
            for row in recent
        ))  # fmt: skip
    changes = status.get("route53_changes") or []
    if changes:
        last = changes[-1]
        state_word = "INSYNC" if now >= last["insync_at"] else f"PENDING ({last['insync_at'] - now:.0f} s left)"
        share = status.get("resolvers_on_latest_change", 1.0)
        print(f"last Route53 change {last['change_id']}: {state_word}; {share:.0%} of resolvers see it")
    for check_id, check in (status.get("health_checks") or {}).items():
        verdict = "healthy" if check["healthy"] else "UNHEALTHY"
        print(f"health check {check_id} ({check['fqdn']}): {verdict}, {check['healthy_checkers']}/{check['checkers']}")
    if status.get("failing_checker_regions"):
        print("failing checker regions: " + ", ".join(status["failing_checker_regions"]))
    throttle = status.get("throttling") or {}
    if throttle.get("enabled"):
        print(f"Route53 throttling on: {throttle['throttled']} throttled, "
              f"{throttle['prior_request_not_complete']} PriorRequestNotComplete")  # fmt: skip
    forced = status["forced_alarms"]
    for name, value in status["alarms"].items():
        print(f"alarm {name}: {value}" + (" (forced)" if name in forced else ""))
    return 0


def _profile_line(profile: dict[str, Any]) -> str:
    if not profile:
        return "profile: unknown"
    period = profile.get("metrics_period_seconds")
    metrics = f"{period:g} s datapoints, {profile['metrics_lag_seconds']:g} s lag" if period else "per flush, no lag"
    checkers = profile["health_checkers"] or "moto's (always healthy)"
    return (
        f"profile {profile['name']}: propagation {profile['propagation_seconds']:g} s, "
        f"{profile['dns_clients']} clients with TTL {profile['dns_ttl_seconds']:g} s, metrics {metrics}, "
        f"health checkers {checkers}, throttling {'on' if profile['throttling'] else 'off'}"
    )


def cmd_inject(args: argparse.Namespace) -> int:
    state = _running(args.state_dir.resolve())
    if state is None:
        print("sandbox is not running", file=sys.stderr)
        return 1
    if args.action in ("region-down", "region-up"):
        failing = args.action == "region-down"
        code, payload = _http(f"{state.http_url}/checkers/{args.name}", {"failing": failing})
        if code != 200:
            print(f"inject failed ({code}): {payload.get('message') if payload else ''}", file=sys.stderr)
            return 1
        print(f"health checkers in {args.name} " + ("fail every probe" if failing else "probe normally again"))
        return 0
    body: dict[str, Any] = {"release": True} if args.action == "clear" else {"state": args.state}
    if args.action == "alarm" and args.reason:
        body["reason"] = args.reason
    code, payload = _http(f"{state.http_url}/alarms/{args.name}", body)
    if code != 200:
        print(f"inject failed ({code}): {payload.get('message') if payload else ''}", file=sys.stderr)
        return 1
    print(f"alarm {args.name} " + (f"forced to {args.state}" if args.action == "alarm" else "released"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bluegreen sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def with_state_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=Path(os.environ.get("BLUEGREEN_SANDBOX_DIR", ".sandbox")),
            help="where sandbox.json, the log and release zips live (env BLUEGREEN_SANDBOX_DIR)",
        )
        return sub

    up = with_state_dir(commands.add_parser("up", help="start the sandbox in the background"))
    up.add_argument("--port", type=int, default=5055, help="moto port")
    up.add_argument("--http-port", type=int, default=None, help="health/status port (default: port + 1)")
    up.add_argument("--rate", type=float, default=20.0, help="simulated requests per second")
    up.add_argument("--flush", type=float, default=10.0, help="seconds between metric flushes")
    up.add_argument("--seed", type=int, default=7)
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait until it is ready")
    up.add_argument("--profile", default="fast", choices=sorted(PROFILES), help="how AWS-like (default fast)")
    up.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="override one profile setting, e.g. propagation_seconds=5 (repeatable)",
    )
    up.set_defaults(func=cmd_up)

    down = with_state_dir(commands.add_parser("down", help="stop the sandbox"))
    down.add_argument("--timeout", type=float, default=15.0, help="seconds to wait before SIGKILL")
    down.set_defaults(func=cmd_down)

    status = with_state_dir(commands.add_parser("status", help="weights and per-slot traffic"))
    status.add_argument("--json", action="store_true", help="print the raw status document")
    status.set_defaults(func=cmd_status)

    inject = with_state_dir(commands.add_parser("inject", help="force or release an alarm; fail a checker region"))
    inject.add_argument("action", choices=["alarm", "clear", "region-down", "region-up"])
    inject.add_argument("name", help=f"an alarm ({', '.join(ALARM_NAMES)}) or a checker region (us-east-1, …)")
    inject.add_argument("--state", default="ALARM", choices=["ALARM", "OK", "INSUFFICIENT_DATA"])
    inject.add_argument("--reason", default=None)
    inject.set_defaults(func=cmd_inject)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
