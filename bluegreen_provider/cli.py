"""``bluegreen``: the on-call engineer's command line.

    bluegreen status   [--service lego-api]    what AWS says now: split, lock, retention, versions, alarms
    bluegreen rollback --service lego-api      emergency rollback (idempotent; same code as the DAGs)
    bluegreen sandbox  up|down|status|inject   the embedded AWS sandbox
    bluegreen demo     [--scenario happy|bad-release|alarm|reject] [--profile fast|aws]
    bluegreen airflow                          Airflow + sandbox on this machine, until Ctrl-C

Services are found by importing the DAG files of ``--dags-folder``: every ``deployment_dag(...)``
registers its config, so the CLI acts on exactly what the DAGs deploy.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _use_sandbox_connection_if_up() -> None:
    """Point ``aws_default`` at a running sandbox unless the user configured a connection."""
    if "AIRFLOW_CONN_AWS_DEFAULT" in os.environ:
        return
    state_file = Path(os.environ.get("BLUEGREEN_SANDBOX_DIR", REPO / ".sandbox")) / "sandbox.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if state.get("connection_json"):
            os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = state["connection_json"]


def load_services(dags_folder: Path) -> dict[str, Any]:
    """Import the DAG files and return the service specs they build, by name (only theirs)."""
    from bluegreen_provider.dag_factory import REGISTERED_SERVICES

    if str(dags_folder) not in sys.path:
        sys.path.append(str(dags_folder))  # as Airflow does: DAG files may import their neighbours
    REGISTERED_SERVICES.clear()  # a DAG file removed since the last call must not linger
    for path in sorted(Path(dags_folder).glob("*.py")):
        runpy.run_path(str(path), run_name=f"bluegreen_dags_{path.stem}")
    return dict(REGISTERED_SERVICES)


def _pick(services: dict[str, Any], name: str | None):
    if name is None and len(services) == 1:
        return next(iter(services.values()))
    if name not in services:
        raise SystemExit(f"unknown service {name!r}; the DAGs define: {sorted(services) or 'none'}")
    return services[name]


def cmd_status(args: argparse.Namespace) -> int:
    from bluegreen_provider.status import service_status

    _use_sandbox_connection_if_up()
    services = load_services(args.dags_folder)
    names = [args.service] if args.service else sorted(services)
    for name in names:
        spec = _pick(services, name)
        print(service_status(spec, aws_conn_id=args.aws_conn_id).render())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    import getpass

    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.rollback import emergency_rollback, outcome_summary
    from bluegreen_provider.state import TransitionRefused

    _use_sandbox_connection_if_up()
    spec = _pick(load_services(args.dags_folder), args.service)
    route53 = Route53Hook(aws_conn_id=args.aws_conn_id)
    try:
        outcome = emergency_rollback(
            route53, LambdaAliasHook(aws_conn_id=args.aws_conn_id), spec, by=f"cli:{getpass.getuser()}"
        )
    except TransitionRefused as err:
        print(f"rollback refused: {err}", file=sys.stderr)
        return 2
    route53.wait_for_change(outcome.change_id, timeout_seconds=spec.insync_timeout_seconds, poll_seconds=2)
    print(json.dumps({**outcome_summary(outcome), "insync": True}, indent=2, default=str))
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bluegreen_provider.sandbox.cli import main as sandbox_main

    return sandbox_main(args.rest)


def cmd_demo(args: argparse.Namespace) -> int:
    from bluegreen_provider.demo import run_demo

    return run_demo(scenario=args.scenario, profile=args.profile)


def cmd_airflow(args: argparse.Namespace) -> int:
    from bluegreen_provider.demo import run_airflow

    return run_airflow(port=args.port, profile=args.profile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bluegreen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags-folder", type=Path, default=REPO / "dags")
    parser.add_argument("--aws-conn-id", default="aws_default")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", help="what AWS says now about a service")
    p.add_argument("--service")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rollback", help="emergency rollback of a service")
    p.add_argument("--service")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("sandbox", help="the embedded AWS sandbox", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("demo", help="a full deployment on the sandbox, headless")
    p.add_argument("--scenario", default="happy", choices=["happy", "bad-release", "alarm", "reject"])
    p.add_argument("--profile", choices=["fast", "aws"], help="sandbox timings (default fast)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("airflow", help="Airflow and the sandbox on this machine until Ctrl-C")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--profile", choices=["fast", "aws"], help="sandbox timings (default fast)")
    p.set_defaults(func=cmd_airflow)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
