"""Route53 health checkers: per-checker failure threshold, healthy while > 18 % of checkers say so."""

from __future__ import annotations

import pytest

from bluegreen_provider.sandbox.health_checkers import (
    REGIONS,
    TIMEOUT_REPORT,
    CheckSpec,
    HealthCheckers,
    check_is_healthy,
    report,
)

SPEC = CheckSpec("hc1", "production-green.execute-api.us-east-1.amazonaws.com", "/health", 30.0, 3)


class _World:
    def __init__(self) -> None:
        self.status = 200
        self.specs = [SPEC]
        self.probes: list[tuple[str, str]] = []

    def probe(self, spec: CheckSpec, region: str) -> tuple[bool, str]:
        self.probes.append((spec.check_id, region))
        return report(self.status)


def _checkers(world: _World, **kw: object) -> HealthCheckers:
    return HealthCheckers(world.probe, lambda: list(world.specs), clock=lambda: 0.0, **kw)  # type: ignore[arg-type]


def _run(checkers: HealthCheckers, start: float, end: float, step: float = 0.5) -> float | None:
    """Tick from start to end; the first time the check is unhealthy (None if it never is)."""
    t = start
    while t <= end:
        checkers.tick(t)
        if not checkers.status("hc1")["healthy"]:
            return t
        t += step
    return None


def test_the_rule_is_more_than_18_percent_of_checkers_healthy() -> None:
    assert check_is_healthy([True] * 2 + [False] * 6)  # 25 %
    assert not check_is_healthy([True] * 1 + [False] * 7)  # 12.5 %
    assert check_is_healthy([True] * 7 + [False] * 1)
    assert check_is_healthy([])


def test_a_failing_endpoint_turns_the_check_unhealthy_after_interval_times_threshold() -> None:
    world = _World()
    checkers = _checkers(world)
    assert _run(checkers, 0, 120) is None
    assert checkers.status("hc1")["healthy_checkers"] == 8
    world.status = 503
    went_unhealthy = _run(checkers, 120.5, 400)
    assert went_unhealthy is not None
    # each checker needs 3 failed probes 30 s apart; the check flips once 7 of 8 have (staggered checkers)
    assert 60 <= went_unhealthy - 120 <= 90
    obs = checkers.observations("hc1")
    assert len(obs) == 8 and all(o["StatusReport"]["Status"].startswith("Failure: HTTP Status Code 503") for o in obs)


def test_a_recovered_endpoint_needs_threshold_successes_per_checker() -> None:
    world = _World()
    world.status = 503
    checkers = _checkers(world)
    assert _run(checkers, 0, 200) is not None
    world.status = 200
    t = 200.0
    while not checkers.status("hc1")["healthy"]:
        checkers.tick(t)
        t += 0.5
        assert t < 400
    assert t - 200 >= 2 * 30  # the second checker's third success comes at least 60 s after


def test_one_failing_region_does_not_make_the_check_unhealthy_but_seven_do() -> None:
    world = _World()
    checkers = _checkers(world)
    checkers.fail_region("eu-west-1")
    assert _run(checkers, 0, 300) is None
    status = checkers.status("hc1")
    assert status["healthy_checkers"] == 7 and status["verdicts"]["eu-west-1"] is False
    assert any(o["StatusReport"]["Status"] == TIMEOUT_REPORT for o in checkers.observations("hc1"))
    for region in REGIONS[:7]:
        checkers.fail_region(region)
    assert _run(checkers, 300, 500) is not None
    with pytest.raises(ValueError):
        checkers.fail_region("mars-north-1")


def test_probes_run_at_the_scaled_request_interval() -> None:
    world = _World()
    checkers = _checkers(world, interval_scale=0.1)  # 30 s -> 3 s
    t = 0.0
    while t < 30:
        checkers.tick(t)
        t += 0.25
    per_region = {r: sum(1 for _, reg in world.probes if reg == r) for r in REGIONS}
    assert set(per_region.values()) <= {9, 10, 11}


def test_disabled_checks_are_healthy_and_not_probed_inverted_ones_flip() -> None:
    world = _World()
    world.status = 503
    world.specs = [CheckSpec("hc1", SPEC.fqdn, "/health", 30.0, 1, disabled=True)]
    checkers = _checkers(world)
    assert _run(checkers, 0, 100) is None and world.probes == []
    world.specs = [CheckSpec("hc1", SPEC.fqdn, "/health", 30.0, 1, inverted=True)]
    assert _run(checkers, 100, 200) is None
    world.status = 200
    assert _run(checkers, 200, 300) is not None


def test_deleted_checks_are_forgotten() -> None:
    world = _World()
    checkers = _checkers(world)
    checkers.tick(0)
    assert checkers.known("hc1")
    world.specs = []
    checkers.tick(1)
    assert not checkers.known("hc1") and checkers.status("hc1") is None
