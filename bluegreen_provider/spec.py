"""The deployment spec: what one service's blue/green release looks like, validated in one place.

Every task of the deployment DAG works from the same spec, so a bad input is refused once, up front,
with every problem listed, before anything in AWS or the database changes.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, replace
from string import Formatter
from typing import Any

from bluegreen_provider.command_env import command_env_problems

SLOT_NAMES = ("blue", "green")
MAX_ROUTE53_WEIGHT = 255
POST_PROMOTION_POLICIES = ("rollback", "notify", "off")
APPROVAL_MODES = ("required", "auto")
# How several regions move: all at each step together, or the first region first at each step.
REGION_ROLLOUTS = ("lockstep", "waves")
# What a deployment tells people about (bluegreen_provider.notifications words each one).
NOTIFICATION_EVENTS = (
    "approval_needed",
    "shifted",
    "held",
    "rolled_back",
    "promoted",
    "torn_down",
    "post_promotion_rollback",
    "post_promotion_breach",
    "overdue",
)
# The story's target for a whole deployment; past it, "overdue" goes out (Airflow's Deadline Alerts).
DEFAULT_OVERDUE_SECONDS = 30 * 60
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROUTERS = ("route53", "lambda_alias")  # the traffic routers a service config may name
_ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}$")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_*\\-]{1,63}")
_ZONE_ID = re.compile(r"(/hostedzone/)?[A-Z0-9]{1,32}")
_HTTP_URL = re.compile(r"https?://[^\s]{1,2040}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SNS_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_./-]{1,256}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")
_HEALTH_CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")  # as Route53 takes them
# A wait longer than a year is a typo, and deadlines that far off overflow datetime arithmetic mid-run.
MAX_SECONDS = 366 * 24 * 3600
# Paths, S3 keys and image URIs stop well before this (S3 keys at 1024 bytes).
MAX_SOURCE_CHARS = 1024
# The label shows on each published version, whose description Lambda cuts at 256 characters.
MAX_LABEL_CHARS = 256
MAX_PREWARM_INVOCATIONS = 10_000
_SHOWN_CHARS = 60
_PROBLEM_CHARS = 1500


class SpecError(ValueError):
    """A deployment spec that cannot be run; the message lists every problem found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = [_one_line(problem) for problem in problems]
        super().__init__("invalid deployment spec:\n  - " + "\n  - ".join(self.problems))


def _one_line(problem: Any) -> str:
    """A problem as one readable line, whatever a message quoted."""
    text = " ".join(str(problem).splitlines())
    return text if len(text) <= _PROBLEM_CHARS else f"{text[:_PROBLEM_CHARS]}… (cut)"


