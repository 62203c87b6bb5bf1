"""``bluegreen``: the on-call engineer's command line.

    bluegreen status   [--service lego-api]    what AWS says now: split, lock, retention, versions, alarms
    bluegreen rollback --service lego-api      emergency rollback (idempotent; same code as the DAGs)
    bluegreen iam-policy --service lego-api --account-id 123456789012 --region us-east-1
                                               the least-privilege IAM policy its deployments need
    bluegreen sandbox  up|down|status|inject   the embedded AWS sandbox
    bluegreen demo     [--scenario happy|bad-release|alarm|reject] [--profile fast|aws]
    bluegreen airflow                          Airflow + sandbox on this machine, until Ctrl-C

Services are found by importing the DAG files of ``--dags-folder`` (default: Airflow's ``[core]
dags_folder``; in a source checkout, its ``dags/``): every ``deployment_dag(...)`` registers its
config, so the CLI acts on exactly what the DAGs deploy. A sandbox started here (``bluegreen
sandbox up`` or ``bluegreen airflow``) is used when no connection is configured.

Every failure is one line on stderr: exit 2 for bad input (an unknown service, a missing DAG folder,
a DAG file that does not import, a refused rollback), 1 when AWS or anything else failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from bluegreen_provider.locations import EXAMPLE_DAGS, configured_dags_folder, sandbox_dirs

BAD_INPUT = 2


class CliError(Exception):
    """A failure the CLI reports as one line, with its exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class DagFileError(Exception):
    """A DAG file that failed to import, naming the file and its error."""

    def __init__(self, path: Path, error: BaseException):
        super().__init__(f"DAG file {path} failed to import: {type(error).__name__}: {error}")
        self.path = path


def _conn_env(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _use_sandbox_connection_if_up(conn_id: str) -> Path | None:
    """Point the connection at a sandbox running here unless the user configured it; returns its state dir."""
    from bluegreen_provider.sandbox.state import is_alive, read_state

    if _conn_env(conn_id) in os.environ:
        return None
    for state_dir in sandbox_dirs():
        state = read_state(state_dir)
        if state is not None and state.connection_json and is_alive(state.pid):
            os.environ[_conn_env(conn_id)] = state.connection_json
            return state_dir
    return None


def load_services(dags_folder: Path) -> dict[str, Any]:
    """Import the DAG files and return the service specs they build, by name (only theirs).

    :raises DagFileError: a DAG file failed to import.
    """
    from bluegreen_provider.dag_factory import REGISTERED_SERVICES

    if str(dags_folder) not in sys.path:
        sys.path.append(str(dags_folder))  # as Airflow does: DAG files may import their neighbours
    REGISTERED_SERVICES.clear()  # a DAG file removed since the last call must not linger
    for path in sorted(Path(dags_folder).glob("*.py")):
        try:
            runpy.run_path(str(path), run_name=f"bluegreen_dags_{path.stem}")
        except Exception as err:
            raise DagFileError(path, err) from err
    return dict(REGISTERED_SERVICES)


def _dags_folder(args: argparse.Namespace) -> Path:
    if args.dags_folder is not None:
        folder, source = args.dags_folder, "--dags-folder"
    else:
        folder, source = configured_dags_folder()
    if not folder.is_dir():
        raise CliError(
            f"DAG folder {folder} ({source}) does not exist; pass --dags-folder "
            f"(the provider's example DAGs are in {EXAMPLE_DAGS})",
            BAD_INPUT,
        )
    return folder


def _services(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    folder = _dags_folder(args)
    try:
        return load_services(folder), folder
    except DagFileError as err:
        raise CliError(str(err), BAD_INPUT) from err


def _pick(services: dict[str, Any], name: str | None, folder: Path):
    if name is None and len(services) == 1:
        return next(iter(services.values()))
    if name is None:
        raise CliError(f"name one with --service; the DAGs in {folder} define: {sorted(services) or 'none'}", BAD_INPUT)
    if name not in services:
        raise CliError(
            f"unknown service {name!r}; the DAGs in {folder} define: {sorted(services) or 'none'}", BAD_INPUT
        )
    return services[name]


def cmd_status(args: argparse.Namespace) -> int:
    from bluegreen_provider.status import service_status

    _use_sandbox_connection_if_up(args.aws_conn_id)
    services, folder = _services(args)
    names = [args.service] if args.service else sorted(services)
    if not names:
        raise CliError(f"no services: the DAGs in {folder} define none", BAD_INPUT)
    specs = [_pick(services, name, folder) for name in names]
    for spec in specs:
        for region in spec.region_specs():  # a multi-region service: one block per region
            print(service_status(region, aws_conn_id=args.aws_conn_id).render())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    import getpass

    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.rollback import emergency_rollback, outcome_summary
    from bluegreen_provider.state import TransitionRefused

    _use_sandbox_connection_if_up(args.aws_conn_id)
    services, folder = _services(args)
    spec = _pick(services, args.service, folder)
    done: dict[str, Any] = {}
    for region in spec.region_specs():  # every region of a multi-region service, each its own record
        route53 = Route53Hook(aws_conn_id=args.aws_conn_id, region_name=region.region_name)
        lambdas = LambdaAliasHook(aws_conn_id=args.aws_conn_id, region_name=region.region_name)
        try:
            outcome = emergency_rollback(route53, lambdas, region, by=f"cli:{getpass.getuser()}")
        except TransitionRefused as err:
            if not spec.regions:
                raise CliError(f"refused: {err}", BAD_INPUT) from err
            done[region.region_name or ""] = {"refused": str(err)}
            continue
        route53.wait_for_change(outcome.change_id, timeout_seconds=region.insync_timeout_seconds, poll_seconds=2)
        done[region.region_name or ""] = {**outcome_summary(outcome), "insync": True}
    print(json.dumps(done if spec.regions else done[""], indent=2, default=str))
    if spec.regions and all("refused" in result for result in done.values()):
        raise CliError(
            "refused in every region: " + "; ".join(f"{r}: {v['refused']}" for r, v in done.items()), BAD_INPUT
        )
    return 0


def cmd_iam_policy(args: argparse.Namespace) -> int:
    from bluegreen_provider.iam_policy import IamPolicyError, policy_for, zone_id_of

    services, folder = _services(args)
    spec = _pick(services, args.service, folder)
    zone_id = args.hosted_zone_id
    if zone_id is None and zone_id_of(spec) is None:
        # A zone named by DNS name: its id is read through the connection (pass --hosted-zone-id to skip).
        from bluegreen_provider.hooks.route53 import Route53Hook

        _use_sandbox_connection_if_up(args.aws_conn_id)
        zone_id = Route53Hook(aws_conn_id=args.aws_conn_id).resolve_zone_id(spec.hosted_zone)
    try:
        policy = policy_for(
            spec, args.account_id, args.region, hosted_zone_id=zone_id, artifact_buckets=args.artifact_bucket
        )
    except IamPolicyError as err:
        raise CliError(str(err), BAD_INPUT) from err
    print(json.dumps(policy, indent=2))
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


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bluegreen", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dags-folder", type=Path, default=None, help="DAG files to find services in (default: Airflow's dags_folder)"
    )
    parser.add_argument("--aws-conn-id", default="aws_default")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", help="what AWS says now about a service")
    p.add_argument("--service")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rollback", help="emergency rollback of a service")
    p.add_argument("--service")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("iam-policy", help="the least-privilege IAM policy a service's deployments need")
    p.add_argument("--service")
    p.add_argument("--account-id", required=True, help="the account of the functions and alarms")
    p.add_argument("--region", required=True, help="the region of the functions and alarms")
    p.add_argument("--hosted-zone-id", help="the zone's id (default: looked up when the service names it by name)")
    p.add_argument(
        "--artifact-bucket", action="append", default=[], help="a bucket runs release code from (repeatable)"
    )
    p.set_defaults(func=cmd_iam_policy)

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


_NO_CREDENTIALS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "TokenRetrievalError",
    "SSOTokenLoadError",
    "UnauthorizedSSOTokenError",
)


