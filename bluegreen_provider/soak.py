"""Canary analysis of one traffic step: what is watched, by which rules, over which window, and the verdict.

One settings object, :class:`SoakRules`, built from the run's plan, serves every watcher: the shift
while Route53 propagates a change, the soak of a step, the last look before promotion, and the guard
while the previous release is retained. :class:`SoakWatch` evaluates the rules against the hooks;
the triggers only schedule its polls.

The rules (story AC 6 and 7, and what AWS adds):

- **Error rate**: the candidate's rate over a sliding window above ``threshold_pct`` (once
  ``min_requests`` were seen) breaks the soak, unless live is above the threshold too over the same
  window and the candidate is not significantly worse: then live is degraded too, and the candidate
  is not blamed.
- **Candidate vs live**: the candidate's rate significantly above ``margin`` x live's (the exact test
  of :mod:`bluegreen_provider.comparison`, its level split over the soak's looks) breaks the soak even
  under the threshold.
- **Alarms**: a named alarm in ALARM breaks it, except an ALARM episode that began before the
  deployment did (same episode start), which the plan recorded as excused.
- **Health**: the candidate's Route53 health check unhealthy by Route53's own rule.

Watching starts when the weight change is submitted (``watch_from``); the soak's clock starts when
Route53 reports INSYNC (``clock_start``). CloudWatch delivers datapoints late, so the verdict over the
whole step waits ``period + lag`` after the clock ends, and says which datapoint it judged last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bluegreen_provider.comparison import FAIL, Comparison, compare_error_rates

if TYPE_CHECKING:
    from bluegreen_provider.hooks.cloudwatch import AlarmState, CloudWatchMetricsHook, ErrorRate, ErrorRateQuery
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.plan import Plan

MAX_SAMPLES = 120
_SAME_EPISODE = timedelta(seconds=1)  # timestamps lose precision on their way through JSON


def hms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _dt(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ExcusedAlarm:
    """An alarm that was already in ALARM before the deployment began: excused while that episode lasts."""

    name: str
    since: str  # ISO time the ALARM episode began


def excused_alarms(firing: Sequence[Any]) -> tuple[ExcusedAlarm, ...]:
    """The plan's record of alarms firing before the deployment; entries without an episode start excuse nothing."""
    excused = []
    for alarm in firing or ():
        if isinstance(alarm, Mapping) and alarm.get("name") and alarm.get("since"):
            excused.append(ExcusedAlarm(str(alarm["name"]), str(alarm["since"])))
    return tuple(excused)