def _show(value: Any) -> str:
    """A value as a problem quotes it: its repr, cut short so a huge input cannot flood the message."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return f"{text[:_SHOWN_CHARS]}… ({size} characters)"


def _is_text(value: Any, limit: int) -> bool:
    """A name AWS or Airflow takes as given: 1..limit characters, none of them control characters."""
    return isinstance(value, str) and 0 < len(value) <= limit and not _CONTROL.search(value)


def _is_dns_name(name: str) -> bool:
    """Labels Route53 takes without escaping (``*`` and ``\\052`` for wildcards), 255 characters in all."""
    labels = name.removesuffix(".").split(".")
    return 0 < len(name) <= 255 and all(_DNS_LABEL.fullmatch(label) for label in labels)


def _number_problem(name: str, value: Any, rule: str, ok: Callable[[Any], bool], *, integer: bool = False) -> list[str]:
    """``[problem]`` unless ``value`` is a finite number (an integer if asked, never a boolean) that is ``ok``."""
    typed = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not typed or (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
        return [f"{name} must be {rule}, got {_show(value)}"]
    return []


def _seconds_problem(name: str, value: Any, *, zero_ok: bool = False) -> list[str]:
    """A wait in seconds: finite, not negative (not zero unless ``zero_ok``), at most ``MAX_SECONDS``."""
    kind = "non-negative" if zero_ok else "positive"
    return _number_problem(
        name,
        value,
        f"a {kind} number of seconds (at most 366 days)",
        lambda v: (v >= 0 if zero_ok else v > 0) and v <= MAX_SECONDS,
    )


def _source_problem(where: str, value: Any, *, number_ok: bool = False) -> list[str]:
    """A path, bucket, key, image URI or version must be short plain text (a version may be a number)."""
    if number_ok and isinstance(value, int) and not isinstance(value, bool):
        return []
    if not isinstance(value, str):
        return [f"{where} must be a string, got {_show(value)}"]
    if len(value) > MAX_SOURCE_CHARS or _CONTROL.search(value):
        return [f"{where} must be at most {MAX_SOURCE_CHARS} characters without control characters, got {_show(value)}"]
    return []


@dataclass(frozen=True)
class Slot:
    """One colour: a Lambda alias per function plus a Route53 weighted set (and its API endpoint)."""

    name: str
    set_identifier: str
    alias: str
    health_url: str | None = None
    health_check_fqdn: str | None = None
    api_name: str | None = None


@dataclass(frozen=True)
class FunctionRelease:
    """The code one function receives in the candidate slot: a zip, an S3 object, an image or a version."""

    name: str
    zip_file: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    image_uri: str | None = None
    version: str | None = None

    @property
    def source(self) -> str:
        for kind in ("zip_file", "s3_key", "image_uri", "version"):
            if getattr(self, kind):
                return kind
        return "none"

    @property
    def has_own_source(self) -> bool:
        """Whether the function names any code itself (then a release does not apply to it)."""
        return any(getattr(self, k) for k in ("zip_file", "s3_bucket", "s3_key", "image_uri", "version"))


# The ways a release names the code of every function; each form is the set of keys it takes.
RELEASE_FORMS: tuple[tuple[str, ...], ...] = (
    ("version",),
    ("zip_file",),
    ("zip_dir",),
    ("s3_bucket", "s3_key"),
    ("s3_bucket", "s3_prefix"),
    ("image_uri",),
    ("image_repository", "image_tag"),
)
_PLACEHOLDER = "function"


@dataclass(frozen=True)
class Release:
    """One release for every function at once, so a trigger names it once instead of per function.

    Exactly one source: ``version``; ``zip_file``; ``zip_dir`` (``<dir>/<function>.zip``);
    ``s3_bucket`` with ``s3_key`` or ``s3_prefix`` (``<prefix><function>.zip``); ``image_uri``; or
    ``image_repository`` with ``image_tag`` (``<repository>:<tag>``). ``{function}`` in any value
    stands for each function's name; a value without it is one artifact shared by every function.
    ``label`` is free text (e.g. "1.4.2") shown in the plan and on the versions published.
    """

    label: str | None = None
    version: str | None = None
    zip_file: str | None = None
    zip_dir: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    s3_prefix: str | None = None
    image_uri: str | None = None
    image_repository: str | None = None
    image_tag: str | None = None

    @property
    def given(self) -> tuple[str, ...]:
        """The source keys given (the label is not a source)."""
        return tuple(k for k in self.__dataclass_fields__ if k != "label" and getattr(self, k) not in (None, ""))

    def problems(self) -> list[str]:
        """Every problem with the release itself; empty when it can be applied."""
        p: list[str] = []
        if self.label is not None and not isinstance(self.label, str):
            p.append(f"release.label must be text, got {_show(self.label)}")
        elif self.label is not None and (len(self.label) > MAX_LABEL_CHARS or _CONTROL.search(self.label)):
            p.append(
                f"release.label must be text of at most {MAX_LABEL_CHARS} characters without control characters, "
                f"got {_show(self.label)}"
            )
        for key in self.given:
            value = getattr(self, key)
            source = _source_problem(f"release.{key}", value, number_ok=key == "version")
            p.extend(source)
            if not source and isinstance(value, str):
                p.extend(_template_problems(f"release.{key}", value))
        given = set(self.given)
        if given and not any(set(form) == given for form in RELEASE_FORMS):
            forms = ", ".join("+".join(form) for form in RELEASE_FORMS)
            p.append(f"release: give exactly one source, one of {forms} (got {sorted(given)})")
        return p

    def source_for(self, function: str) -> dict[str, str]:
        """The explicit source this release gives ``function`` (empty when it names no source)."""

        def fill(key: str) -> str:
            return str(getattr(self, key)).format(**{_PLACEHOLDER: function})

        given = set(self.given)
        if given == {"version"}:
            return {"version": fill("version")}
        if given == {"zip_file"}:
            return {"zip_file": fill("zip_file")}
        if given == {"zip_dir"}:
            return {"zip_file": f"{fill('zip_dir').rstrip('/')}/{function}.zip"}
        if given == {"s3_bucket", "s3_key"}:
            return {"s3_bucket": fill("s3_bucket"), "s3_key": fill("s3_key")}
        if given == {"s3_bucket", "s3_prefix"}:
            return {"s3_bucket": fill("s3_bucket"), "s3_key": f"{fill('s3_prefix')}{function}.zip"}
        if given == {"image_uri"}:
            return {"image_uri": fill("image_uri")}
        if given == {"image_repository", "image_tag"}:
            return {"image_uri": f"{fill('image_repository')}:{fill('image_tag')}"}
        return {}

    def apply(self, functions: Sequence[FunctionRelease]) -> tuple[FunctionRelease, ...]:
        """Every function with its explicit source: its own if it names one, else this release's."""
        return tuple(f if f.has_own_source else replace(f, **self.source_for(f.name)) for f in functions)

    def to_dict(self) -> dict[str, Any]:
        """Only the keys given, as a person would write them."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _template_problems(where: str, value: str) -> list[str]:
    """``{function}`` is the only placeholder; anything else in braces is a mistake worth naming."""
    try:
        fields = [(name, conv, spec) for _, name, spec, conv in Formatter().parse(value) if name is not None]
    except ValueError as err:
        return [f"{where}: {value!r} is not a valid template ({err}); write {{function}} for the function's name"]
    bad = [name for name, conv, spec in fields if name != _PLACEHOLDER or conv or spec]
    if bad:
        return [f"{where}: unknown placeholder(s) {bad} in {value!r}; only {{function}} is replaced"]
    return []


@dataclass(frozen=True)
class Step:
    """One traffic step: the candidate's share in percent and how long to watch it."""

    weight: int
    soak_seconds: int = 0