def _explain(err: BaseException, conn_id: str) -> tuple[str, int]:
    """What went wrong, for one line, and the exit code: the one place failures are translated."""
    from botocore import exceptions as boto

    if isinstance(err, CliError):
        return str(err), err.code
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(err, boto.NoRegionError):
        return f"no AWS region for connection {conn_id}: {err} (set region_name in its extra)", 1
    if isinstance(err, tuple(getattr(boto, name) for name in _NO_CREDENTIALS if hasattr(boto, name))):
        return (
            f"no AWS credentials for connection {conn_id}: {err} "
            "(configure the connection, or start a sandbox here: bluegreen sandbox up)",
            1,
        )
    if isinstance(err, boto.ClientError):
        error = err.response.get("Error", {})
        return f"AWS {err.operation_name} failed: {error.get('Code', '?')}: {error.get('Message', '')}", 1
    if isinstance(err, (boto.ConnectionError, boto.HTTPClientError)):
        return f"AWS endpoint unreachable for connection {conn_id}: {err}", 1
    if isinstance(err, boto.BotoCoreError):
        return f"AWS error for connection {conn_id}: {err}", 1
    if type(err).__module__.startswith("bluegreen_provider"):
        return str(err), 1  # our own errors say what and why
    return f"{type(err).__name__}: {err}", 1


@contextlib.contextmanager
def _quiet_airflow_logs() -> Iterator[None]:
    """Airflow reads its log level once, when first imported: keep its INFO chatter out of the output."""
    if "airflow" in sys.modules or "AIRFLOW__LOGGING__LOGGING_LEVEL" in os.environ:
        yield
        return
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    try:
        yield
    finally:
        os.environ.pop("AIRFLOW__LOGGING__LOGGING_LEVEL", None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed as one line
        return int(exit_.code or 0)
    quiet = _quiet_airflow_logs() if args.command in ("status", "rollback", "iam-policy") else contextlib.nullcontext()
    try:
        with quiet:
            return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as err:
        message, code = _explain(err, args.aws_conn_id)
        print(f"bluegreen {args.command}: " + " ".join(message.split()), file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
