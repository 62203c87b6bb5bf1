"""Watch one soak from the triggerer: error rate, CloudWatch alarms and the Route53 health check.

The soak is the long wait of a canary stage (5 and 10 minutes in the story), so it runs here and
holds no worker slot. Each poll reads AWS afresh and a breach is reported at the first poll that sees
it, not at the end of the soak: the rollback starts as soon as the evidence exists.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from bluegreen_provider.hooks.cloudwatch import (
    CloudWatchMetricsHook,
    ErrorRate,
    ErrorRateQuery,
    MetricQueryError,
    UnknownAlarmError,
)
from bluegreen_provider.hooks.route53 import HealthCheckError, Route53Hook

MAX_SAMPLES = 120
# Problems a retry cannot fix: a deleted alarm or health check, a query CloudWatch rejects.
_CONFIG_ERRORS = (UnknownAlarmError, MetricQueryError, HealthCheckError)


def _now() -> datetime:
    return datetime.now(UTC)


def _hms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


class SoakWatch:
    """The rules of one soak, evaluated synchronously against the hooks.

    The trigger calls it from a thread at every poll; the sensor calls it inline when a stage has no
    soak (``soak_seconds=0``). Results are JSON-able event payloads.
    """

    def __init__(
        self,
        *,
        query: ErrorRateQuery,
        cloudwatch: CloudWatchMetricsHook,
        route53: Route53Hook | None,
        soak_start: datetime,
        soak_end: datetime,
        stage_pct: int,
        slot: str,
        threshold_pct: float,
        min_requests: int,
        window_seconds: int,
        period_seconds: int,
        alarm_names: Sequence[str] = (),
        ignored_alarms: Sequence[str] = (),
        ignored_since: datetime | None = None,
        health_check_id: str | None = None,
    ) -> None:
        self.query = query
        self.cloudwatch = cloudwatch
        self.route53 = route53
        self.soak_start = soak_start
        self.soak_end = soak_end
        self.stage_pct = stage_pct
        self.slot = slot
        self.threshold_pct = threshold_pct
        self.min_requests = min_requests
        self.window = timedelta(seconds=window_seconds)
        self.period_seconds = period_seconds
        self.alarm_names = list(alarm_names)
        self.ignored_alarms = set(ignored_alarms)
        self.ignored_since = ignored_since or soak_start
        self.health_check_id = health_check_id
        self.samples: list[dict[str, Any]] = []
        self._stride = 1
        self._polls = 0
        self.max_rate_pct: float | None = None
        self.alarms_seen: set[str] = set()

    # -- one poll -------------------------------------------------------------------------------
    def poll(self, now: datetime) -> dict[str, Any] | None:
        """Check every rule once; return a breach event, or None while the soak is clean."""
        return self._check_error_rate(now) or self._check_alarms(now) or self._check_health(now)

    def _check_error_rate(self, now: datetime) -> dict[str, Any] | None:
        start = max(self.soak_start, now - self.window)
        if (now - start).total_seconds() < 1:
            return None  # CloudWatch needs at least one second between StartTime and EndTime
        rate = self.cloudwatch.error_rate(
            self.query, start=start, end=now, period_seconds=self.period_seconds, min_requests=self.min_requests
        )
        self._add_sample(now, rate)
        if rate.enough_data and rate.rate_pct is not None:
            self.max_rate_pct = max(self.max_rate_pct or 0.0, rate.rate_pct)
            if rate.rate_pct > self.threshold_pct:
                return self._rate_breach(rate, now, "")
        return None

    def _rate_breach(self, rate: ErrorRate, now: datetime, scope: str) -> dict[str, Any]:
        message = (
            f"error rate {rate.rate_pct:.1f} % > {self.threshold_pct:.1f} % on {self.slot}{scope} "
            f"({_num(rate.errors)} errors / {_num(rate.requests)} requests, "
            f"{_hms(rate.start)}-{_hms(rate.end)})"
        )
        figures = {**rate.to_dict(), "threshold_pct": self.threshold_pct, "min_requests": self.min_requests}
        return self._breach("error_rate", message, figures, now)

    def _check_alarms(self, now: datetime) -> dict[str, Any] | None:
        if not self.alarm_names:
            return None
        firing = []
        for alarm in self.cloudwatch.alarms_in_alarm(self.alarm_names):
            self.alarms_seen.add(alarm.name)
            refired = alarm.updated_at is not None and alarm.updated_at > self.ignored_since
            if alarm.name not in self.ignored_alarms:
                firing.append((alarm, f"alarm {alarm.name} in ALARM: {alarm.reason}"))
            elif refired:
                firing.append(
                    (
                        alarm,
                        f"alarm {alarm.name} in ALARM again: it was already firing when the deployment was "
                        f"planned and changed state at {_hms(alarm.updated_at)}: {alarm.reason}",
                    )
                )
        if not firing:
            return None
        figures = {
            "alarms": [
                {
                    "name": a.name,
                    "state": a.state,
                    "reason": a.reason,
                    "updated_at": a.updated_at.isoformat() if a.updated_at else None,
                }
                for a, _ in firing
            ]
        }
        return self._breach("alarm", "; ".join(text for _, text in firing), figures, now)

    def _check_health(self, now: datetime) -> dict[str, Any] | None:
        if not self.health_check_id or self.route53 is None:
            return None
        status = self.route53.health_check_status(self.health_check_id)
        # No observations yet means "not known", not "unhealthy".
        if status.healthy or status.checkers == 0:
            return None
        figures = {
            "health_check_id": status.health_check_id,
            "checkers": status.checkers,
            "failing": status.failing,
            "detail": status.detail,
        }
        return self._breach(
            "health_check", f"Route53 health check {status.health_check_id} unhealthy: {status.detail}", figures, now
        )

    # -- end of soak ----------------------------------------------------------------------------
    def finish(self, now: datetime) -> dict[str, Any]:
        """Totals over the whole soak: a breach, ``clean`` or ``no_data``."""
        end = max(now, self.soak_start + timedelta(seconds=1))
        total = self.cloudwatch.error_rate(
            self.query,
            start=self.soak_start,
            end=end,
            period_seconds=self.period_seconds,
            min_requests=self.min_requests,
        )
        # Windows below min_requests are not judged one by one, but together they may be.
        if total.enough_data and total.rate_pct is not None and total.rate_pct > self.threshold_pct:
            return self._rate_breach(total, now, " over the whole soak")
        summary = {
            "stage_pct": self.stage_pct,
            "requests": total.requests,
            "errors": total.errors,
            "rate_pct": total.rate_pct,
            "max_rate_pct": self.max_rate_pct,
            "alarms_seen": sorted(self.alarms_seen),
            "samples": list(self.samples),
            "started_at": self.soak_start.isoformat(),
            "ended_at": end.isoformat(),
            "duration_s": round((end - self.soak_start).total_seconds(), 1),
        }
        if not total.enough_data:
            return {
                "status": "no_data",
                "message": f"not enough data: {_num(total.requests)} requests < min {self.min_requests} "
                f"on {self.slot} between {_hms(self.soak_start)} and {_hms(end)}",
                "summary": summary,
            }
        return {"status": "clean", "summary": summary}

    # -- helpers --------------------------------------------------------------------------------
    def _breach(self, rule: str, message: str, figures: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "status": "breach",
            "rule": rule,
            "message": message,
            "figures": figures,
            "samples": list(self.samples),
            "detected_at": now.isoformat(),
            "started_at": self.soak_start.isoformat(),
            "stage_pct": self.stage_pct,
        }

    def _add_sample(self, now: datetime, rate: ErrorRate) -> None:
        """Keep at most ~MAX_SAMPLES evenly spread samples, and always the latest one."""
        sample = {"t": now.isoformat(), "requests": rate.requests, "errors": rate.errors, "rate_pct": rate.rate_pct}
        if self._polls % self._stride and self.samples:
            self.samples[-1] = sample
        else:
            self.samples.append(sample)
        self._polls += 1
        if len(self.samples) > MAX_SAMPLES:
            self.samples = self.samples[::2]
            self._stride *= 2


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
    Poll a soak's rules every ``poll_interval`` seconds until ``soak_end``, or until one breaks.

    Events: ``{"status": "breach", "rule": "error_rate"|"alarm"|"health_check", "message", "figures",
    "samples", "detected_at"}`` at the first poll that sees a breach; at the end of the soak
    ``{"status": "clean"|"no_data", "summary"}``; ``{"status": "error", "message"}`` after
    ``max_consecutive_errors`` failed polls in a row, or at once for an error a retry cannot fix.

    :param query: ``ErrorRateQuery.to_dict()`` of the candidate slot.
    :param soak_start: ISO timestamp; only traffic after it is judged.
    :param soak_end: ISO timestamp; absolute, so a restarted triggerer keeps the same clock.
    :param stage_pct: candidate share being soaked, for the summary.
    :param slot: candidate slot name, for messages.
    :param threshold_pct: breach when a window's error rate is above this.
    :param min_requests: a window (or the whole soak) with fewer requests is not judged.
    :param window_seconds: sliding window of each poll's error rate.
    :param period_seconds: CloudWatch aggregation period (1, 5, 10, 30 or a multiple of 60).
    :param poll_interval: seconds between polls.
    :param alarm_names: CloudWatch alarms that break the soak when in ALARM.
    :param ignored_alarms: alarms already firing when the deployment was planned; they break the soak
        only if they change state after ``ignored_since``.
    :param ignored_since: ISO timestamp the ignored alarms were recorded at.
    :param health_check_id: Route53 health check of the candidate set, if any.
    :param max_consecutive_errors: failed polls in a row before giving up.
    """

    def __init__(
        self,
        *,
        query: dict[str, Any],
        soak_start: str,
        soak_end: str,
        stage_pct: int,
        slot: str,
        threshold_pct: float,
        min_requests: int,
        window_seconds: int,
        period_seconds: int,
        poll_interval: float,
        alarm_names: Sequence[str] = (),
        ignored_alarms: Sequence[str] = (),
        ignored_since: str | None = None,
        health_check_id: str | None = None,
        max_consecutive_errors: int = 3,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ) -> None:
        super().__init__()
        self.query = dict(query)
        self.soak_start = soak_start
        self.soak_end = soak_end
        self.stage_pct = stage_pct
        self.slot = slot
        self.threshold_pct = threshold_pct
        self.min_requests = min_requests
        self.window_seconds = window_seconds
        self.period_seconds = period_seconds
        self.poll_interval = poll_interval
        self.alarm_names = list(alarm_names)
        self.ignored_alarms = list(ignored_alarms)
        self.ignored_since = ignored_since
        self.health_check_id = health_check_id
        self.max_consecutive_errors = max_consecutive_errors
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "query": self.query,
                "soak_start": self.soak_start,
                "soak_end": self.soak_end,
                "stage_pct": self.stage_pct,
                "slot": self.slot,
                "threshold_pct": self.threshold_pct,
                "min_requests": self.min_requests,
                "window_seconds": self.window_seconds,
                "period_seconds": self.period_seconds,
                "poll_interval": self.poll_interval,
                "alarm_names": self.alarm_names,
                "ignored_alarms": self.ignored_alarms,
                "ignored_since": self.ignored_since,
                "health_check_id": self.health_check_id,
                "max_consecutive_errors": self.max_consecutive_errors,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
            },
        )

    def watch(self) -> SoakWatch:
        route53 = shared_hook(Route53Hook, self.aws_conn_id, self.region_name) if self.health_check_id else None
        return SoakWatch(
            query=ErrorRateQuery.from_dict(self.query),
            cloudwatch=shared_hook(CloudWatchMetricsHook, self.aws_conn_id, self.region_name),
            route53=route53,
            soak_start=datetime.fromisoformat(self.soak_start),
            soak_end=datetime.fromisoformat(self.soak_end),
            stage_pct=self.stage_pct,
            slot=self.slot,
            threshold_pct=self.threshold_pct,
            min_requests=self.min_requests,
            window_seconds=self.window_seconds,
            period_seconds=self.period_seconds,
            alarm_names=self.alarm_names,
            ignored_alarms=self.ignored_alarms,
            ignored_since=datetime.fromisoformat(self.ignored_since) if self.ignored_since else None,
            health_check_id=self.health_check_id,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = await asyncio.to_thread(self.watch)  # reads the connection: blocking I/O off the loop
        errors: list[str] = []
        while True:
            now = _now()
            at_end = now >= watch.soak_end
            try:
                event = await asyncio.to_thread(watch.poll, now)
                if event is None and at_end:
                    event = await asyncio.to_thread(watch.finish, now)
            except _CONFIG_ERRORS as err:
                yield TriggerEvent(self._error(f"cannot watch the soak: {err}", watch))
                return
            except Exception as err:
                errors.append(f"{_hms(now)} {type(err).__name__}: {err}")
                self.log.warning("Soak poll failed (%d in a row): %s", len(errors), err)
                if len(errors) >= self.max_consecutive_errors:
                    yield TriggerEvent(
                        self._error(
                            f"{len(errors)} polls in a row failed to read AWS; last: {errors[-1]}", watch, errors
                        )
                    )
                    return
            else:
                errors.clear()
                if event is not None:
                    self.log.info("Soak of %s at %s %%: %s", self.slot, self.stage_pct, event["status"])
                    yield TriggerEvent(event)
                    return
            # Polls keep their rhythm: the time a poll took comes off the wait before the next one.
            elapsed = (_now() - now).total_seconds()
            remaining = (watch.soak_end - _now()).total_seconds()
            wait = self.poll_interval if remaining <= 0 else min(self.poll_interval, remaining)
            await asyncio.sleep(max(0.0, wait - elapsed))

    @staticmethod
    def _error(message: str, watch: SoakWatch, errors: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "status": "error",
            "message": message,
            "errors": list(errors),
            "samples": list(watch.samples),
            "detected_at": _now().isoformat(),
            "started_at": watch.soak_start.isoformat(),
            "stage_pct": watch.stage_pct,
        }