DEFAULT_STEPS = (Step(10, 300), Step(50, 600), Step(100, 0))


@dataclass(frozen=True)
class RegionSpec:
    """One region of a multi-region service: its own record (and state record), zone and alarms.

    The functions, aliases, steps and thresholds are the service's; the region's Lambda and
    CloudWatch are reached in ``region_name``.
    """

    region_name: str
    record_name: str
    hosted_zone: str | None = None  # the service's zone when not given
    alarms: tuple[str, ...] | None = None  # the service's alarm names when not given


@dataclass(frozen=True)
class HealthSpec:
    """Health checks on the candidate before it takes traffic (story AC 5)."""

    path: str = "/health"
    consecutive_successes: int = 3
    deadline_seconds: int = 120
    probe_interval_seconds: float = 2.0
    route53_check: bool = True
    port: int = 443
    check_type: str = "HTTPS"
    request_interval: int = 30
    failure_threshold: int = 3


@dataclass(frozen=True)
class MigrationSpec:
    """Database migrations run before any traffic moves (story AC 9).

    A ``command`` gets ``DATABASE_URL``, ``PGOPTIONS`` and a short allow-list of the worker's
    variables, plus ``env`` (name → value) and the worker variables named in ``pass_env``; never the
    worker's AWS credentials or Airflow's secrets (``bluegreen_provider.command_env``).
    """

    conn_id: str
    folder: str | None = None
    command: str | None = None
    lock_timeout_seconds: float = 60
    statement_timeout_seconds: float = 300
    deadline_seconds: float = 600
    env: Mapping[str, str] | None = None
    pass_env: Sequence[str] | None = None


def _migration_problems(m: MigrationSpec) -> list[str]:
    """The migration stage's settings, checked here so the stage cannot fail on them after the deploy."""
    p: list[str] = []
    if not _is_text(m.conn_id, 250):
        p.append(f"migrations.conn_id must be an Airflow connection id, got {_show(m.conn_id)}")
    if bool(m.folder) == bool(m.command):
        p.append("migrations: give exactly one of folder or command")
    if m.folder is not None:
        p.extend(_source_problem("migrations.folder", m.folder))
    if m.command is not None and not isinstance(m.command, str):
        p.append(f"migrations.command must be a shell command, got {_show(m.command)}")
    if (m.env or m.pass_env) and not m.command:
        p.append("migrations: env and pass_env are for a command; SQL files run in the runner")
    p += [f"migrations.{problem}" for problem in command_env_problems(m.env, m.pass_env)]
    for name in ("lock_timeout_seconds", "statement_timeout_seconds", "deadline_seconds"):
        p += _seconds_problem(f"migrations.{name}", getattr(m, name))
    return p


@dataclass(frozen=True)
class SnsTarget:
    """An SNS topic (or endpoint) the amazon provider's ``SnsNotifier`` publishes to."""

    target_arn: str
    aws_conn_id: str | None = "aws_default"
    region_name: str | None = None


@dataclass(frozen=True)
class SlackTarget:
    """A Slack incoming webhook (its URL in the connection) the Slack provider's notifier posts to."""

    slack_webhook_conn_id: str = "slack_default"


@dataclass(frozen=True)
class NotificationSpec:
    """Who hears about a deployment, and of which events (sent by :mod:`bluegreen_provider.notifications`).

    ``overdue_after_seconds`` is the Deadline Alert: measured from when the run was queued, it fires
    only while the deployment has neither promoted nor rolled back.
    """

    sns: SnsTarget | None = None
    slack: SlackTarget | None = None
    events: tuple[str, ...] = NOTIFICATION_EVENTS
    overdue_after_seconds: float = DEFAULT_OVERDUE_SECONDS

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(name for name in ("sns", "slack") if getattr(self, name) is not None)


