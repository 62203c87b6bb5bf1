"""The traffic simulator: clients of api.lego-mocs.com, at a steady rate, on a thread.

Each request follows the path real traffic would take (a client's cached Route53 answer → slot →
Lambda alias → version → code; with ``live_alias``, every request invokes that one alias and its
weighted routing picks the version per invocation, no DNS involved) and runs the handler of the
release that code belongs to, so a bad deployment produces real errors on exactly the share of
traffic it receives. Every ``flush_seconds`` the counted bucket is handed to ``on_flush`` (publish
metrics, evaluate alarms).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from bluegreen_provider.sandbox.dns import ResolverPopulation
from bluegreen_provider.sandbox.metrics import Bucket, TrafficCounters
from bluegreen_provider.sandbox.releases import ReleaseCatalog
from bluegreen_provider.sandbox.routing import Router, RouteResolutionError
from bluegreen_provider.sandbox.runtime import invoke
from bluegreen_provider.sandbox.world import FUNCTION_PATHS, FUNCTIONS, alias_name

log = logging.getLogger(__name__)

MAX_RATE = 5000.0  # requests per second; the loop is single-threaded and runs handlers inline
_MAX_BACKLOG_SECONDS = 1.0  # after a stall, catch up at most one second of traffic
_IDLE_WAIT = 0.05


class TrafficSimulator:
    """Sends requests at ``rate_per_second`` until stopped, flushing a bucket every ``flush_seconds``."""

    def __init__(
        self,
        router: Router,
        resolvers: ResolverPopulation,
        catalog: ReleaseCatalog,
        counters: TrafficCounters,
        *,
        rate_per_second: float,
        flush_seconds: float,
        seed: int,
        on_flush: Callable[[Bucket], None],
        live_alias: str | None = None,
    ) -> None:
        if flush_seconds <= 0:
            raise ValueError("flush_seconds must be positive")
        self._router = router
        self._resolvers = resolvers
        self._catalog = catalog
        self._counters = counters
        self._flush_seconds = flush_seconds
        self._seed = seed
        self._rng = random.Random(seed)
        self._on_flush = on_flush
        self._live_alias = live_alias
        self._rate = 0.0
        self.set_rate(rate_per_second)
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._faults: dict[str | None, float] = {}

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate_per_second: float) -> None:
        if not 0 <= rate_per_second <= MAX_RATE:
            raise ValueError(f"rate must be between 0 and {MAX_RATE:g} requests per second")
        self._rate = float(rate_per_second)

    def inject_errors(self, share: float, slot: str | None = None) -> None:
        """Fail ``share`` of the requests to ``slot`` (every slot when None) with a 503, whatever the code.

        Stands for what no release causes: a failing dependency behind every slot (the whole service
        degrades), or a release that is only slightly flaky. 0 clears it.
        """
        if not 0 <= share <= 1:
            raise ValueError(f"share must be between 0 and 1, got {share!r}")
        if share == 0:
            self._faults.pop(slot, None)
        else:
            self._faults[slot] = float(share)

    def _injected(self, slot: str) -> bool:
        share = max(self._faults.get(None, 0.0), self._faults.get(slot, 0.0))
        return share > 0 and self._rng.random() < share

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-traffic", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("traffic thread did not stop within %.0f s", timeout)
        self._thread = None

    def _run(self) -> None:
        last = time.monotonic()
        next_flush = last + self._flush_seconds
        credit = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            rate = self._rate
            credit = min(credit + (now - last) * rate, max(1.0, rate * _MAX_BACKLOG_SECONDS))
            last = now
            while credit >= 1.0 and not self._stop.is_set():
                try:
                    self._send_one()
                except Exception:  # a sandbox whose traffic silently died would look perfectly healthy
                    log.exception("simulated request failed unexpectedly")
                credit -= 1.0
            if time.monotonic() >= next_flush:
                self._flush()
                next_flush += self._flush_seconds
                if next_flush < time.monotonic():  # a slow flush: do not fire a burst of catch-up flushes
                    next_flush = time.monotonic() + self._flush_seconds
            until_request = (1.0 - credit) / rate if rate > 0 else _IDLE_WAIT
            self._stop.wait(max(0.0, min(until_request, next_flush - time.monotonic(), _IDLE_WAIT)))

    def _flush(self) -> None:
        bucket = self._counters.take_bucket(time.time())
        try:
            self._on_flush(bucket)
        except (BotoCoreError, ClientError) as exc:
            if not self._stop.is_set():
                log.warning("flush failed: %s", exc)
        except Exception:
            log.exception("flush failed unexpectedly")

    def _send_one(self) -> None:
        request_id = f"{self._seed}-{self._sequence:09d}"
        self._sequence += 1
        if self._live_alias is not None:
            self._send_through_alias(request_id, self._live_alias)
            return
        try:
            _, slot = self._resolvers.pick(self._rng)
        except (BotoCoreError, ClientError) as exc:
            self._warn_once("route53", f"cannot read Route53 weights: {exc}")
            return
        if slot is None:
            self._warn_once("no-record", "api.lego-mocs.com has no weighted blue/green record sets")
            return
        function = self._rng.choice(FUNCTIONS)
        try:
            version = self._router.target(function, slot).pick(self._rng)
            sha = self._router.code_sha(function, version)
        except (RouteResolutionError, BotoCoreError, ClientError) as exc:
            self._warn_once(f"route:{function}:{slot}", f"request to {slot} {function} cannot be routed: {exc}")
            self._counters.record(slot, function, status=502, function_error=True, release="unroutable")
            return
        release = self._catalog.by_sha(sha)
        if self._injected(slot):
            self._counters.record(slot, function, status=503, function_error=True, release="injected")
            return
        if release is None:
            self._warn_once(
                f"sha:{sha}", f"{function}:{alias_name(slot)} version {version} runs unknown code {sha}: 502"
            )
            self._counters.record(slot, function, status=502, function_error=True, release="unknown")
            return
        outcome = invoke(
            release,
            function=function,
            version=version,
            alias=alias_name(slot),
            path=FUNCTION_PATHS[function],
            request_id=request_id,
        )
        self._counters.record(
            slot, function, status=outcome.status, function_error=outcome.function_error, release=release.name
        )

    def _send_through_alias(self, request_id: str, alias: str) -> None:
        """One invocation of ``function:alias``: its routing picks the version, as Lambda does per invocation."""
        function = self._rng.choice(FUNCTIONS)
        try:
            version = self._router.alias_target(function, alias).pick(self._rng)
            sha = self._router.code_sha(function, version)
            slot = self._router.slot_serving(function, version) or "unassigned"
        except (RouteResolutionError, BotoCoreError, ClientError) as exc:
            self._warn_once(f"route:{function}:{alias}", f"request to {function}:{alias} cannot be routed: {exc}")
            return
        release = self._catalog.by_sha(sha)
        record = {"version": version}
        if self._injected(slot):
            self._counters.record(slot, function, status=503, function_error=True, release="injected", **record)
            return
        if release is None:
            self._warn_once(f"sha:{sha}", f"{function}:{alias} version {version} runs unknown code {sha}: 502")
            self._counters.record(slot, function, status=502, function_error=True, release="unknown", **record)
            return
        outcome = invoke(
            release,
            function=function,
            version=version,
            alias=alias,
            path=FUNCTION_PATHS[function],
            request_id=request_id,
        )
        self._counters.record(
            slot, function, status=outcome.status, function_error=outcome.function_error, release=release.name, **record
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)
