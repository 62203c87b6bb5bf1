"""Watch a traffic step from the triggerer: while Route53 propagates it, through its soak, and after promotion.

The waits of a canary are long (5 and 10 minutes in the story, 24 h of retention), so they run here
and hold no worker slot. Each poll reads AWS afresh through :class:`bluegreen_provider.soak.SoakWatch`
and a breach is reported at the first poll that sees it: the rollback starts as soon as the evidence
exists, also before the change that started the step is INSYNC.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from bluegreen_provider.soak import Soak, SoakWatch, hms

MODES = ("propagation", "soak", "guard")


def _config_errors() -> tuple[type[Exception], ...]:
    """Problems a retry cannot fix: a deleted alarm or health check, a query CloudWatch rejects.

    Imported when a watch runs (on the triggerer), not when a DAG file that defers to it is parsed.
    """
    from bluegreen_provider.hooks.cloudwatch import MetricQueryError, UnknownAlarmError
    from bluegreen_provider.hooks.route53 import HealthCheckError

    return (UnknownAlarmError, MetricQueryError, HealthCheckError)


def _now() -> datetime:
    return datetime.now(UTC)


HOOK_REUSE_SECONDS = 900


def shared_hook(kind: type, aws_conn_id: str | None, region_name: str | None) -> Any:
    """One hook (one boto3 session and client) per connection for all soaks in a triggerer.

    A hook per trigger costs ~18 MiB and a slow session start each; sharing lets one triggerer watch
    many deployments. The key holds a digest of the connection as it is now and a 15-minute epoch,
    so an edited connection, or refreshed credentials, take effect without a restart.
    """
    digest = ""
    if aws_conn_id:
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(aws_conn_id)
            digest = hashlib.sha256(repr((conn.login, conn.password, conn.extra)).encode()).hexdigest()
        except Exception:  # no such connection: the hook falls back to the default credential chain
            digest = "default-credentials"
    return _shared_hook(kind, aws_conn_id, region_name, digest, int(time.time() // HOOK_REUSE_SECONDS))


@functools.lru_cache(maxsize=64)
def _shared_hook(kind: type, aws_conn_id: str | None, region_name: str | None, digest: str, epoch: int) -> Any:
    return kind(aws_conn_id=aws_conn_id, region_name=region_name)


class ErrorRateTrigger(BaseTrigger):
    """
    Poll a step's rules every ``rules.poll_interval`` seconds until the step's wait ends, or one breaks.

    Modes:

    - ``propagation``: from the weight change until Route53 reports ``change_id`` INSYNC; event
      ``{"status": "insync", "insync_at", "change_id"}``, or ``{"status": "timeout"}`` after
      ``timeout_seconds``.
    - ``soak``: until the soak's verdict time (clock end plus the settle wait); event ``clean``,
      ``no_data`` or ``degraded`` with a ``summary``.
    - ``guard``: until the soak's clock ends (the end of the retention); event ``clean``.

    In every mode a breach ends the watch at once: ``{"status": "breach", "rule", "message",
    "figures", "samples", "detected_at"}``; ``{"status": "error", "message"}`` after
    ``max_consecutive_errors`` failed polls in a row, or at once for an error a retry cannot fix.
    Deadlines are absolute, so a trigger rebuilt on another triggerer keeps the same clock.

    :param soak: :meth:`bluegreen_provider.soak.Soak.to_dict` of the step.
    :param mode: ``propagation``, ``soak`` or ``guard``.
    :param change_id: the Route53 change whose INSYNC ends a ``propagation`` watch.
    :param timeout_seconds: how long a ``propagation`` watch waits for INSYNC, from ``watch_from``.
    :param aws_conn_id: Airflow connection for AWS.
    :param region_name: AWS region of the metrics and alarms.
    """

    def __init__(
        self,
        *,
        soak: dict[str, Any],
        mode: str = "soak",
        change_id: str | None = None,
        timeout_seconds: float = 300,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "propagation" and not change_id:
            raise ValueError("a propagation watch needs the change_id it waits for")
        self.soak = dict(soak)
        self.mode = mode
        self.change_id = change_id
        self.timeout_seconds = timeout_seconds
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "soak": self.soak,
                "mode": self.mode,
                "change_id": self.change_id,
                "timeout_seconds": self.timeout_seconds,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
            },
        )

    def watch(self) -> SoakWatch:
        from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
        from bluegreen_provider.hooks.route53 import Route53Hook

        soak = Soak.from_dict(self.soak)
        needs_route53 = bool(soak.health_check_id) or self.mode == "propagation"
        return SoakWatch(
            soak,
            cloudwatch=shared_hook(CloudWatchMetricsHook, self.aws_conn_id, self.region_name),
            route53=shared_hook(Route53Hook, self.aws_conn_id, self.region_name) if needs_route53 else None,
        )

    def deadline(self, watch: SoakWatch) -> datetime:
        """When this watch ends without a breach."""
        soak = watch.soak
        if self.mode == "propagation":
            return soak.watch_from + timedelta(seconds=self.timeout_seconds)
        end = soak.verdict_at if self.mode == "soak" else soak.soak_end
        if end is None:
            raise ValueError(f"a {self.mode} watch needs its clock_start")
        return end

    def step(self, watch: SoakWatch, now: datetime) -> dict[str, Any] | None:
        """One poll: a breach, the end of the wait, or None to poll again."""
        if self.mode == "propagation":
            insync = watch.route53.get_change_status(self.change_id) == "INSYNC"
            breach = watch.poll(now)
            if breach is not None:
                return breach
            if insync:
                return {"status": "insync", "insync_at": now.isoformat(), "change_id": self.change_id}
            if now >= self.deadline(watch):
                return {
                    "status": "timeout",
                    "change_id": self.change_id,
                    "message": f"Route53 change {self.change_id} still PENDING after {self.timeout_seconds:g}s",
                }
            return None
        breach = watch.poll(now)
        if breach is not None or now < self.deadline(watch):
            return breach
        if self.mode == "soak":
            return watch.finish(now)
        candidate, baseline = watch.rates(watch.soak.watch_from, now)
        return {"status": "clean", "summary": watch.summary(candidate, baseline, None, now)}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = await asyncio.to_thread(self.watch)  # reads the connection: blocking I/O off the loop
        deadline = self.deadline(watch)
        interval = watch.rules.poll_interval
        errors: list[str] = []
        while True:
            now = _now()
            try:
                event = await asyncio.to_thread(self.step, watch, now)
            except _config_errors() as err:
                yield TriggerEvent(self._error(f"cannot watch the {self.mode}: {err}", watch))
                return
            except Exception as err:
                errors.append(f"{hms(now)} {type(err).__name__}: {err}")
                self.log.warning("%s poll failed (%d in a row): %s", self.mode, len(errors), err)
                if len(errors) >= watch.rules.max_consecutive_errors:
                    yield TriggerEvent(
                        self._error(
                            f"{len(errors)} polls in a row failed to read AWS; last: {errors[-1]}", watch, errors
                        )
                    )
                    return
            else:
                errors.clear()
                if event is not None:
                    self.log.info(
                        "%s of %s at %s %%: %s",
                        self.mode,
                        watch.soak.candidate.slot,
                        watch.soak.stage_pct,
                        event["status"],
                    )
                    yield TriggerEvent(event)
                    return
            # Polls keep their rhythm: the time a poll took comes off the wait before the next one.
            elapsed = (_now() - now).total_seconds()
            remaining = (deadline - _now()).total_seconds()
            wait = interval if remaining <= 0 else min(interval, remaining)
            await asyncio.sleep(max(0.0, wait - elapsed))

    @staticmethod
    def _error(message: str, watch: SoakWatch, errors: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            "status": "error",
            "message": message,
            "errors": list(errors),
            "samples": list(watch.samples),
            "detected_at": _now().isoformat(),
            "started_at": (watch.soak.clock_start or watch.soak.watch_from).isoformat(),
            "stage_pct": watch.soak.stage_pct,
        }
