"""The deployment spec: what one service's blue/green release looks like, validated in one place.

Every task of the deployment DAG works from the same spec, so a bad input is refused once, up front,
with every problem listed, before anything in AWS or the database changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from string import Formatter
from typing import Any

SLOT_NAMES = ("blue", "green")
MAX_ROUTE53_WEIGHT = 255
POST_PROMOTION_POLICIES = ("rollback", "notify", "off")
APPROVAL_MODES = ("required", "auto")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}$")


class SpecError(ValueError):
    """A deployment spec that cannot be run; the message lists every problem found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid deployment spec:\n  - " + "\n  - ".join(self.problems))


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
            p.append(f"release.label must be text, got {self.label!r}")
        for key in self.given:
            value = getattr(self, key)
            if key == "version" and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, str):
                p.append(f"release.{key} must be a string, got {value!r}")
                continue
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
    """Database migrations run before any traffic moves (story AC 9)."""

    conn_id: str
    folder: str | None = None
    command: str | None = None
    lock_timeout_seconds: float = 60
    statement_timeout_seconds: float = 300
    deadline_seconds: float = 600


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

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DeploymentSpec:
        """Build and validate a spec from JSON-like data (DAG params, a config file, XCom)."""
        problems: list[str] = []
        if not isinstance(raw, Mapping):
            raise SpecError([f"spec must be a mapping, got {type(raw).__name__}"])
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            problems.append(f"unknown keys {unknown}; known keys are {sorted(known)}")

        def build(kind: type, data: Any, where: str) -> Any:
            if not isinstance(data, Mapping):
                problems.append(f"{where} must be a mapping, got {data!r}")
                return None
            fields = set(kind.__dataclass_fields__)
            extra = sorted(set(data) - fields)
            if extra:
                problems.append(f"{where}: unknown keys {extra}; known keys are {sorted(fields)}")
            try:
                return kind(**{k: v for k, v in data.items() if k in fields})
            except TypeError as err:
                problems.append(f"{where}: {err}")
                return None

        slots_raw = raw.get("slots") or {
            name: {"set_identifier": name, "alias": f"production-{name}"} for name in SLOT_NAMES
        }
        slots: dict[str, Slot] = {}
        if not isinstance(slots_raw, Mapping) or sorted(slots_raw) != sorted(SLOT_NAMES):
            problems.append(f"slots must have exactly the keys {list(SLOT_NAMES)}, got {slots_raw!r}")
        else:
            for name in SLOT_NAMES:
                slot = build(Slot, {"name": name, **slots_raw[name]}, f"slots.{name}")
                if slot:
                    slots[name] = slot

        built_functions = [
            build(FunctionRelease, item, f"functions[{i}]") for i, item in enumerate(raw.get("functions") or ())
        ]
        default_steps = [asdict(step) for step in DEFAULT_STEPS]
        built_steps = [build(Step, item, f"steps[{i}]") for i, item in enumerate(raw.get("steps") or default_steps)]
        functions = tuple(f for f in built_functions if f is not None)
        steps = tuple(s for s in built_steps if s is not None)
        health = build(HealthSpec, raw.get("health") or {}, "health") or HealthSpec()
        migrations = build(MigrationSpec, raw["migrations"], "migrations") if raw.get("migrations") else None
        release = build(Release, raw["release"], "release") if raw.get("release") is not None else None
        if release is not None and not release.problems():  # validate() lists the release's problems
            functions = release.apply(functions)

        scalars = {
            k: raw[k]
            for k in known - {"slots", "functions", "steps", "health", "migrations", "release"}
            if k in raw and raw[k] is not None
        }
        if "alarms" in scalars:
            scalars["alarms"] = tuple(scalars["alarms"])
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
            **scalars,
        )
        spec.validate()
        return spec

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["slots"] = {name: {k: v for k, v in slot.items() if k != "name"} for name, slot in data["slots"].items()}
        data["release"] = self.release.to_dict() if self.release is not None else None
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
        names = [f.name for f in self.functions]
        if len(set(names)) != len(names):
            p.append(f"functions: duplicate names in {names}")
        release_problems = self.release.problems() if self.release is not None else []
        for f in self.functions:
            if not _FUNCTION_NAME.match(f.name or ""):
                p.append(f"functions: invalid Lambda function name {f.name!r}")
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
        aliases = {s.alias for s in self.slots.values()}
        sets = {s.set_identifier for s in self.slots.values()}
        if len(aliases) != 2:
            p.append(f"slots: blue and green need different aliases, got {sorted(aliases)}")
        if len(sets) != 2:
            p.append(f"slots: blue and green need different set identifiers, got {sorted(sets)}")
        for s in self.slots.values():
            if not _ALIAS_NAME.match(s.alias or ""):
                p.append(f"slots.{s.name}: invalid Lambda alias name {s.alias!r}")
            if not s.set_identifier:
                p.append(f"slots.{s.name}: set_identifier is required")
        p.extend(self._validate_steps())
        if not 0 < float(self.error_rate_threshold_pct) <= 100:
            p.append(f"error_rate_threshold_pct must be in (0, 100], got {self.error_rate_threshold_pct}")
        for name in ("min_requests", "keep_versions", "prewarm_invocations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                p.append(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("poll_interval_seconds", "metrics_period_seconds", "insync_timeout_seconds"):
            if not isinstance(getattr(self, name), int | float) or getattr(self, name) <= 0:
                p.append(f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("approval_timeout_seconds", "retention_seconds"):
            if not isinstance(getattr(self, name), int | float) or getattr(self, name) < 0:
                p.append(f"{name} must be a non-negative number of seconds, got {getattr(self, name)!r}")
        if self.metrics_source not in ("lambda", "apigateway"):
            p.append(f"metrics_source must be 'lambda' or 'apigateway', got {self.metrics_source!r}")
        if self.metrics_source == "apigateway":
            missing = [s.name for s in self.slots.values() if not s.api_name]
            if missing:
                p.append(f"metrics_source 'apigateway' needs slots.<slot>.api_name; missing for {missing}")
        period = self.metrics_period_seconds
        if isinstance(period, int) and period > 0 and period not in (1, 5, 10, 30) and period % 60:
            p.append(f"metrics_period_seconds must be 1, 5, 10, 30 or a multiple of 60 (CloudWatch), got {period}")
        if not isinstance(self.metrics_lag_seconds, int | float) or self.metrics_lag_seconds < 0:
            p.append(f"metrics_lag_seconds must be a non-negative number, got {self.metrics_lag_seconds!r}")
        if not isinstance(self.comparison_margin, int | float) or self.comparison_margin < 1:
            p.append(f"comparison_margin must be a number >= 1 (1: no worse than live), got {self.comparison_margin!r}")
        if not isinstance(self.comparison_alpha, int | float) or not 0 < self.comparison_alpha < 1:
            p.append(f"comparison_alpha must be in (0, 1), got {self.comparison_alpha!r}")
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
        if self.health.consecutive_successes < 1 or self.health.deadline_seconds <= 0:
            p.append("health: consecutive_successes must be >= 1 and deadline_seconds > 0")
        if not str(self.health.path).startswith("/"):
            p.append(f"health.path must start with '/', got {self.health.path!r}")
        if self.migrations and bool(self.migrations.folder) == bool(self.migrations.command):
            p.append("migrations: give exactly one of folder or command")
        if p:
            raise SpecError(p)

    def _validate_steps(self) -> list[str]:
        p: list[str] = []
        weights = [s.weight for s in self.steps]
        if not weights:
            return ["steps: at least one step is required"]
        for s in self.steps:
            if not isinstance(s.weight, int) or isinstance(s.weight, bool) or not 0 < s.weight <= 100:
                p.append(f"steps: weight must be an integer percent in 1..100, got {s.weight!r}")
            if not isinstance(s.soak_seconds, int | float) or s.soak_seconds < 0:
                p.append(f"steps: soak_seconds must be >= 0, got {s.soak_seconds!r}")
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