@dataclass(frozen=True)
class SoakRules:
    """How a step is judged. Built from the spec (:meth:`from_plan`); a task may override single rules."""

    threshold_pct: float = 5.0
    min_requests: int = 20
    window_seconds: int = 300
    period_seconds: int = 60
    lag_seconds: float = 120
    margin: float = 1.5
    alpha: float = 0.05
    min_errors: int = 5
    alarms: tuple[str, ...] = ()
    excused_alarms: tuple[ExcusedAlarm, ...] = ()
    poll_interval: float = 30.0
    max_consecutive_errors: int = 3
    no_data_policy: str = "fail"

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.alarms, str):
            problems.append(f"alarms must be a list of alarm names, got the string {self.alarms!r}")
        for name in ("min_requests", "min_errors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be an int >= 0, got {value!r}")
        for name in ("window_seconds", "period_seconds", "poll_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.lag_seconds, bool) or not isinstance(self.lag_seconds, int | float) or self.lag_seconds < 0:
            problems.append(f"lag_seconds must be a non-negative number, got {self.lag_seconds!r}")
        if not isinstance(self.threshold_pct, int | float) or not 0 < self.threshold_pct <= 100:
            problems.append(f"threshold_pct must be in (0, 100], got {self.threshold_pct!r}")
        if not isinstance(self.margin, int | float) or self.margin < 1:
            problems.append(f"margin must be a number >= 1, got {self.margin!r}")
        if not isinstance(self.alpha, int | float) or not 0 < self.alpha < 1:
            problems.append(f"alpha must be in (0, 1), got {self.alpha!r}")
        if (
            isinstance(self.max_consecutive_errors, bool)
            or not isinstance(self.max_consecutive_errors, int)
            or self.max_consecutive_errors < 1
        ):
            problems.append(f"max_consecutive_errors must be an int >= 1, got {self.max_consecutive_errors!r}")
        if self.no_data_policy not in ("fail", "pass"):
            problems.append(f"no_data_policy must be 'fail' or 'pass', got {self.no_data_policy!r}")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "alarms", tuple(self.alarms))

    @classmethod
    def overridable(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "excused_alarms")

    @property
    def settle_seconds(self) -> float:
        """How long after a window ends its datapoints can still arrive."""
        return self.period_seconds + self.lag_seconds

    @classmethod
    def from_plan(cls, plan: Plan, **overrides: Any) -> SoakRules:
        """The spec's rules for this run; ``None`` overrides are ignored."""
        spec = plan.spec
        rules = cls(
            threshold_pct=spec.error_rate_threshold_pct,
            min_requests=spec.min_requests,
            period_seconds=spec.metrics_period_seconds,
            lag_seconds=spec.metrics_lag_seconds,
            margin=spec.comparison_margin,
            alpha=spec.comparison_alpha,
            alarms=tuple(spec.alarms),
            excused_alarms=excused_alarms(plan.alarms_firing),
            poll_interval=spec.poll_interval_seconds,
            no_data_policy=spec.no_data_policy,
        )
        unknown = sorted(set(overrides) - set(cls.overridable()))
        if unknown:
            raise ValueError(f"unknown soak rules {unknown}; known: {list(cls.overridable())}")
        return replace(rules, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["alarms"] = list(self.alarms)
        data["excused_alarms"] = [asdict(a) for a in self.excused_alarms]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SoakRules:
        values = dict(data)
        values["alarms"] = tuple(values.get("alarms") or ())
        values["excused_alarms"] = tuple(ExcusedAlarm(**a) for a in values.get("excused_alarms") or ())
        return cls(**values)


@dataclass(frozen=True)
class WatchedSlot:
    """One slot's name and the metrics that count its requests and errors."""

    slot: str
    query: ErrorRateQuery

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "query": self.query.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatchedSlot:
        from bluegreen_provider.hooks.cloudwatch import ErrorRateQuery

        return cls(slot=data["slot"], query=ErrorRateQuery.from_dict(data["query"]))


def slot_query(plan: Plan, slot: str, versions: Mapping[str, str | None] | None = None) -> WatchedSlot:
    """The metrics of one slot of this service (Lambda aliases, or the slot's API Gateway API).

    Under the ``lambda_alias`` router every request invokes the one live alias, so a slot is the
    version its slot alias serves: ``versions`` (function -> version) selects Lambda's
    ``ExecutedVersion`` metrics of the live alias, and the canary is judged on its own requests only.
    """
    from bluegreen_provider.hooks.cloudwatch import ErrorRateQuery

    spec = plan.spec
    if spec.router == "lambda_alias":
        known = {fn: v for fn, v in (versions or {}).items() if v}
        missing = [f.name for f in spec.functions if f.name not in known]
        if missing:
            from bluegreen_provider.plan import PlanError

            raise PlanError(f"slot {slot} serves no version of {missing}: nothing to watch under router lambda_alias")
        return WatchedSlot(slot, ErrorRateQuery.lambda_versions(known, spec.live_alias))
    if spec.metrics_source == "apigateway":
        return WatchedSlot(slot, ErrorRateQuery.api_gateway(spec.slots[slot].api_name))
    return WatchedSlot(slot, ErrorRateQuery.lambda_aliases([f.name for f in spec.functions], spec.slots[slot].alias))


@dataclass(frozen=True)
class Soak:
    """One watch of a step: the slots, the rules, and its times (JSON-able for a trigger).

    ``clock_start`` None means the clock has not started: the change is still propagating.
    """

    stage_pct: int
    candidate: WatchedSlot
    baseline: WatchedSlot | None
    rules: SoakRules
    watch_from: datetime
    soak_seconds: float = 0
    clock_start: datetime | None = None
    health_check_id: str | None = None

    @property
    def soak_end(self) -> datetime | None:
        return None if self.clock_start is None else self.clock_start + timedelta(seconds=self.soak_seconds)

    @property
    def verdict_at(self) -> datetime | None:
        """When the datapoints of the whole soak have arrived and the verdict can be given."""
        end = self.soak_end
        return None if end is None else end + timedelta(seconds=self.rules.settle_seconds)

    @property
    def looks(self) -> int:
        """How many times the comparison is tested in this soak: its level is split over them."""
        span = self.soak_seconds + self.rules.settle_seconds
        return max(1, math.ceil(span / self.rules.poll_interval) + 1)

    def started(self, at: datetime) -> Soak:
        return replace(self, clock_start=at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage_pct": self.stage_pct,
            "candidate": self.candidate.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "rules": self.rules.to_dict(),
            "watch_from": self.watch_from.isoformat(),
            "soak_seconds": self.soak_seconds,
            "clock_start": _iso(self.clock_start),
            "health_check_id": self.health_check_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Soak:
        return cls(
            stage_pct=int(data["stage_pct"]),
            candidate=WatchedSlot.from_dict(data["candidate"]),
            baseline=WatchedSlot.from_dict(data["baseline"]) if data.get("baseline") else None,
            rules=SoakRules.from_dict(data["rules"]),
            watch_from=_dt(data["watch_from"]),
            soak_seconds=float(data.get("soak_seconds") or 0),
            clock_start=_dt(data.get("clock_start")),
            health_check_id=data.get("health_check_id"),
        )


@dataclass(frozen=True)
class Judgement:
    """The verdict on one window: ``ok``, ``breach`` (the candidate is to blame), ``degraded`` (live too)."""

    verdict: str
    rule: str | None
    message: str
    comparison: Comparison | None


def _slot_figures(slot: str, rate: ErrorRate | None) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {"slot": slot, "requests": rate.requests, "errors": rate.errors, "rate_pct": rate.rate_pct}


def _rate_text(slot: str, rate: ErrorRate) -> str:
    pct = "—" if rate.rate_pct is None else f"{rate.rate_pct:.1f} %"
    return f"{slot} {pct} ({_num(rate.errors)}/{_num(rate.requests)})"


def judge(
    candidate: ErrorRate,
    baseline: ErrorRate | None,
    rules: SoakRules,
    *,
    looks: int = 1,
    names: tuple[str, str] = ("candidate", "live"),
) -> Judgement:
    """Judge one window of the candidate, against the threshold and against live over the same window."""
    comparison = None
    if baseline is not None:
        comparison = compare_error_rates(
            candidate.errors,
            candidate.requests,
            baseline.errors,
            baseline.requests,
            margin=rules.margin,
            alpha=rules.alpha,
            looks=looks,
            min_requests=rules.min_requests,
            min_errors=rules.min_errors,
            candidate_name=names[0],
            baseline_name=names[1],
        )
    worse = comparison is not None and comparison.result == FAIL
    above = candidate.enough_data and candidate.rate_pct is not None and candidate.rate_pct > rules.threshold_pct
    span = f"{hms(candidate.start)}-{hms(candidate.end)}"
    if above:
        live_above = (
            baseline is not None
            and baseline.enough_data
            and baseline.rate_pct is not None
            and baseline.rate_pct > rules.threshold_pct
        )
        if live_above and not worse:
            return Judgement(
                "degraded",
                None,
                f"live is degraded too: {_rate_text(names[0], candidate)} and {_rate_text(names[1], baseline)} "
                f"are both above {rules.threshold_pct:g} % ({span}); the candidate is not worse than live",
                comparison,
            )
        return Judgement(
            "breach",
            "error_rate",
            f"error rate {candidate.rate_pct:.1f} % > {rules.threshold_pct:.1f} % on {names[0]} "
            f"({_num(candidate.errors)} errors / {_num(candidate.requests)} requests, {span})"
            + (f"; {_rate_text(names[1], baseline)}" if baseline is not None else ""),
            comparison,
        )
    if worse:
        return Judgement("breach", "relative", f"{comparison.reason} ({span})", comparison)
    return Judgement("ok", None, "", comparison)


class SoakWatch:
    """The rules of one soak, evaluated synchronously against the hooks.

    The triggers call it from a thread at every poll; tasks call it inline for a single look (a
    stage without a soak, the last look before promotion). Results are JSON-able event payloads.
    """

    def __init__(self, soak: Soak, *, cloudwatch: CloudWatchMetricsHook, route53: Route53Hook | None = None) -> None:
        self.soak = soak
        self.cloudwatch = cloudwatch
        self.route53 = route53
        self.samples: list[dict[str, Any]] = []
        self._stride = 1
        self._polls = 0
        self.max_rate_pct: float | None = None
        self.alarms_seen: set[str] = set()
        self.degraded: dict[str, Any] | None = None

    @property
    def rules(self) -> SoakRules:
        return self.soak.rules

    def start_clock(self, at: datetime) -> None:
        self.soak = self.soak.started(at)

    # -- one poll -------------------------------------------------------------------------------
    def poll(self, now: datetime) -> dict[str, Any] | None:
        """Check every rule once; return a breach event, or None while the soak is clean."""
        return self.check_rates(now) or self.check_alarms(now) or self.check_health(now)

    def rates(self, start: datetime, end: datetime) -> tuple[ErrorRate, ErrorRate | None]:
        """The candidate's and live's error rates over the same window, in one call."""
        queries = [self.soak.candidate.query] + ([self.soak.baseline.query] if self.soak.baseline else [])
        found = self.cloudwatch.error_rates(
            queries,
            start=start,
            end=end,
            period_seconds=self.rules.period_seconds,
            min_requests=self.rules.min_requests,
        )
        return found[0], (found[1] if self.soak.baseline else None)

    def _names(self) -> tuple[str, str]:
        return self.soak.candidate.slot, self.soak.baseline.slot if self.soak.baseline else "live"

    def check_rates(self, now: datetime) -> dict[str, Any] | None:
        start = max(self.soak.watch_from, now - timedelta(seconds=self.rules.window_seconds))
        if (now - start).total_seconds() < 1:
            return None  # CloudWatch needs at least one second between StartTime and EndTime
        candidate, baseline = self.rates(start, now)
        self._add_sample(now, candidate, baseline)
        if candidate.enough_data and candidate.rate_pct is not None:
            self.max_rate_pct = max(self.max_rate_pct or 0.0, candidate.rate_pct)
        found = judge(candidate, baseline, self.rules, looks=self.soak.looks, names=self._names())
        if found.verdict == "breach":
            return self._rate_breach(found, candidate, baseline, now)
        if found.verdict == "degraded":
            self.degraded = {"message": found.message, "at": now.isoformat()}
        return None

    def _rate_breach(
        self, found: Judgement, candidate: ErrorRate, baseline: ErrorRate | None, now: datetime, scope: str = ""
    ) -> dict[str, Any]:
        figures = {
            **candidate.to_dict(),
            "threshold_pct": self.rules.threshold_pct,
            "min_requests": self.rules.min_requests,
            "candidate": _slot_figures(self.soak.candidate.slot, candidate),
            "live": _slot_figures(self.soak.baseline.slot, baseline) if self.soak.baseline else None,
            "comparison": found.comparison.to_dict() if found.comparison else None,
        }
        return self._breach(found.rule or "error_rate", found.message + scope, figures, now)

    def check_alarms(self, now: datetime) -> dict[str, Any] | None:
        if not self.rules.alarms:
            return None
        firing = [
            (alarm, text)
            for alarm in self.cloudwatch.alarms_in_alarm(list(self.rules.alarms))
            if (text := self._counts(alarm))
        ]
        if not firing:
            return None
        figures = {
            "alarms": [
                {
                    "name": a.name,
                    "state": a.state,
                    "reason": a.reason,
                    "since": _iso(a.since),
                    "updated_at": _iso(a.updated_at),
                }
                for a, _ in firing
            ]
        }
        return self._breach("alarm", "; ".join(text for _, text in firing), figures, now)

    def _counts(self, alarm: AlarmState) -> str | None:
        """Why an alarm in ALARM breaks the soak, or None when its episode is the excused one."""
        self.alarms_seen.add(alarm.name)
        excused = {a.name: _dt(a.since) for a in self.rules.excused_alarms}
        if alarm.name not in excused:
            return f"alarm {alarm.name} in ALARM: {alarm.reason}"
        since = _dt(alarm.since)
        if since is not None and abs(since - excused[alarm.name]) <= _SAME_EPISODE:
            return None
        return (
            f"alarm {alarm.name} in ALARM again: a new episode since {hms(since) if since else 'an unknown time'} "
            f"(the one already firing before the deployment began at {hms(excused[alarm.name])}): {alarm.reason}"
        )

    def check_health(self, now: datetime) -> dict[str, Any] | None:
        if not self.soak.health_check_id or self.route53 is None:
            return None
        status = self.route53.health_check_status(self.soak.health_check_id)
        # No observations yet means "not known", not "unhealthy".
        if status.healthy or status.checkers == 0:
            return None
        figures = {
            "health_check_id": status.health_check_id,
            "checkers": status.checkers,
            "failing": status.failing,
            "detail": status.detail,
        }
        return self._breach(
            "health_check", f"Route53 health check {status.health_check_id} unhealthy: {status.detail}", figures, now
        )

    # -- end of soak ----------------------------------------------------------------------------
    def finish(self, now: datetime) -> dict[str, Any]:
        """The verdict over the whole step, from the change to the end of the clock: a breach,
        ``degraded`` (live too), ``clean`` or ``no_data``."""
        end = self.soak.soak_end or now
        end = max(min(end, now), self.soak.watch_from + timedelta(seconds=1))
        candidate, baseline = self.rates(self.soak.watch_from, end)
        found = judge(candidate, baseline, self.rules, looks=self.soak.looks, names=self._names())
        if found.verdict == "breach":
            return self._rate_breach(found, candidate, baseline, now, " over the whole soak")
        summary = self.summary(candidate, baseline, found, end)
        if found.verdict == "degraded":
            return {"status": "degraded", "message": found.message, "summary": summary}
        if not candidate.enough_data:
            return {
                "status": "no_data",
                "message": f"not enough data: {_num(candidate.requests)} requests < min {self.rules.min_requests} "
                f"on {self.soak.candidate.slot} between {hms(self.soak.watch_from)} and {hms(end)}",
                "summary": summary,
            }
        return {"status": "clean", "summary": summary}

    def summary(
        self, candidate: ErrorRate, baseline: ErrorRate | None, found: Judgement | None, end: datetime
    ) -> dict[str, Any]:
        start = self.soak.clock_start or self.soak.watch_from
        return {
            "stage_pct": self.soak.stage_pct,
            "requests": candidate.requests,
            "errors": candidate.errors,
            "rate_pct": candidate.rate_pct,
            "max_rate_pct": self.max_rate_pct,
            "alarms_seen": sorted(self.alarms_seen),
            "samples": list(self.samples),
            "watched_from": self.soak.watch_from.isoformat(),
            "started_at": start.isoformat(),
            "ended_at": end.isoformat(),
            "duration_s": round((end - start).total_seconds(), 1),
            "candidate": _slot_figures(self.soak.candidate.slot, candidate),
            "live": _slot_figures(self.soak.baseline.slot, baseline) if self.soak.baseline else None,
            "comparison": found.comparison.to_dict() if found and found.comparison else None,
            "judged_until": _iso(candidate.last_datapoint_at + timedelta(seconds=self.rules.period_seconds))
            if candidate.last_datapoint_at
            else None,
            "settle_seconds": self.rules.settle_seconds,
            "degraded": self.degraded,
        }

    # -- helpers --------------------------------------------------------------------------------
    def _breach(self, rule: str, message: str, figures: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "status": "breach",
            "rule": rule,
            "message": message,
            "figures": figures,
            "samples": list(self.samples),
            "detected_at": now.isoformat(),
            "started_at": (self.soak.clock_start or self.soak.watch_from).isoformat(),
            "watched_from": self.soak.watch_from.isoformat(),
            "propagating": self.soak.clock_start is None,
            "stage_pct": self.soak.stage_pct,
        }

    def _add_sample(self, now: datetime, rate: ErrorRate, baseline: ErrorRate | None) -> None:
        """Keep at most ~MAX_SAMPLES evenly spread samples, and always the latest one."""
        sample = {
            "t": now.isoformat(),
            "requests": rate.requests,
            "errors": rate.errors,
            "rate_pct": rate.rate_pct,
            "live_rate_pct": baseline.rate_pct if baseline else None,
        }
        if self._polls % self._stride and self.samples:
            self.samples[-1] = sample
        else:
            self.samples.append(sample)
        self._polls += 1
        if len(self.samples) > MAX_SAMPLES:
            self.samples = self.samples[::2]
            self._stride *= 2
