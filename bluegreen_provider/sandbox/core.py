"""``Sandbox``: the story's AWS world on a laptop — moto as AWS, live traffic, alarms that react.

Starting one gives a moto endpoint seeded with lego-api (zone, weighted record, four functions with
blue/green aliases, alarms), a traffic simulator that runs the deployed releases' code, and a small
HTTP server for per-slot health checks and status. The deployment DAG only ever sees ordinary AWS
APIs at ``endpoint_url``.

How AWS-like it is comes from its :class:`~bluegreen_provider.sandbox.profile.SandboxProfile`:
``Sandbox(profile="aws", propagation_seconds=3, ...)`` takes a named profile and overrides any of its
numbers. The default ``fast`` profile behaves as the sandbox always has. ``Sandbox(faults=FaultPlan(...))``
(or ``faults=0.2``) puts a fault-injecting proxy (:mod:`~bluegreen_provider.sandbox.faults`) between
the deployment and moto: the Airflow connection points at it, the sandbox's own clients do not.

moto's state is process-global: run one Sandbox per process at a time.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bluegreen_provider.sandbox import metrics, route53_rules, throttling, world
from bluegreen_provider.sandbox.alarms import AlarmEvaluator
from bluegreen_provider.sandbox.clients import ACCESS_KEY, REGION, SECRET_KEY, Clients
from bluegreen_provider.sandbox.dns import ResolverPopulation, weights_of
from bluegreen_provider.sandbox.faults import FaultPlan, FaultProxy, Gate, Injected
from bluegreen_provider.sandbox.health import HealthServer
from bluegreen_provider.sandbox.health_checkers import CheckSpec, HealthCheckers, moto_checks, report
from bluegreen_provider.sandbox.metrics import Bucket, PeriodAggregator, TrafficCounters
from bluegreen_provider.sandbox.motoserver import MotoServer
from bluegreen_provider.sandbox.profile import SandboxProfile, resolve_profile
from bluegreen_provider.sandbox.releases import ReleaseCatalog
from bluegreen_provider.sandbox.routing import Router, RouteResolutionError
from bluegreen_provider.sandbox.runtime import invoke
from bluegreen_provider.sandbox.simulator import TrafficSimulator

log = logging.getLogger(__name__)

HEALTH_FUNCTION = world.FUNCTIONS[0]  # a slot's health is that of its first function, as in the story


class Sandbox:
    """moto + seeded world + traffic + alarm evaluation + health endpoints, started and stopped together."""

    region = REGION

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        http_port: int = 0,
        rate_per_second: float = 20.0,
        flush_seconds: float = 10.0,
        seed: int = 7,
        state_dir: Path | None = None,
        profile: str | SandboxProfile = "fast",
        faults: FaultPlan | float | None = None,
        router: str = "route53",
        **overrides: Any,
    ) -> None:
        if router not in ("route53", "lambda_alias"):
            raise ValueError(f"router must be 'route53' or 'lambda_alias', got {router!r}")
        # lambda_alias: every request invokes each function's live alias, whose routing picks the version.
        self.router = router
        self.live_alias: str | None = world.LIVE_ALIAS if router == "lambda_alias" else None
        self.profile = resolve_profile(profile, **overrides)
        if faults is not None and not isinstance(faults, FaultPlan):
            faults = FaultPlan(share=faults, seed=seed)
        self.faults: FaultPlan | None = faults
        self._proxy: FaultProxy | None = None
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="bluegreen-"))
        self.flush_seconds = flush_seconds
        self.seed = seed
        period = self.profile.metrics_period_seconds
        self.alarm_period = int(period) if period else world.alarm_period(flush_seconds)
        self._initial_rate = rate_per_second
        self.catalog = ReleaseCatalog()
        self._moto = MotoServer(host=host, port=port)
        self._http = HealthServer(self, host=host, port=http_port)
        self._clients: Clients | None = None
        self._router: Router | None = None
        self._evaluator: AlarmEvaluator | None = None
        self._simulator: TrafficSimulator | None = None
        self._resolvers: ResolverPopulation | None = None
        self._checkers: HealthCheckers | None = None
        self._previous_propagation = route53_rules.SETTINGS.propagation_seconds
        self._counters = TrafficCounters(time.time())
        self._flushes = 0
        self._flushed = threading.Condition()
        self.hosted_zone_id = ""
        # Services seeded beside the story's (add_service): name -> (service, hosted zone id).
        self._services: dict[str, tuple[world.ServiceWorld, str]] = {}
        self.endpoint_url = ""  # moto itself: the sandbox's own clients and tests reading state back
        self.aws_endpoint_url = ""  # what the deployment's connection uses: the fault proxy, if any
        self.http_url = ""

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        try:
            self._moto.start()
            self.endpoint_url = self.aws_endpoint_url = self._moto.url
            self._clients = Clients(self.endpoint_url)
            profile = self.profile
            self._previous_propagation = route53_rules.SETTINGS.propagation_seconds
            route53_rules.configure(propagation_seconds=0)  # the seeded world is INSYNC from the start
            seeded = world.seed(
                self._clients,
                self.catalog,
                rate_per_second=self._initial_rate,
                flush_seconds=self.flush_seconds,
                alarm_period_seconds=self.alarm_period,
                live_alias=self.live_alias,
            )
            route53_rules.configure(propagation_seconds=profile.propagation_seconds)
            throttling.LIMITS.configure(
                enabled=profile.throttling,
                burst=profile.throttle_burst,
                rate_per_second=profile.throttle_rate_per_second,
                prior_request_seconds=profile.prior_request_seconds,
            )
            self.hosted_zone_id = seeded.hosted_zone_id
            self._router = Router(self._clients, self.hosted_zone_id, world.FUNCTIONS)
            self._evaluator = AlarmEvaluator(
                self._clients, world.ALARM_NAMES, lookback_seconds=profile.metrics_lag_seconds
            )
            aggregator = (
                PeriodAggregator(self.alarm_period, profile.metrics_lag_seconds)
                if profile.metrics_period_seconds
                else None
            )
            self._counters = TrafficCounters(time.time(), aggregator=aggregator)
            if profile.health_checkers:
                self._checkers = HealthCheckers(
                    self._probe_check,
                    moto_checks,
                    checkers=profile.health_checkers,
                    interval_scale=profile.health_check_interval_scale,
                    healthy_fraction=profile.health_check_healthy_fraction,
                )
            self._resolvers = ResolverPopulation(
                self.hosted_zone_id,
                clients=profile.dns_clients,
                ttl_seconds=profile.dns_ttl_seconds,
                seed=self.seed,
                fallback=self._router.weights,
                is_healthy=self._check_healthy if self._checkers else None,
            )
            self._simulator = TrafficSimulator(
                self._router,
                self._resolvers,
                self.catalog,
                self._counters,
                rate_per_second=self._initial_rate,
                flush_seconds=self.flush_seconds,
                seed=self.seed,
                on_flush=self._flush,
                live_alias=self.live_alias,
            )
            if self.faults is not None:
                host = self._moto.url.rsplit(":", 1)[0].removeprefix("http://")
                self._proxy = FaultProxy(self.endpoint_url, self.faults, host=host).start()
                self.aws_endpoint_url = self._proxy.url
            self._http.start()
            self.http_url = self._http.url
            if self._checkers is not None:
                self._checkers.start()
            self._simulator.start()
        except BaseException:
            self.stop()
            raise
        log.info(
            "sandbox up: moto %s, AWS endpoint %s, http %s", self.endpoint_url, self.aws_endpoint_url, self.http_url
        )
        return self

    def stop(self) -> None:
        """Stop traffic first (its last flush still needs moto), then the servers."""
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
        if self._checkers is not None:
            self._checkers.stop()
            self._checkers = None
        self._http.stop()
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        self._moto.stop()
        throttling.LIMITS.configure(enabled=False)
        route53_rules.configure(propagation_seconds=self._previous_propagation)
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # what callers use --------------------------------------------------------------------------

    def connection_json(self, conn_id: str = "aws_default") -> str:
        """The Airflow connection (JSON form, e.g. for ``AIRFLOW_CONN_AWS_DEFAULT``) aimed at moto, through
        the fault proxy when the sandbox has one."""
        through = f" through the fault proxy at {self.aws_endpoint_url}" if self._proxy is not None else ""
        return json.dumps(
            {
                "conn_type": "aws",
                "description": f"{conn_id}: bluegreen sandbox (moto at {self.endpoint_url}{through})",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.aws_endpoint_url, "region_name": self.region},
            }
        )

    def connection_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        """Environment variables that give Airflow the connection ``conn_id``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(conn_id)}

    def clients(self) -> Clients:
        """boto3 clients for moto (one set per calling thread)."""
        if self._clients is None:
            raise RuntimeError("sandbox is not started")
        return self._clients

    def release_zip(self, name: str) -> Path:
        """The deployment package of demo release ``name`` (``v1``, ``v2``, ``bad``, ``unhealthy``)."""
        return self.catalog.write_zip(name, self.state_dir / "releases")

    def release_build(self, base: str, build: int) -> Path:
        """The package of a new build of release ``base`` (see :meth:`ReleaseCatalog.add_build`)."""
        return self.catalog.write_zip(self.catalog.add_build(base, build).name, self.state_dir / "releases")

    def release_sha256(self, name: str) -> str:
        """The CodeSha256 Lambda reports for release ``name``."""
        return self.catalog[name].sha256

    def stats(self) -> dict[str, Any]:
        """Requests and errors (5XX) per slot, with the same per function and the release it last ran."""
        return self._counters.snapshot()

    def weights(self) -> dict[str, int]:
        """Current Route53 weights of api.lego-mocs.com (the latest committed change; no API call, so
        the sandbox's own reads never spend the account's Route53 request quota)."""
        changes = route53_rules.CHANGES.zone(self.hosted_zone_id) if self.hosted_zone_id else []
        if changes:
            return weights_of(changes[-1].record_sets)
        return self._require(self._router).read_weights()

    def route53_changes(self) -> list[dict[str, Any]]:
        """Every committed change to the zone: id, submitted/INSYNC times (epoch s) and the weights after it."""
        return [
            {
                "change_id": c.change_id,
                "submitted_at": c.submitted_at,
                "insync_at": c.insync_at,
                "comment": c.comment,
                "weights": weights_of(c.record_sets),
            }
            for c in route53_rules.CHANGES.zone(self.hosted_zone_id)
        ]

    def faults_injected(self) -> list[Injected]:
        """Every fault the proxy answered the deployment's calls with, oldest first (none without faults)."""
        return self._proxy.injected() if self._proxy is not None else []

    def hold(self, service: str, operation: str, *, after_apply: bool = False, matching: str | None = None) -> Gate:
        """Hold the deployment's next ``service`` ``operation`` call at the fault proxy (see :class:`Gate`)."""
        if self._proxy is None:
            raise RuntimeError("holding a call needs the fault proxy: Sandbox(faults=FaultPlan(share=0))")
        return self._proxy.hold(service, operation, after_apply=after_apply, matching=matching)

    def fault_counts(self) -> dict[str, Any] | None:
        """Requests through the fault proxy and faults per kind, service and operation (None: no proxy)."""
        return self._proxy.counts() if self._proxy is not None else None

    def served(self, since: float | None = None) -> list[dict[str, Any]]:
        """Per wall-clock second, the requests and failures each slot served (see :class:`ServedSeries`)."""
        return self._counters.served.series(since)

    def last_request_at(self, slot: str) -> float | None:
        """Epoch time of the last request that reached ``slot`` (None: never)."""
        return self._counters.served.last_request_at(slot)

    def share_of_resolvers_on_latest_change(self) -> float:
        return self._require(self._resolvers).share_seeing_latest()

    def health_check_status(self, check_id: str) -> dict[str, Any] | None:
        """A Route53 health check's status as the checkers decide it (None: not known to them yet)."""
        return self._checkers.status(check_id) if self._checkers else None

    def fail_checker_region(self, region: str, failing: bool = True) -> None:
        """Make one health-checker region's probes time out (or recover)."""
        self._require(self._checkers).fail_region(region, failing)

    def alarm_states(self) -> dict[str, str]:
        return self._require(self._evaluator).states()

    def status(self) -> dict[str, Any]:
        evaluator = self._require(self._evaluator)
        return {
            "endpoint_url": self.endpoint_url,
            "aws_endpoint_url": self.aws_endpoint_url,
            "faults": self.fault_counts(),
            "hosted_zone_id": self.hosted_zone_id,
            "rate_per_second": self._require(self._simulator).rate,
            "flush_seconds": self.flush_seconds,
            "alarm_period": self.alarm_period,
            "flushes": self.flushes,
            "weights": self.weights(),
            "slots": self.stats(),
            "alarms": evaluator.states(),
            "forced_alarms": evaluator.forced,
            "releases": self.catalog.shas(),
            "profile": self.profile.as_dict(),
            "route53_changes": self.route53_changes()[-5:],
            "resolvers_on_latest_change": self.share_of_resolvers_on_latest_change(),
            "served_last": self._counters.served.summary(),
            "served_per_second": self.served(time.time() - 60),
            "health_checks": self._checkers.statuses() if self._checkers else {},
            "failing_checker_regions": self._checkers.failing_regions if self._checkers else [],
            "throttling": {
                "enabled": throttling.LIMITS.enabled,
                "throttled": throttling.LIMITS.throttled,
                "prior_request_not_complete": throttling.LIMITS.refused_prior,
            },
        }

    def add_service(self, service: world.ServiceWorld) -> str:
        """Seed another service beside the story's (its own zone, record and functions); its zone id.

        Its health URL is ``{http_url}/services/<name>/<slot>/health``; no traffic reaches it.
        """
        zone_id = world.seed_service(self.clients(), self.catalog, service)
        self._services[service.name] = (service, zone_id)
        return zone_id

    def service_weights(self, name: str) -> dict[str, int]:
        """The Route53 weights of an added service's record, read from moto."""
        service, zone_id = self._service(name)
        records = self.clients()("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        return {
            r["SetIdentifier"]: int(r["Weight"])
            for r in records
            if r["Name"].rstrip(".") == service.record_name and r["Type"] == "A" and "Weight" in r
        }

    def _service(self, name: str) -> tuple[world.ServiceWorld, str]:
        if name not in self._services:
            raise KeyError(f"no service {name!r} in the sandbox; added: {sorted(self._services)}")
        return self._services[name]

    def health(self, slot: str, service: str | None = None) -> tuple[int, str]:
        """Run ``GET /health`` on the release behind the slot's alias now; (status, body).

        ``service`` names an added service (its first function answers); None is lego-api.
        """
        router = self._require(self._router)
        if service is None:
            function = HEALTH_FUNCTION
        elif service in self._services:
            function = self._services[service][0].functions[0]
        else:
            return 404, json.dumps({"message": f"no service {service!r} in the sandbox"})
        try:
            version, sha = router.resolve_now(function, slot)
        except (RouteResolutionError, BotoCoreError, ClientError) as exc:
            return 502, json.dumps({"message": str(exc)})
        release = self.catalog.by_sha(sha)
        if release is None:
            return 502, json.dumps({"message": f"unknown code {sha} behind {function}:{version}"})
        outcome = invoke(
            release,
            function=function,
            version=version,
            alias=world.alias_name(slot),
            path="/health",
            request_id=f"health-{slot}-{time.monotonic_ns()}",
        )
        return outcome.status, outcome.body

    def force_alarm(self, name: str, state: str = "ALARM", reason: str | None = None) -> None:
        """Put an alarm in ``state`` and keep it there, whatever the traffic, until ``release_alarm``."""
        self._require(self._evaluator).force(name, state, reason)

    def release_alarm(self, name: str) -> None:
        self._require(self._evaluator).release(name)

    def set_rate(self, rate_per_second: float) -> None:
        self._require(self._simulator).set_rate(rate_per_second)

    def inject_errors(self, share: float, slot: str | None = None) -> None:
        """Fail ``share`` of the requests to ``slot``, or to every slot (a failing dependency); 0 clears."""
        self._require(self._simulator).inject_errors(share, slot)

    @property
    def flushes(self) -> int:
        with self._flushed:
            return self._flushes

    def wait_for_flushes(self, count: int = 1, timeout: float = 30.0) -> None:
        """Block until ``count`` more flushes (publish + alarm evaluation) have completed."""
        deadline = time.monotonic() + timeout
        with self._flushed:
            target = self._flushes + count
            while self._flushes < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{count} flush(es) did not complete within {timeout:g} s")
                self._flushed.wait(remaining)

    # internals -----------------------------------------------------------------------------------

    def _flush(self, bucket: Bucket) -> None:
        aggregator = self._counters.aggregator
        if aggregator is None:
            metrics.publish(self.clients(), bucket, live_alias=self.live_alias)
        else:
            resolution = 60 if aggregator.period >= 60 else 1
            for due in aggregator.due(time.time()):
                metrics.publish(self.clients(), due, resolution=resolution, live_alias=self.live_alias)
        if self._checkers is not None:
            self._publish_check_metrics()
        self._require(self._evaluator).evaluate()
        with self._flushed:
            self._flushes += 1
            self._flushed.notify_all()

    def _probe_check(self, spec: CheckSpec, region: str) -> tuple[bool, str]:
        """One checker's probe: the slot whose API host the check names, through its health endpoint."""
        targets = [(None, s, world.slot_dns_name(s)) for s in world.SLOTS]
        targets += [(name, s, svc.slot_dns_name(s)) for name, (svc, _) in self._services.items() for s in world.SLOTS]
        found = next(((name, slot) for name, slot, fqdn in targets if fqdn == spec.fqdn), None)
        if found is None:
            return False, f"Failure: DNS resolution of {spec.fqdn} failed"
        status, _ = self.health(found[1], service=found[0])
        return report(status)

    def _check_healthy(self, check_id: str) -> bool:
        status = self._checkers.status(check_id) if self._checkers else None
        return True if status is None else bool(status["healthy"])

    def _publish_check_metrics(self) -> None:
        """AWS/Route53 HealthCheckStatus and HealthCheckPercentageHealthy, as Route53 publishes them."""
        now = datetime.fromtimestamp(int(time.time()), UTC)
        data = []
        for check_id, status in self._require(self._checkers).statuses().items():
            dims = [{"Name": "HealthCheckId", "Value": check_id}]
            share = 100.0 * status["healthy_checkers"] / max(1, status["checkers"])
            data.append({"MetricName": "HealthCheckStatus", "Dimensions": dims, "Timestamp": now,
                         "Value": float(status["healthy"]), "Unit": "None"})  # fmt: skip
            data.append({"MetricName": "HealthCheckPercentageHealthy", "Dimensions": dims, "Timestamp": now,
                         "Value": share, "Unit": "Percent"})  # fmt: skip
        for start in range(0, len(data), 20):
            self.clients()("cloudwatch").put_metric_data(Namespace="AWS/Route53", MetricData=data[start : start + 20])

    @staticmethod
    def _require(component: Any) -> Any:
        if component is None:
            raise RuntimeError("sandbox is not started")
        return component
