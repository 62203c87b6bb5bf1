"""How AWS-like the sandbox is: one settings object, two named presets, every number overridable.

``fast`` is the sandbox as it always was — changes INSYNC at once, resolvers re-resolve every second,
metrics visible as soon as they are counted, health checks always healthy, no API limits — for quick
tests and ``make demo``. ``aws`` stands in for what a deployment meets in a real account, where its
safety depends on it: 30 s propagation, 60 s alias TTL in client caches, 60 s CloudWatch datapoints
published two minutes late, eight health checkers, and Route53's API rate limit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SandboxProfile:
    """Every timing and size the sandbox's AWS rules use; build one with :func:`resolve_profile`."""

    name: str = "fast"
    # Route53 change propagation: PENDING this long, resolvers switch over linearly meanwhile.
    propagation_seconds: float = 0.0
    # DNS clients: this many resolvers share the traffic, each caching one weighted answer for the TTL.
    dns_clients: int = 200
    dns_ttl_seconds: float = 1.0
    # CloudWatch: None = one datapoint per flush, visible at once; else datapoints of this period,
    # published ``metrics_lag_seconds`` after the period ends.
    metrics_period_seconds: float | None = None
    metrics_lag_seconds: float = 0.0
    # Route53 health checkers: 0 = moto's single always-healthy observation.
    health_checkers: int = 0
    health_check_interval_scale: float = 1.0  # a check's RequestInterval is multiplied by this
    health_check_healthy_fraction: float = 0.18  # healthy while more than this share of checkers say so
    # Route53 API limits (per account token bucket), and the window after a change in which another
    # change to the same zone is refused with PriorRequestNotComplete (0 = never).
    throttling: bool = False
    throttle_burst: int = 50
    throttle_rate_per_second: float = 10.0
    prior_request_seconds: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("propagation_seconds", "metrics_lag_seconds", "prior_request_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("dns_ttl_seconds", "health_check_interval_scale", "throttle_rate_per_second"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if self.dns_clients < 1:
            problems.append("dns_clients must be >= 1")
        if self.metrics_period_seconds is not None and self.metrics_period_seconds <= 0:
            problems.append("metrics_period_seconds must be > 0 or None")
        if self.health_checkers < 0:
            problems.append("health_checkers must be >= 0")
        if not 0 <= self.health_check_healthy_fraction < 1:
            problems.append("health_check_healthy_fraction must be in [0, 1)")
        if self.throttle_burst < 1:
            problems.append("throttle_burst must be >= 1")
        if problems:
            raise ValueError("invalid sandbox profile: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: dict[str, SandboxProfile] = {
    "fast": SandboxProfile(),
    "aws": SandboxProfile(
        name="aws",
        propagation_seconds=30.0,
        dns_ttl_seconds=60.0,
        metrics_period_seconds=60.0,
        metrics_lag_seconds=120.0,
        health_checkers=8,
        throttling=True,
        prior_request_seconds=0.5,
    ),
}

FIELDS = frozenset(f.name for f in dataclasses.fields(SandboxProfile)) - {"name"}


def resolve_profile(profile: str | SandboxProfile = "fast", **overrides: Any) -> SandboxProfile:
    """A named (or given) profile with any field overridden; unknown names and fields raise."""
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown sandbox profile {profile!r}; choose one of {sorted(PROFILES)}")
        base = PROFILES[profile]
    else:
        base = profile
    unknown = set(overrides) - FIELDS
    if unknown:
        raise ValueError(f"unknown sandbox profile setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, **overrides) if overrides else base


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (from a command line) as typed overrides of :class:`SandboxProfile`."""
    types = {f.name: f.type for f in dataclasses.fields(SandboxProfile)}
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in FIELDS:
            raise ValueError(f"expected SETTING=VALUE with SETTING one of {sorted(FIELDS)}, got {pair!r}")
        kind = str(types[key])
        if raw.lower() in ("none", "") and "None" in kind:
            result[key] = None
        elif kind.startswith("bool"):
            result[key] = raw.lower() in ("1", "true", "yes", "on")
        elif kind.startswith("int"):
            result[key] = int(raw)
        else:
            result[key] = float(raw)
    return result
