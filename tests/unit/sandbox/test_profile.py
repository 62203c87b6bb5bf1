"""Profiles: fast is today's sandbox, aws is AWS's timings; every number overridable on its own."""

from __future__ import annotations

import dataclasses

import pytest

from bluegreen_provider.sandbox.profile import FIELDS, PROFILES, SandboxProfile, parse_overrides, resolve_profile


def test_fast_is_the_default_and_keeps_todays_behaviour() -> None:
    fast = resolve_profile()
    assert fast == SandboxProfile() and fast.name == "fast"
    assert fast.propagation_seconds == 0 and fast.dns_ttl_seconds == 1.0
    assert fast.metrics_period_seconds is None and fast.metrics_lag_seconds == 0
    assert fast.health_checkers == 0 and not fast.throttling


def test_aws_has_aws_timings() -> None:
    aws = PROFILES["aws"]
    assert (aws.propagation_seconds, aws.dns_ttl_seconds) == (30, 60)
    assert (aws.metrics_period_seconds, aws.metrics_lag_seconds) == (60, 120)
    assert aws.health_checkers == 8 and aws.health_check_healthy_fraction == 0.18
    assert aws.throttling and (aws.throttle_burst, aws.throttle_rate_per_second) == (50, 10)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_setting_can_be_overridden_alone(name: str) -> None:
    base = PROFILES["aws"]
    current = getattr(base, name)
    new = (not current) if isinstance(current, bool) else (current or 1) * 2 if name != "health_checkers" else 4
    if name == "health_check_healthy_fraction":
        new = 0.5
    changed = resolve_profile("aws", **{name: new})
    assert getattr(changed, name) == new
    assert {f.name for f in dataclasses.fields(changed) if getattr(changed, f.name) != getattr(base, f.name)} == {name}


def test_unknown_profiles_settings_and_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sandbox profile"):
        resolve_profile("gcp")
    with pytest.raises(ValueError, match="unknown sandbox profile setting"):
        resolve_profile("aws", ttl=5)
    with pytest.raises(ValueError, match="dns_ttl_seconds"):
        resolve_profile("aws", dns_ttl_seconds=0)


def test_command_line_overrides_are_typed() -> None:
    assert parse_overrides(["propagation_seconds=3", "throttling=off", "health_checkers=8"]) == {
        "propagation_seconds": 3.0,
        "throttling": False,
        "health_checkers": 8,
    }
    assert parse_overrides(["metrics_period_seconds=none"]) == {"metrics_period_seconds": None}
    with pytest.raises(ValueError):
        parse_overrides(["nope=1"])
