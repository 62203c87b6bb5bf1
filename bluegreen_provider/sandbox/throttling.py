"""Route53's API limits, wrapped around moto's Route53 request dispatch (off unless configured).

Route53 limits API requests per account and answers beyond the limit with HTTP 400 ``Throttling`` /
"Rate exceeded"; short bursts pass. Modelled as one token bucket per account: ``burst`` tokens
(default 50), refilled at ``rate_per_second`` (default 10); every Route53 call takes one. A
``ChangeResourceRecordSets`` on a zone whose previous change was submitted less than
``prior_request_seconds`` ago is refused with HTTP 400 ``PriorRequestNotComplete``, as Route53 does
while it is still applying that change. botocore retries both codes for Route53, as it does on AWS.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores
from moto.route53.exceptions import Route53ClientError
from moto.route53.responses import Route53

from bluegreen_provider.sandbox.route53_rules import CHANGES


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second; ``take`` spends one if it can."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("capacity must be >= 1 and rate > 0")
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


@dataclass
class Limits:
    """What is enforced; ``enabled`` False lets every request through untouched."""

    enabled: bool = False
    burst: int = 50
    rate_per_second: float = 10.0
    prior_request_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time  # change submission times are wall time
    throttled: int = 0
    refused_prior: int = 0
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, account: str) -> bool:
        with self._lock:
            bucket = self._buckets.get(account)
            if bucket is None:
                bucket = self._buckets[account] = TokenBucket(self.burst, self.rate_per_second, self.clock)
        allowed = bucket.take()
        if not allowed:
            self.throttled += 1
        return allowed

    def change_in_progress(self, zone_id: str) -> bool:
        if self.prior_request_seconds <= 0:
            return False
        changes = CHANGES.zone(zone_id)
        busy = bool(changes) and self.wall_clock() < changes[-1].submitted_at + self.prior_request_seconds
        if busy:
            self.refused_prior += 1
        return busy

    def configure(
        self, *, enabled: bool, burst: int = 50, rate_per_second: float = 10.0, prior_request_seconds: float = 0.0
    ) -> None:
        with self._lock:
            self.enabled = enabled
            self.burst = burst
            self.rate_per_second = rate_per_second
            self.prior_request_seconds = prior_request_seconds
            self.throttled = 0
            self.refused_prior = 0
            self._buckets.clear()


LIMITS = Limits()
_original_call_action = Route53.call_action
_installed = False
_install_lock = threading.Lock()


def refusal(response: Any, action: str) -> Route53ClientError | None:
    """The error Route53 would answer this request with, or None to let it through."""
    if not LIMITS.enabled:
        return None
    if not LIMITS.allow(str(response.current_account)):
        return Route53ClientError("Throttling", "Rate exceeded")
    if action == "change_resource_record_sets":
        zone_id = str(response._get_param("HostedZoneId") or "").rsplit("/", 1)[-1]
        if zone_id and LIMITS.change_in_progress(zone_id):
            return Route53ClientError(
                "PriorRequestNotComplete",
                "The request was rejected because Route 53 was still processing a prior request.",
            )
    return None


def _call_action(self: Any) -> Any:
    action = camelcase_to_underscores(self._get_action() or "")
    error = refusal(self, action)
    if error is None:
        return _original_call_action(self)
    status, headers, body = self.serialized(ActionResult(error))
    headers, body = self._enrich_response(headers, body)
    return status, headers, body


def install() -> None:
    """Wrap moto's Route53 dispatch (process-wide, idempotent); limits stay off until configured."""
    global _installed
    with _install_lock:
        if not _installed:
            # moto warns that Throttling is not in Route53's error model; AWS sends it all the same.
            warnings.filterwarnings("ignore", message=r".*code Throttling does not match an error shape.*")
            Route53.call_action = _call_action  # type: ignore[method-assign]
            _installed = True