def _provider_installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def _notification_problems(n: NotificationSpec) -> list[str]:
    """The notification settings, checked when the DAG file is parsed, so a typo never waits for a rollback."""
    p: list[str] = []
    if not n.targets:
        p.append("notifications: give sns, slack or both")
    if n.sns is not None:
        if not (isinstance(n.sns.target_arn, str) and _SNS_ARN.fullmatch(n.sns.target_arn)):
            p.append(
                "notifications.sns.target_arn must be an SNS topic or endpoint ARN "
                f"(arn:aws:sns:<region>:<account>:<name>), got {_show(n.sns.target_arn)}"
            )
        if n.sns.aws_conn_id is not None and not _is_text(n.sns.aws_conn_id, 250):
            p.append(f"notifications.sns.aws_conn_id must be an Airflow connection id, got {_show(n.sns.aws_conn_id)}")
        if n.sns.region_name is not None and not (
            isinstance(n.sns.region_name, str) and _REGION.fullmatch(n.sns.region_name)
        ):
            p.append(f"notifications.sns.region_name must be an AWS region, got {_show(n.sns.region_name)}")
    if n.slack is not None:
        if not _is_text(n.slack.slack_webhook_conn_id, 250):
            p.append(
                "notifications.slack.slack_webhook_conn_id must be an Airflow connection id, "
                f"got {_show(n.slack.slack_webhook_conn_id)}"
            )
        if not _provider_installed("apache-airflow-providers-slack"):
            p.append("notifications.slack needs the Slack provider: pip install 'airflow-provider-bluegreen[slack]'")
    if isinstance(n.events, str) or not isinstance(n.events, Sequence) or not n.events:
        p.append(
            f"notifications.events must be a non-empty list of events {list(NOTIFICATION_EVENTS)}, got "
            f"{_show(n.events)}"
        )
    else:
        for event in n.events:
            if event in NOTIFICATION_EVENTS:
                continue
            close = difflib.get_close_matches(str(event), NOTIFICATION_EVENTS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; events are {list(NOTIFICATION_EVENTS)}"
            p.append(f"notifications.events: unknown event {_show(event)}{hint}")
    p += _seconds_problem("notifications.overdue_after_seconds", n.overdue_after_seconds)
    return p


def _assigned_user_problems(users: Any) -> list[str]:
    """``assigned_users``: the people who may answer the approval, as Airflow's HITL takes them."""
    if isinstance(users, str | bytes | Mapping) or not isinstance(users, Sequence):
        return [f'assigned_users must be a list of {{"id": ..., "name": ...}}, got {_show(users)}']
    p: list[str] = []
    ids: list[str] = []
    for i, user in enumerate(users):
        where = f"assigned_users[{i}]"
        if not isinstance(user, Mapping):
            p.append(f'{where} must be {{"id": ..., "name": ...}}, got {_show(user)}')
            continue
        extra = sorted(set(user) - {"id", "name"}, key=str)
        if extra:
            p.append(f"{where}: unknown keys {extra}; known keys are ['id', 'name']")
        if not _is_text(user.get("id"), 256):
            p.append(f"{where}.id must be the user's Airflow id (1..256 characters), got {_show(user.get('id'))}")
        else:
            ids.append(user["id"])
        if user.get("name") is not None and not _is_text(user["name"], 256):
            p.append(f"{where}.name must be 1..256 characters without control characters, got {_show(user['name'])}")
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        p.append(f"assigned_users: duplicate ids {duplicates}")
    return p


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything a deployment needs.

    The defaults are the story's: 10 % for 5 min, 50 % for 10 min, roll back above 5 %, keep 24 h.
    """

    service: str
    hosted_zone: str
    record_name: str
    functions: tuple[FunctionRelease, ...]
    slots: dict[str, Slot]
    record_type: str = "A"
    steps: tuple[Step, ...] = DEFAULT_STEPS
    error_rate_threshold_pct: float = 5.0
    min_requests: int = 20
    poll_interval_seconds: float = 30.0
    metrics_source: str = "lambda"
    # How traffic moves: "route53" (the record's weighted sets) or "lambda_alias" (one live alias per
    # function, weighted per invocation; see bluegreen_provider/routers).
    router: str = "route53"
    # The alias every request invokes under the lambda_alias router; its routing carries the split.
    live_alias: str = "production"
    metrics_period_seconds: int = 60
    # CloudWatch delivers Lambda datapoints 1-3 minutes late: a verdict waits period + lag.
    metrics_lag_seconds: int = 120
    # The candidate fails when its error rate is significantly above margin x live's (exact test, alpha).
    comparison_margin: float = 1.5
    comparison_alpha: float = 0.05
    alarms: tuple[str, ...] = ()
    no_data_policy: str = "fail"
    approval_timeout_seconds: int = 24 * 3600
    approval_timeout_policy: str = "hold"
    # "auto" promotes without a person when every soak was clean and the candidate no worse than live.
    approval_mode: str = "required"
    # Who may answer the approval ({"id", "name"} per person, as Airflow's HITL takes them); empty: anyone.
    assigned_users: tuple[Mapping[str, str], ...] = ()
    retention_seconds: int = 24 * 3600
    # While the previous release is retained: roll back to it on a breach, only report it, or do not watch.
    post_promotion_policy: str = "rollback"
    keep_versions: int = 3
    prewarm_invocations: int = 0
    insync_timeout_seconds: int = 300
    health: HealthSpec = field(default_factory=HealthSpec)
    migrations: MigrationSpec | None = None
    # One release for every function that names no code itself; ``functions`` hold the result.
    release: Release | None = None
    notifications: NotificationSpec | None = None
    # Where this spec's Lambda and CloudWatch live; None: the connection's region.
    region_name: str | None = None
    # Several regions in one release (each its own record); empty: the one region above.
    regions: tuple[RegionSpec, ...] = ()
    region_rollout: str = "lockstep"

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DeploymentSpec:
        """Build and validate a spec from JSON-like data (DAG params, a config file, XCom)."""
        problems: list[str] = []
        if not isinstance(raw, Mapping):
            raise SpecError([f"spec must be a mapping, got {type(raw).__name__}"])
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known, key=str)
        if unknown:
            problems.append(f"unknown keys {unknown}; known keys are {sorted(known)}")

        def build(kind: type, data: Any, where: str) -> Any:
            if not isinstance(data, Mapping):
                problems.append(f"{where} must be a mapping, got {data!r}")
                return None
            fields = set(kind.__dataclass_fields__)
            extra = sorted(set(data) - fields, key=str)
            if extra:
                problems.append(f"{where}: unknown keys {extra}; known keys are {sorted(fields)}")
            required = [
                f.name
                for f in kind.__dataclass_fields__.values()
                if f.default is MISSING and f.default_factory is MISSING and f.name not in data
            ]
            if required:
                problems.append(f"{where}: {', '.join(required)} {'is' if len(required) == 1 else 'are'} required")
                return None
            try:
                return kind(**{k: v for k, v in data.items() if k in fields})
            except TypeError as err:
                problems.append(f"{where}: {err}")
                return None

        slots_raw = raw.get("slots") or {
            name: {"set_identifier": name, "alias": f"production-{name}"} for name in SLOT_NAMES
        }
        slots: dict[str, Slot] = {}
        if not isinstance(slots_raw, Mapping) or set(slots_raw) != set(SLOT_NAMES):
            got = sorted(slots_raw, key=str) if isinstance(slots_raw, Mapping) else _show(slots_raw)
            problems.append(f"slots must have exactly the keys {list(SLOT_NAMES)}, got {got}")
        else:
            for name in SLOT_NAMES:
                if not isinstance(slots_raw[name], Mapping):
                    problems.append(f"slots.{name} must be a mapping, got {_show(slots_raw[name])}")
                    continue
                slot = build(Slot, {"name": name, **slots_raw[name]}, f"slots.{name}")
                if slot:
                    slots[name] = slot

        def listed(key: str, default: Sequence[Any]) -> Sequence[Any]:
            value = default if raw.get(key) is None else raw[key]
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
                problems.append(f"{key} must be a list of {key}, got {_show(value)}")
                return ()
            return value

        built_functions = [
            build(FunctionRelease, item, f"functions[{i}]") for i, item in enumerate(listed("functions", ()))
        ]
        default_steps = [asdict(step) for step in DEFAULT_STEPS]
        built_steps = [build(Step, item, f"steps[{i}]") for i, item in enumerate(listed("steps", default_steps))]
        functions = tuple(f for f in built_functions if f is not None)
        steps = tuple(s for s in built_steps if s is not None)
        health = build(HealthSpec, raw.get("health") or {}, "health") or HealthSpec()
        migrations = build(MigrationSpec, raw["migrations"], "migrations") if raw.get("migrations") else None
        release = build(Release, raw["release"], "release") if raw.get("release") is not None else None
        notifications = None
        if raw.get("notifications") is not None:
            notifications = build(NotificationSpec, raw["notifications"], "notifications")
        if notifications is not None:
            targets = {
                key: build(kind, getattr(notifications, key), f"notifications.{key}")
                for key, kind in (("sns", SnsTarget), ("slack", SlackTarget))
                if getattr(notifications, key) is not None
            }
            events = notifications.events
            notifications = replace(
                notifications, **targets, events=tuple(events) if isinstance(events, list | tuple) else events
            )
        if release is not None and not release.problems():  # validate() lists the release's problems
            functions = release.apply(functions)
        built_regions = [build(RegionSpec, item, f"regions[{i}]") for i, item in enumerate(listed("regions", ()))]
        regions = tuple(
            replace(r, alarms=tuple(r.alarms)) if isinstance(r.alarms, list) else r for r in built_regions if r
        )

        scalars = {
            k: raw[k]
            for k in known
            - {"slots", "functions", "steps", "health", "migrations", "release", "notifications", "regions"}
            if k in raw and raw[k] is not None
        }
        for listed_key in ("alarms", "assigned_users"):
            if isinstance(scalars.get(listed_key), list | tuple):
                scalars[listed_key] = tuple(scalars[listed_key])  # anything else is named by validate()
        for required in ("service", "hosted_zone", "record_name"):
            if not raw.get(required):
                problems.append(f"{required} is required")
        if problems:
            raise SpecError(problems)
        spec = cls(
            functions=functions,
            slots=slots,
            steps=steps,
            health=health,
            migrations=migrations,
            release=release,
            notifications=notifications,
            regions=regions,
            **scalars,
        )
        spec.validate()
        return spec

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["slots"] = {name: {k: v for k, v in slot.items() if k != "name"} for name, slot in data["slots"].items()}
        data["release"] = self.release.to_dict() if self.release is not None else None
        data["assigned_users"] = [dict(user) for user in self.assigned_users]
        return data

    def release_inputs(self) -> dict[str, Any]:
        """``functions`` and ``release`` as a person triggers them: a function that takes the release is
        only its name, so the trigger form shows names, not a source per function full of nulls."""
        functions = []
        for f in self.functions:
            own = {k: v for k, v in asdict(f).items() if v is not None and k != "name"}
            taken = self.release is not None and own == self.release.source_for(f.name)
            functions.append({"name": f.name, **({} if taken else own)})
        return {"functions": functions, "release": self.release.to_dict() if self.release is not None else None}

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise SpecError listing every problem; a spec that passes can be deployed."""
        p: list[str] = []
        if not self.functions:
            p.append("functions: at least one function is required")
        names = [f.name for f in self.functions if isinstance(f.name, str)]
        if len(set(names)) != len(names):
            p.append(f"functions: duplicate names in {names}")
        release_problems = self.release.problems() if self.release is not None else []
        for f in self.functions:
            if not isinstance(f.name, str) or not _FUNCTION_NAME.fullmatch(f.name):
                p.append(f"functions: invalid Lambda function name {_show(f.name)}")
                continue
            for key in ("zip_file", "s3_bucket", "s3_key", "image_uri", "version"):
                if getattr(f, key) is not None:
                    p.extend(_source_problem(f"functions.{f.name}.{key}", getattr(f, key), number_ok=key == "version"))
            sources = [k for k in ("zip_file", "s3_key", "image_uri", "version") if getattr(f, k)]
            if not sources and release_problems:
                continue  # it takes the release, whose problems are listed below
            if len(sources) != 1:
                p.append(
                    f"functions.{f.name}: give exactly one of zip_file, s3_bucket+s3_key, image_uri, "
                    f"version (got {sources or 'none'})"
                    + ("" if sources else "; or give a release with a source for every function")
                )
            if bool(f.s3_bucket) != bool(f.s3_key):
                p.append(f"functions.{f.name}: s3_bucket and s3_key go together")
        p.extend(release_problems)
        aliases = [s.alias for s in self.slots.values()]
        sets = [s.set_identifier for s in self.slots.values()]
        if len(aliases) != 2 or aliases[0] == aliases[1]:
            p.append(f"slots: blue and green need different aliases, got [{', '.join(map(_show, aliases[:1]))}]")
        if len(sets) != 2 or sets[0] == sets[1]:
            p.append(f"slots: blue and green need different set identifiers, got [{', '.join(map(_show, sets[:1]))}]")
        for s in self.slots.values():
            p.extend(self._slot_problems(s))
        p.extend(self._name_problems())
        p.extend(self._validate_steps())
        p += _number_problem(
            "error_rate_threshold_pct", self.error_rate_threshold_pct, "in (0, 100]", lambda v: 0 < v <= 100
        )
        for name in ("min_requests", "keep_versions"):
            p += _number_problem(name, getattr(self, name), "a non-negative integer", lambda v: v >= 0, integer=True)
        p += _number_problem(
            "prewarm_invocations",
            self.prewarm_invocations,
            f"a non-negative integer (at most {MAX_PREWARM_INVOCATIONS})",
            lambda v: 0 <= v <= MAX_PREWARM_INVOCATIONS,
            integer=True,
        )
        for name in ("poll_interval_seconds", "insync_timeout_seconds"):
            p += _seconds_problem(name, getattr(self, name))
        p += _number_problem(
            "metrics_period_seconds",
            self.metrics_period_seconds,
            "a positive whole number of seconds (at most 366 days)",
            lambda v: 0 < v <= MAX_SECONDS,
            integer=True,
        )
        for name in ("approval_timeout_seconds", "retention_seconds"):
            p += _seconds_problem(name, getattr(self, name), zero_ok=True)
        if self.metrics_source not in ("lambda", "apigateway"):
            p.append(f"metrics_source must be 'lambda' or 'apigateway', got {self.metrics_source!r}")
        p += self._router_problems()
        if self.metrics_source == "apigateway":
            missing = [s.name for s in self.slots.values() if not s.api_name]
            if missing:
                p.append(f"metrics_source 'apigateway' needs slots.<slot>.api_name; missing for {missing}")
        period = self.metrics_period_seconds
        whole = isinstance(period, int) and not isinstance(period, bool) and period > 0
        if whole and period not in (1, 5, 10, 30) and period % 60:
            p.append(f"metrics_period_seconds must be 1, 5, 10, 30 or a multiple of 60 (CloudWatch), got {period}")
        p += _seconds_problem("metrics_lag_seconds", self.metrics_lag_seconds, zero_ok=True)
        p += _number_problem(
            "comparison_margin", self.comparison_margin, "a number >= 1 (1: no worse than live)", lambda v: v >= 1
        )
        p += _number_problem("comparison_alpha", self.comparison_alpha, "in (0, 1)", lambda v: 0 < v < 1)
        if self.post_promotion_policy not in POST_PROMOTION_POLICIES:
            p.append(
                f"post_promotion_policy must be one of {list(POST_PROMOTION_POLICIES)}, "
                f"got {self.post_promotion_policy!r}"
            )
        if self.no_data_policy not in ("fail", "pass"):
            p.append(f"no_data_policy must be 'fail' or 'pass', got {self.no_data_policy!r}")
        if self.approval_timeout_policy not in ("hold", "rollback"):
            p.append(f"approval_timeout_policy must be 'hold' or 'rollback', got {self.approval_timeout_policy!r}")
        if self.approval_mode not in APPROVAL_MODES:
            p.append(f"approval_mode must be one of {list(APPROVAL_MODES)}, got {self.approval_mode!r}")
        if self.record_type not in ("A", "AAAA", "CNAME"):
            p.append(f"record_type must be A, AAAA or CNAME, got {self.record_type!r}")
        p.extend(self._health_problems())
        if self.migrations:
            p.extend(_migration_problems(self.migrations))
        if self.notifications is not None:
            p.extend(_notification_problems(self.notifications))
        p.extend(_assigned_user_problems(self.assigned_users))
        p.extend(self._region_problems())
        if p:
            raise SpecError(p)

    def _region_problems(self) -> list[str]:
        p: list[str] = []
        if self.region_name is not None and not (
            isinstance(self.region_name, str) and _REGION.fullmatch(self.region_name)
        ):
            p.append(f"region_name must be an AWS region, got {_show(self.region_name)}")
        if self.region_rollout not in REGION_ROLLOUTS:
            p.append(f"region_rollout must be one of {list(REGION_ROLLOUTS)}, got {_show(self.region_rollout)}")
        if self.region_rollout == "waves" and len(self.regions) < 2:
            p.append("region_rollout 'waves' needs at least two regions")
        if not self.regions:
            return p
        if self.region_name is not None:
            p.append("give region_name per region under regions, not beside them")
        names = [r.region_name for r in self.regions]
        records = [r.record_name.rstrip(".").lower() for r in self.regions if isinstance(r.record_name, str)]
        for r in self.regions:
            if not isinstance(r.region_name, str) or not _REGION.fullmatch(r.region_name):
                p.append(f"regions: region_name must be an AWS region, got {_show(r.region_name)}")
            if r.alarms is not None and (
                not isinstance(r.alarms, tuple) or not all(_is_text(a, 255) for a in r.alarms)
            ):
                p.append(f"regions.{_show(r.region_name)}.alarms must be a list of alarm names, got {_show(r.alarms)}")
        if len(set(names)) != len(names):
            p.append(f"regions: each region once, got {names}")
        if len(set(records)) != len(records):
            p.append(f"regions: each region needs a record of its own (its state record lives there), got {records}")
        if not p:
            for region in self.region_specs():
                try:
                    region.validate()
                except SpecError as err:
                    p.extend(f"regions.{region.region_name}: {problem}" for problem in err.problems)
        return p

    def region_specs(self) -> tuple[DeploymentSpec, ...]:
        """One single-region spec per region (this spec itself when it names no regions)."""
        if not self.regions:
            return (self,)
        return tuple(
            replace(
                self,
                regions=(),
                region_rollout="lockstep",
                region_name=r.region_name,
                record_name=r.record_name,
                hosted_zone=r.hosted_zone or self.hosted_zone,
                alarms=self.alarms if r.alarms is None else r.alarms,
            )
            for r in self.regions
        )

    def _name_problems(self) -> list[str]:
        """The service, zone and record names: plain names, and the record inside its zone."""
        p: list[str] = []
        if not isinstance(self.service, str) or not _SERVICE_NAME.fullmatch(self.service):
            p.append(
                "service must be a name of letters, digits, '.', '_' or '-' (at most 64 characters), "
                f"got {_show(self.service)}"
            )
        zone, record = self.hosted_zone, self.record_name
        zone_is_id = isinstance(zone, str) and bool(_ZONE_ID.fullmatch(zone))
        zone_ok = zone_is_id or (isinstance(zone, str) and _is_dns_name(zone))
        record_ok = isinstance(record, str) and _is_dns_name(record)
        if not zone_ok:
            p.append(
                "hosted_zone must be a DNS name or a hosted zone id (e.g. lego-mocs.com or Z0123456789ABC), "
                f"got {_show(zone)}"
            )
        if not record_ok:
            p.append(
                "record_name must be a DNS name (labels of letters, digits, '-' or '_', at most 63 characters each), "
                f"got {_show(record)}"
            )
        if zone_ok and record_ok and not zone_is_id:
            bare_zone, bare_record = zone.removesuffix(".").lower(), record.removesuffix(".").lower()
            if bare_record != bare_zone and not bare_record.endswith(f".{bare_zone}"):
                p.append(f"record_name {_show(record)} is not in hosted_zone {_show(zone)}")
        if isinstance(self.alarms, str) or not isinstance(self.alarms, Sequence):
            p.append(f"alarms must be a list of alarm names, got {_show(self.alarms)}")
        else:
            for alarm in self.alarms:
                if not _is_text(alarm, 255):
                    p.append(
                        f"alarms: alarm names must be 1..255 characters without control characters, got {_show(alarm)}"
                    )
        return p

    def _router_problems(self) -> list[str]:
        if self.router not in ROUTERS:
            return [f"router must be one of {', '.join(repr(r) for r in ROUTERS)}, got {_show(self.router)}"]
        if self.router != "lambda_alias":
            return []
        p = []
        if not isinstance(self.live_alias, str) or not _ALIAS_NAME.fullmatch(self.live_alias):
            p.append(f"live_alias: invalid Lambda alias name {_show(self.live_alias)}")
        elif self.live_alias in [s.alias for s in self.slots.values()]:
            p.append(f"live_alias {self.live_alias!r} must differ from the slots' aliases (they pin each release)")
        if self.metrics_source != "lambda":
            p.append(
                f"router 'lambda_alias' judges each version on Lambda's ExecutedVersion metrics; metrics_source "
                f"must be 'lambda', got {_show(self.metrics_source)}"
            )
        return p

    @staticmethod
    def _slot_problems(s: Slot) -> list[str]:
        p: list[str] = []
        if not isinstance(s.alias, str) or not _ALIAS_NAME.fullmatch(s.alias):
            p.append(f"slots.{s.name}: invalid Lambda alias name {_show(s.alias)}")
        if not s.set_identifier:
            p.append(f"slots.{s.name}: set_identifier is required")
        elif not _is_text(s.set_identifier, 128):
            p.append(
                f"slots.{s.name}: set_identifier must be 1..128 characters without control characters (Route53), "
                f"got {_show(s.set_identifier)}"
            )
        if s.health_url is not None and not (isinstance(s.health_url, str) and _HTTP_URL.fullmatch(s.health_url)):
            p.append(f"slots.{s.name}.health_url must be an http:// or https:// URL, got {_show(s.health_url)}")
        if s.health_check_fqdn is not None and not (
            isinstance(s.health_check_fqdn, str) and _is_dns_name(s.health_check_fqdn)
        ):
            p.append(f"slots.{s.name}.health_check_fqdn must be a DNS name, got {_show(s.health_check_fqdn)}")
        if s.api_name is not None and not _is_text(s.api_name, 255):
            p.append(
                f"slots.{s.name}.api_name must be 1..255 characters without control characters, got {_show(s.api_name)}"
            )
        return p

    def _health_problems(self) -> list[str]:
        """The health stage's settings, checked here so a bad one cannot fail the stage after the deploy."""
        h = self.health
        p = _number_problem(
            "health.consecutive_successes", h.consecutive_successes, "an integer >= 1", lambda v: v >= 1, integer=True
        )
        p += _seconds_problem("health.deadline_seconds", h.deadline_seconds)
        p += _seconds_problem("health.probe_interval_seconds", h.probe_interval_seconds)
        p += _number_problem("health.port", h.port, "an integer in 1..65535", lambda v: 1 <= v <= 65535, integer=True)
        p += _number_problem(
            "health.failure_threshold",
            h.failure_threshold,
            "an integer in 1..10 (Route53)",
            lambda v: 1 <= v <= 10,
            integer=True,
        )
        if isinstance(h.request_interval, bool) or h.request_interval not in (10, 30):
            p.append(f"health.request_interval must be 10 or 30 (Route53), got {_show(h.request_interval)}")
        if h.check_type not in _HEALTH_CHECK_TYPES:
            p.append(f"health.check_type must be one of {list(_HEALTH_CHECK_TYPES)}, got {_show(h.check_type)}")
        if not isinstance(h.route53_check, bool):
            p.append(f"health.route53_check must be true or false, got {_show(h.route53_check)}")
        if not _is_text(h.path, 255) or not h.path.startswith("/") or " " in h.path:
            p.append(f"health.path must start with '/', got {_show(h.path)}")
        return p

    def _validate_steps(self) -> list[str]:
        p: list[str] = []
        weights = [s.weight for s in self.steps]
        if not weights:
            return ["steps: at least one step is required"]
        for s in self.steps:
            if not isinstance(s.weight, int) or isinstance(s.weight, bool) or not 0 < s.weight <= 100:
                p.append(f"steps: weight must be an integer percent in 1..100, got {s.weight!r}")
            p += _seconds_problem("steps: soak_seconds", s.soak_seconds, zero_ok=True)
        if p:
            return p
        if weights != sorted(set(weights)):
            p.append(f"steps: weights must strictly increase, got {weights}")
        if weights[-1] != 100:
            p.append(f"steps: the last step must be 100 (full promotion), got {weights}")
        return p

    # -- derived views --------------------------------------------------------------------------
    @property
    def canary_steps(self) -> tuple[Step, ...]:
        """The steps before full promotion; each is shifted to and soaked."""
        return tuple(s for s in self.steps if s.weight < 100)

    @property
    def approvers(self) -> list[dict[str, str]]:
        """``assigned_users`` as Airflow's HITL takes them (a name defaults to the id)."""
        return [{"id": u["id"], "name": u.get("name") or u["id"]} for u in self.assigned_users]

    @property
    def lock_tag_key(self) -> str:
        return f"bluegreen:lock:{self.record_name.rstrip('.').lower()}"

    @property
    def retain_tag_key(self) -> str:
        return f"bluegreen:retained:{self.record_name.rstrip('.').lower()}"

    def other_slot(self, name: str) -> str:
        return SLOT_NAMES[1 - SLOT_NAMES.index(name)]

    def route53_weights(self, candidate: str, candidate_pct: int) -> dict[str, int]:
        """Route53 weights (by set identifier) for a candidate share in percent."""
        live = self.other_slot(candidate)
        return {
            self.slots[candidate].set_identifier: candidate_pct,
            self.slots[live].set_identifier: 100 - candidate_pct,
        }


def load_spec(spec: Mapping[str, Any] | str) -> DeploymentSpec:
    """Build a spec from a mapping or its JSON text; raises SpecError listing every problem."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as err:
            raise SpecError([f"spec is not valid JSON: {err}"]) from err
    return DeploymentSpec.from_dict(spec)
