"""Which slot served how many requests and failures, per wall-clock second.

The moment the last request reached a slot is what a rollback or a promotion is really measured by
(DNS caches keep sending traffic after Route53 has changed), so it is kept exactly, not per second.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from bluegreen_provider.sandbox.world import SLOTS


class ServedSeries:
    """Per-second requests/failures per slot (the last ``keep_seconds``) and each slot's last request."""

    def __init__(self, clock: Callable[[], float] = time.time, keep_seconds: int = 3600) -> None:
        self._clock = clock
        self._keep = keep_seconds
        self._lock = threading.Lock()
        self._seconds: OrderedDict[int, dict[str, list[int]]] = OrderedDict()
        self._last: dict[str, float] = {}
        self._last_failure: dict[str, float] = {}

    def record(self, slot: str, *, failed: bool, at: float | None = None) -> None:
        now = self._clock() if at is None else at
        second = int(now)
        with self._lock:
            row = self._seconds.get(second)
            if row is None:
                row = self._seconds[second] = {}
                while self._seconds and next(iter(self._seconds)) < second - self._keep:
                    self._seconds.popitem(last=False)
            counts = row.setdefault(slot, [0, 0])
            counts[0] += 1
            counts[1] += int(failed)
            self._last[slot] = max(now, self._last.get(slot, now))
            if failed:
                self._last_failure[slot] = max(now, self._last_failure.get(slot, now))

    def last_request_at(self, slot: str) -> float | None:
        with self._lock:
            return self._last.get(slot)

    def last_failure_at(self, slot: str) -> float | None:
        with self._lock:
            return self._last_failure.get(slot)

    def series(self, since: float | None = None) -> list[dict[str, Any]]:
        """``[{"second": s, "blue": {"requests": n, "failures": f}, "green": {...}}, ...]``, oldest first."""
        with self._lock:
            rows = [(s, {k: list(v) for k, v in row.items()}) for s, row in self._seconds.items()]
        start = None if since is None else int(since)
        return [
            {
                "second": second,
                **{
                    slot: {"requests": row.get(slot, [0, 0])[0], "failures": row.get(slot, [0, 0])[1]} for slot in SLOTS
                },
            }
            for second, row in rows
            if start is None or second >= start
        ]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                slot: {"last_request_at": self._last.get(slot), "last_failure_at": self._last_failure.get(slot)}
                for slot in SLOTS
            }
