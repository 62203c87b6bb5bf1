"""Probe a slot's health URL from the triggerer until it answers 2xx enough times in a row."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

RECENT = 5


def probe_once(url: str, timeout: float) -> dict[str, Any]:
    """One GET; the status code, or the network error in words (status None)."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": "bluegreen-health-probe"})
    status: int | None
    error = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
            response.read(1024)
    except urllib.error.HTTPError as err:
        status = err.code
    except (urllib.error.URLError, OSError) as err:
        status = None
        reason = getattr(err, "reason", err)
        error = "timeout" if isinstance(reason, TimeoutError) else f"{type(reason).__name__}: {reason}"
    return {
        "t": datetime.now(UTC).isoformat(),
        "status": status,
        "error": error,
        "ms": round((time.monotonic() - started) * 1000),
    }


def describe_failures(recent: list[dict[str, Any]]) -> str:
    """'3 of last 5 probes returned 503' or '2 of last 5 probes returned 503 (1), timeout (1)'."""
    bad = [str(p["status"]) if p["status"] is not None else p["error"] for p in recent if not _ok(p)]
    if not bad:
        return f"the last {len(recent)} probes succeeded"
    counts = Counter(bad)
    what = next(iter(counts)) if len(counts) == 1 else ", ".join(f"{label} ({n})" for label, n in counts.most_common())
    return f"{len(bad)} of last {len(recent)} probes returned {what}"


def _ok(probe: dict[str, Any]) -> bool:
    return probe["status"] is not None and 200 <= probe["status"] < 300


class HealthProbeTrigger(BaseTrigger):
    """
    GET ``url`` every ``interval_seconds`` until ``consecutive_successes`` 2xx in a row, or the deadline.

    Events: ``{"status": "success"|"failure", "url", "attempts", "successes", "last_status",
    "duration_s", "recent", "message"}``. The deadline is absolute, so a restarted triggerer does not
    grant the candidate extra time.

    :param url: the health URL of the candidate slot.
    :param consecutive_successes: 2xx answers needed in a row.
    :param started_at: ISO timestamp the probing started.
    :param deadline_at: ISO timestamp after which the probe fails.
    :param interval_seconds: delay between probes.
    :param request_timeout_seconds: timeout of each request.
    """

    def __init__(
        self,
        *,
        url: str,
        consecutive_successes: int,
        started_at: str,
        deadline_at: str,
        interval_seconds: float,
        request_timeout_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.consecutive_successes = consecutive_successes
        self.started_at = started_at
        self.deadline_at = deadline_at
        self.interval_seconds = interval_seconds
        self.request_timeout_seconds = request_timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "url": self.url,
                "consecutive_successes": self.consecutive_successes,
                "started_at": self.started_at,
                "deadline_at": self.deadline_at,
                "interval_seconds": self.interval_seconds,
                "request_timeout_seconds": self.request_timeout_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = datetime.fromisoformat(self.started_at)
        deadline = datetime.fromisoformat(self.deadline_at)
        recent: list[dict[str, Any]] = []
        attempts = successes = streak = best = 0
        while True:
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            probe = await asyncio.to_thread(
                probe_once, self.url, max(0.5, min(self.request_timeout_seconds, remaining))
            )
            attempts += 1
            recent = [*recent, probe][-RECENT:]
            if _ok(probe):
                successes += 1
                streak += 1
            else:
                streak = 0
                self.log.info("Health probe %s: %s", self.url, probe["status"] or probe["error"])
            best = max(best, streak)
            done = streak >= self.consecutive_successes
            now = datetime.now(UTC)
            if done or (now - deadline).total_seconds() + self.interval_seconds > 0:
                elapsed = (now - started).total_seconds()
                message = (
                    f"{streak} consecutive 2xx in {elapsed:.1f} s"
                    if done
                    else f"{describe_failures(recent)}; needed {self.consecutive_successes} consecutive 2xx "
                    f"by {deadline.strftime('%H:%M:%S')}, best run was {best} ({attempts} probes in "
                    f"{elapsed:.0f} s)"
                )
                yield TriggerEvent(
                    {
                        "status": "success" if done else "failure",
                        "url": self.url,
                        "attempts": attempts,
                        "successes": successes,
                        "last_status": probe["status"],
                        "last_error": probe["error"],
                        "duration_s": round(elapsed, 1),
                        "recent": recent,
                        "message": message,
                    }
                )
                return
            await asyncio.sleep(self.interval_seconds)
