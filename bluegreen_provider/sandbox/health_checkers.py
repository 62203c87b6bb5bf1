"""Route53 health checkers: several regions probe each health check's endpoint, as Route53 does.

Route53 runs health checkers in eight regions. Each probes the endpoint every ``RequestInterval``
seconds and keeps its own verdict: a healthy checker turns unhealthy after ``FailureThreshold``
consecutive failed probes, and back after as many consecutive successes. The check is healthy while
more than 18 % of the checkers consider it healthy, so one region losing its path to the endpoint
does not fail the check. A new check starts healthy. ``Disabled`` checks are healthy and not probed;
``Inverted`` ones flip each verdict.

The sandbox's checkers probe the slot whose API name is the check's host (``production-{slot}
.execute-api…``) through the sandbox's own health endpoint, on a thread, at ``RequestInterval *
interval_scale`` (so tests can scale 30 s down). moto's ``GetHealthCheckStatus`` answers from the checkers' latest
observations, so product code reads them the normal way. ``fail_region`` makes one region's probes time out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.route53.exceptions import Route53ClientError
from moto.route53.models import HealthCheck, Route53Backend, route53_backends
from moto.route53.responses import Route53

log = logging.getLogger(__name__)

REGIONS: tuple[str, ...] = (
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
)
TIMEOUT_REPORT = (
    "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being "
    "blocked by your firewall."
)
_REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS[503] = "Service Unavailable"


def report(status: int) -> tuple[bool, str]:
    """Route53's verdict and status text for an HTTP answer: 2xx and 3xx are healthy."""
    ok = 200 <= status < 400
    word = "Success" if ok else "Failure"
    return ok, f"{word}: HTTP Status Code {status}, {_REASONS.get(status, '')}".rstrip(", ")


@dataclass(frozen=True)
class CheckSpec:
    """What a checker needs from a health check's configuration."""

    check_id: str
    fqdn: str
    path: str
    interval: float
    failure_threshold: int
    inverted: bool = False
    disabled: bool = False


@dataclass
class Checker:
    """One region's checker of one health check: its verdict, streak and latest observation."""

    region: str
    ip: str
    next_probe_at: float
    healthy: bool = True
    streak: int = 0  # consecutive probe results that contradict ``healthy``
    last_report: str | None = None
    last_checked_at: float | None = None
    last_failure: tuple[str, float] | None = None

    def observe(self, ok: bool, text: str, at: float, threshold: int) -> None:
        self.last_report, self.last_checked_at = text, at
        if not ok:
            self.last_failure = (text, at)
        if ok == self.healthy:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= threshold:
            self.healthy, self.streak = ok, 0


def check_is_healthy(verdicts: list[bool], healthy_fraction: float = 0.18) -> bool:
    """Route53's rule: healthy while more than ``healthy_fraction`` of the checkers report healthy."""
    if not verdicts:
        return True
    return sum(verdicts) / len(verdicts) > healthy_fraction


@dataclass
class _CheckState:
    spec: CheckSpec
    checkers: list[Checker] = field(default_factory=list)
    healthy_since: float | None = None
    unhealthy_since: float | None = None


Probe = Callable[[CheckSpec, str], tuple[bool, str]]


