"""BASELINE, not product code: the story's own deploy script and rollback monitor, re-implemented.

``scripts/blue-green-deploy.sh`` in the story shifts 10 %, sleeps 5 minutes, reads a 5XX sum it does
not act on ("Additional error rate validation logic" is empty), shifts 50 %, sleeps 10 minutes, waits
for a person to press Enter, and shifts 100 %. No step looks at what happened before it; ``set -e``
only stops on a failed command. Rollback is a separate Lambda (``rollback-monitor.ts``) that an
EventBridge rule runs once a minute: if any of the three alarms is in ALARM it UPSERTs blue 100 /
green 0, whatever the script is doing.

This module does exactly that against the sandbox, with every wait multiplied by ``scale``, so the
blast radius of bluegreen can be compared with it on the same traffic and the same faulty release.
The person answers the approval at once (the most favourable case for the script's failures).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import LEGO_ALARMS

SOAK_10_SECONDS = 300.0
SOAK_50_SECONDS = 600.0
MONITOR_EVERY_SECONDS = 60.0


def _change(client: Any, zone_id: str, blue: int, green: int, comment: str) -> None:
    from bluegreen_provider.sandbox.world import weighted_record

    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Comment": comment,
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("blue", blue)},
                {"Action": "UPSERT", "ResourceRecordSet": weighted_record("green", green)},
            ],
        },
    )


class StoryDeployment:
    """The script (one thread) and the once-a-minute monitor (another), timed in scaled seconds."""

    def __init__(self, sandbox: Any, scale: float) -> None:
        self.sandbox = sandbox
        self.scale = scale
        self.events: list[tuple[float, str]] = []  # (monotonic time, what happened)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _log(self, what: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), what))

    def script(self) -> None:
        """Steps 4-8 of blue-green-deploy.sh (deploy, migrations and the health check came before)."""
        route53 = self.sandbox.clients()("route53")
        cloudwatch = self.sandbox.clients()("cloudwatch")
        zone = self.sandbox.hosted_zone_id
        _change(route53, zone, 90, 10, "Shift 10% traffic to green environment")
        self._log("script: shift 10")
        time.sleep(SOAK_10_SECONDS * self.scale)
        now = datetime.now(UTC)
        window = max(1, round(300 * self.scale))
        datapoints = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApiGateway",
            MetricName="5XXError",
            Dimensions=[{"Name": "ApiId", "Value": "green"}],  # the script's own dimension
            Statistics=["Sum"],
            StartTime=now - timedelta(seconds=window),
            EndTime=now,
            Period=window,
        )["Datapoints"]
        # "if [ $ERROR_RATE != 0.0 ] ...; then echo Evaluating...; fi": printed, never acted on.
        self._log(f"script: 5XX sum read ({datapoints[0]['Sum'] if datapoints else 'None'}), not acted on")
        _change(route53, zone, 50, 50, "Shift 50% traffic to green environment")
        self._log("script: shift 50")
        time.sleep(SOAK_50_SECONDS * self.scale)
        self._log("script: approval answered at once")
        _change(route53, zone, 0, 100, "Shift 100% traffic to green environment")
        self._log("script: shift 100")

    def monitor(self) -> None:
        """rollback-monitor.ts every minute (scaled): any critical alarm in ALARM -> blue 100 / green 0."""
        route53 = self.sandbox.clients()("route53")
        cloudwatch = self.sandbox.clients()("cloudwatch")
        while not self._stop.wait(MONITOR_EVERY_SECONDS * self.scale):
            found = cloudwatch.describe_alarms(AlarmNames=list(LEGO_ALARMS), StateValue="ALARM")["MetricAlarms"]
            # CloudWatch applies both filters; moto ignores StateValue when AlarmNames is given.
            firing = [a for a in found if a["StateValue"] == "ALARM"]
            if firing:
                moved = bool(self.sandbox.weights().get("green"))
                _change(route53, self.sandbox.hosted_zone_id, 100, 0, "Automatic rollback due to critical alarms")
                names = ", ".join(a["AlarmName"] for a in firing)
                if moved:
                    self._log(f"monitor: rollback ({names}; {firing[0]['StateReason'][:160]})")
                else:
                    self._log(f"monitor (no change): rollback ({names})")

    def run(self, settle_seconds: float) -> list[tuple[float, str]]:
        """Run the script to its end, keep the monitor on for ``settle_seconds`` more, then stop it."""
        monitor = threading.Thread(target=self.monitor, name="story-monitor", daemon=True)
        monitor.start()
        try:
            self.script()
            deadline = time.monotonic() + settle_seconds
            while time.monotonic() < deadline:
                if self.sandbox.weights().get("green") == 0 and any(
                    e.startswith("monitor:") for _, e in self.events[-1:]
                ):
                    break
                time.sleep(0.2)
        finally:
            self._stop.set()
            monitor.join(timeout=30)
        return list(self.events)
