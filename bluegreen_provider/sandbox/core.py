"""``Sandbox``: the story's AWS world on a laptop — moto as AWS, live traffic, alarms that react.

Starting one gives a moto endpoint seeded with lego-api (zone, weighted record, four functions with
blue/green aliases, alarms), a traffic simulator that runs the deployed releases' code, and a small
HTTP server for per-slot health checks and status. The deployment DAG only ever sees ordinary AWS
APIs at ``endpoint_url``.

moto's state is process-global: run one Sandbox per process at a time.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bluegreen_provider.sandbox import metrics, world
from bluegreen_provider.sandbox.alarms import AlarmEvaluator
from bluegreen_provider.sandbox.clients import ACCESS_KEY, REGION, SECRET_KEY, Clients
from bluegreen_provider.sandbox.health import HealthServer
from bluegreen_provider.sandbox.metrics import Bucket, TrafficCounters
from bluegreen_provider.sandbox.motoserver import MotoServer
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
    ) -> None:
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="bluegreen-"))
        self.flush_seconds = flush_seconds
        self.seed = seed
        self.alarm_period = world.alarm_period(flush_seconds)
        self._initial_rate = rate_per_second
        self.catalog = ReleaseCatalog()
        self._moto = MotoServer(host=host, port=port)
        self._http = HealthServer(self, host=host, port=http_port)
        self._clients: Clients | None = None
        self._router: Router | None = None
        self._evaluator: AlarmEvaluator | None = None
        self._simulator: TrafficSimulator | None = None
        self._counters = TrafficCounters(time.time())
        self._flushes = 0
        self._flushed = threading.Condition()
        self.hosted_zone_id = ""
        self.endpoint_url = ""
        self.http_url = ""

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        try:
            self._moto.start()
            self.endpoint_url = self._moto.url
            self._clients = Clients(self.endpoint_url)
            seeded = world.seed(
                self._clients, self.catalog, rate_per_second=self._initial_rate, flush_seconds=self.flush_seconds
            )
            self.hosted_zone_id = seeded.hosted_zone_id
            self._router = Router(self._clients, self.hosted_zone_id, world.FUNCTIONS)
            self._evaluator = AlarmEvaluator(self._clients, world.ALARM_NAMES)
            self._counters = TrafficCounters(time.time())
            self._simulator = TrafficSimulator(
                self._router,
                self.catalog,
                self._counters,
                rate_per_second=self._initial_rate,
                flush_seconds=self.flush_seconds,
                seed=self.seed,
                on_flush=self._flush,
            )
            self._http.start()
            self.http_url = self._http.url
            self._simulator.start()
        except BaseException:
            self.stop()
            raise
        log.info("sandbox up: moto %s, http %s", self.endpoint_url, self.http_url)
        return self

    def stop(self) -> None:
        """Stop traffic first (its last flush still needs moto), then the servers."""
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
        self._http.stop()
        self._moto.stop()
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
        """The Airflow connection (JSON form, e.g. for ``AIRFLOW_CONN_AWS_DEFAULT``) aimed at moto."""
        return json.dumps(
            {
                "conn_type": "aws",
                "description": f"{conn_id}: bluegreen sandbox (moto at {self.endpoint_url})",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
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

    def release_sha256(self, name: str) -> str:
        """The CodeSha256 Lambda reports for release ``name``."""
        return self.catalog[name].sha256

    def stats(self) -> dict[str, Any]:
        """Requests and errors (5XX) per slot, with the same per function and the release it last ran."""
        return self._counters.snapshot()

    def weights(self) -> dict[str, int]:
        """Current Route53 weights of api.lego-mocs.com, read fresh."""
        return self._require(self._router).read_weights()

    def alarm_states(self) -> dict[str, str]:
        return self._require(self._evaluator).states()

    def status(self) -> dict[str, Any]:
        evaluator = self._require(self._evaluator)
        return {
            "endpoint_url": self.endpoint_url,
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
        }

    def health(self, slot: str) -> tuple[int, str]:
        """Run ``GET /health`` on the release behind the slot's alias now; (status, body)."""
        router = self._require(self._router)
        try:
            version, sha = router.resolve_now(HEALTH_FUNCTION, slot)
        except (RouteResolutionError, BotoCoreError, ClientError) as exc:
            return 502, json.dumps({"message": str(exc)})
        release = self.catalog.by_sha(sha)
        if release is None:
            return 502, json.dumps({"message": f"unknown code {sha} behind {HEALTH_FUNCTION}:{version}"})
        outcome = invoke(
            release,
            function=HEALTH_FUNCTION,
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
        metrics.publish(self.clients(), bucket)
        self._require(self._evaluator).evaluate()
        with self._flushed:
            self._flushes += 1
            self._flushed.notify_all()

    @staticmethod
    def _require(component: Any) -> Any:
        if component is None:
            raise RuntimeError("sandbox is not started")
        return component