class HealthCheckers:
    """The checkers of every health check in moto; ``tick`` runs the probes that are due."""

    def __init__(
        self,
        probe: Probe,
        list_checks: Callable[[], list[CheckSpec]],
        *,
        checkers: int = len(REGIONS),
        interval_scale: float = 1.0,
        healthy_fraction: float = 0.18,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= checkers <= len(REGIONS):
            raise ValueError(f"checkers must be 1..{len(REGIONS)}")
        self._probe = probe
        self._list_checks = list_checks
        self._regions = REGIONS[:checkers]
        self._scale = interval_scale
        self._fraction = healthy_fraction
        self._clock = clock
        self._lock = threading.RLock()
        self._checks: dict[str, _CheckState] = {}
        self._failing_regions: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def regions(self) -> tuple[str, ...]:
        return self._regions

    def fail_region(self, region: str, failing: bool = True) -> None:
        """Make every probe from ``region`` time out (or stop doing so)."""
        if region not in self._regions:
            raise ValueError(f"unknown checker region {region!r}; one of {', '.join(self._regions)}")
        with self._lock:
            (self._failing_regions.add if failing else self._failing_regions.discard)(region)

    @property
    def failing_regions(self) -> list[str]:
        with self._lock:
            return sorted(self._failing_regions)

    def tick(self, now: float | None = None) -> None:
        """Probe whatever is due at ``now``; new checks get staggered checkers, deleted ones are dropped."""
        now = self._clock() if now is None else now
        specs = {spec.check_id: spec for spec in self._list_checks()}
        with self._lock:
            for gone in set(self._checks) - set(specs):
                del self._checks[gone]
            for check_id, spec in specs.items():
                state = self._checks.get(check_id)
                if state is None:
                    state = self._checks[check_id] = _CheckState(spec, self._new_checkers(spec, now), now)
                state.spec = spec
            due = [
                (state, checker)
                for state in self._checks.values()
                if not state.spec.disabled
                for checker in state.checkers
                if checker.next_probe_at <= now
            ]
        for state, checker in due:
            spec = state.spec
            if checker.region in self.failing_regions:
                ok, text = False, TIMEOUT_REPORT
            else:
                try:
                    ok, text = self._probe(spec, checker.region)
                except Exception as exc:  # a probe that cannot even run is a failed probe
                    ok, text = False, f"Failure: {exc}"
            with self._lock:
                checker.observe(ok != spec.inverted, text, now, spec.failure_threshold)
                interval = spec.interval * self._scale
                checker.next_probe_at += interval
                if checker.next_probe_at <= now:  # after a stall, resume the schedule rather than burst
                    checker.next_probe_at = now + interval
                self._update_status(state, now)

    def _new_checkers(self, spec: CheckSpec, now: float) -> list[Checker]:
        step = spec.interval * self._scale / len(self._regions)
        return [
            Checker(region=region, ip=f"15.177.{i * 8}.{10 + i}", next_probe_at=now + i * step)
            for i, region in enumerate(self._regions)
        ]

    def _update_status(self, state: _CheckState, now: float) -> None:
        healthy = self._healthy(state)
        if healthy and state.healthy_since is None:
            state.healthy_since, state.unhealthy_since = now, None
        elif not healthy and state.unhealthy_since is None:
            state.unhealthy_since, state.healthy_since = now, None

    def _healthy(self, state: _CheckState) -> bool:
        if state.spec.disabled:
            return True
        return check_is_healthy([c.healthy for c in state.checkers], self._fraction)

    # what the API and the sandbox read ---------------------------------------------------------

    def known(self, check_id: str) -> bool:
        with self._lock:
            return check_id in self._checks

    def observations(self, check_id: str) -> list[dict[str, Any]]:
        """The latest observation of each checker that has probed (GetHealthCheckStatus's shape)."""
        with self._lock:
            state = self._checks.get(check_id)
            checkers = list(state.checkers) if state else []
            return [
                _observation(c.region, c.ip, c.last_report, c.last_checked_at)
                for c in checkers
                if c.last_report is not None and c.last_checked_at is not None
            ]

    def last_failures(self, check_id: str) -> list[dict[str, Any]]:
        with self._lock:
            state = self._checks.get(check_id)
            checkers = list(state.checkers) if state else []
            return [_observation(c.region, c.ip, *c.last_failure) for c in checkers if c.last_failure is not None]

    def status(self, check_id: str) -> dict[str, Any] | None:
        """The check's status as Route53 computes it, with each checker's verdict."""
        with self._lock:
            state = self._checks.get(check_id)
            if state is None:
                return None
            return {
                "healthy": self._healthy(state),
                "healthy_checkers": sum(c.healthy for c in state.checkers),
                "checkers": len(state.checkers),
                "healthy_since": state.healthy_since,
                "unhealthy_since": state.unhealthy_since,
                "fqdn": state.spec.fqdn,
                "verdicts": {c.region: c.healthy for c in state.checkers},
            }

    def statuses(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            ids = list(self._checks)
        return {check_id: status for check_id in ids if (status := self.status(check_id)) is not None}

    # the thread ---------------------------------------------------------------------------------

    def start(self, tick_seconds: float = 0.1) -> None:
        global ACTIVE
        ACTIVE = self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(tick_seconds,), name="sandbox-checkers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        global ACTIVE
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        if ACTIVE is self:
            ACTIVE = None

    def _run(self, tick_seconds: float) -> None:
        while not self._stop.wait(tick_seconds):
            try:
                self.tick()
            except Exception:  # checkers that silently died would report a stale verdict forever
                log.exception("health checkers tick failed")


def _observation(region: str, ip: str, text: str | None, at: float | None) -> dict[str, Any]:
    return {
        "Region": region,
        "IPAddress": ip,
        "StatusReport": {"Status": text, "CheckedTime": datetime.fromtimestamp(at or 0, UTC)},
    }


def moto_checks(account_id: str = "123456789012") -> list[CheckSpec]:
    """Every health check in moto's Route53 backend (read in-process: checkers do not use the API quota)."""
    backend = route53_backends[account_id]["global"]
    specs = []
    for check in list(backend.health_checks.values()):
        specs.append(
            CheckSpec(
                check_id=check.id,
                fqdn=str(check.fqdn or check.ip_address or "").lower().rstrip("."),
                path=str(check.resource_path or "/"),
                interval=float(check.request_interval or 30),
                failure_threshold=int(check.failure_threshold or 3),
                inverted=bool(check.inverted),
                disabled=bool(check.disabled),
            )
        )
    return specs


# -- the moto patch: GetHealthCheckStatus answers from the checkers ------------------------------------

ACTIVE: HealthCheckers | None = None
_original_status = Route53.get_health_check_status
_installed = False
_install_lock = threading.Lock()


def _response_status(self: Any) -> Any:
    checkers = ACTIVE
    if checkers is None:
        return _original_status(self)
    check_id = self._get_param("HealthCheckId")
    self.backend.get_health_check(check_id)  # NoSuchHealthCheck as Route53 answers it
    return ActionResult({"HealthCheckObservations": checkers.observations(check_id)})


# -- the moto patch: CreateHealthCheck is idempotent per CallerReference ------------------------------

_original_create = Route53Backend.create_health_check
_SETTINGS = (
    "ip_address", "port", "type_", "resource_path", "fqdn", "search_string", "request_interval",
    "failure_threshold", "health_threshold", "measure_latency", "inverted", "disabled", "enable_sni",
)  # fmt: skip


def _create_health_check_once(self: Route53Backend, caller_reference: str, health_check_args: dict[str, Any]) -> Any:
    """As Route53 documents CreateHealthCheck: a request repeated with the same CallerReference and
    settings returns the existing check (so a client's retry after a lost answer creates nothing new);
    the same CallerReference with other settings is ``409 HealthCheckAlreadyExists``. moto would
    create a second check."""
    for check in list(self.health_checks.values()):
        if check.caller_reference != caller_reference:
            continue
        asked = HealthCheck(check.id, caller_reference, health_check_args)
        if all(getattr(asked, name) == getattr(check, name) for name in _SETTINGS):
            return check
        raise Route53ClientError(  # modelled by Route53 as HTTP 409
            "HealthCheckAlreadyExists",
            f"A health check with caller reference {caller_reference} already exists with other settings",
        )
    return _original_create(self, caller_reference, health_check_args)


def install() -> None:
    """Patch moto's Route53 health-check calls: status from the checkers, creation idempotent
    (process-wide, idempotent)."""
    global _installed
    with _install_lock:
        if not _installed:
            Route53.get_health_check_status = _response_status  # type: ignore[method-assign]
            Route53Backend.create_health_check = _create_health_check_once  # type: ignore[method-assign]
            _installed = True
