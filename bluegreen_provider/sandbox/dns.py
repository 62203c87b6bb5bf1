"""What the clients of api.lego-mocs.com see: Route53 propagation and caching resolvers.

Propagation model. A committed change batch is ``PENDING`` from ``submitted_at`` to ``insync_at``
(see :mod:`route53_rules`). Each resolver has a fixed random fraction ``u`` in [0, 1); it sees a change
once ``submitted_at + u * (insync_at - submitted_at) <= now``. So the share of resolvers that already
answer with the new record sets grows linearly from 0 % at submission to 100 % at ``INSYNC``, and a
resolver that has seen a change never goes back to an older one. Before the zone has any recorded
change the resolvers read moto directly.

Caching model. Traffic comes from a fixed population of clients, each behind its own resolver cache.
A request picks a client; the client resolves only when its cached answer has expired, then picks one
weighted record set (as a resolver caches the one answer Route53 gave it) and keeps it for the TTL. A
shift to 0 % therefore keeps reaching the old slot until the last cached answer expires.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bluegreen_provider.sandbox.route53_rules import CHANGES, AppliedChange, ChangeHistory
from bluegreen_provider.sandbox.world import RECORD_NAME, SLOTS


def weights_of(record_sets: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Weights of the record's blue/green weighted A sets in a zone snapshot."""
    return {
        str(record["SetIdentifier"]): int(record["Weight"])
        for record in record_sets
        if str(record.get("Name", "")).rstrip(".").lower() == RECORD_NAME
        and record.get("Type") == "A"
        and record.get("SetIdentifier") in SLOTS
        and record.get("Weight") is not None
    }


def answer_weights(
    record_sets: Iterable[Mapping[str, Any]], is_healthy: Callable[[str], bool] | None = None
) -> dict[str, int]:
    """The weights Route53 answers with for weighted records with health checks (Route 53 Developer
    Guide, "Weighted routing" and "How health checks work in simple Amazon Route 53 configurations").

    A set without a health check is always healthy. Route53 first considers only the sets of weight
    > 0: the healthy ones share by weight. If every set of weight > 0 is unhealthy, it considers the
    sets of weight 0: the healthy ones share equally (weight 1 each here). If no set is healthy, it
    answers as if every set were healthy (the weights as they are). ``is_healthy`` None: every check
    is healthy (moto's checks, the ``fast`` profile).
    """
    records = [r for r in record_sets if r.get("SetIdentifier") in weights_of([r])]
    weights = weights_of(records)
    if is_healthy is None:
        return weights
    down = {
        str(r["SetIdentifier"]) for r in records if r.get("HealthCheckId") and not is_healthy(str(r["HealthCheckId"]))
    }
    weighted = {slot: w for slot, w in weights.items() if w > 0 and slot not in down}
    if weighted:
        return weighted
    zero = {slot: 1 for slot, w in weights.items() if w == 0 and slot not in down}
    return zero or weights


def visible_change(changes: Sequence[AppliedChange], u: float, now: float) -> AppliedChange | None:
    """The latest change a resolver with fraction ``u`` sees at ``now`` (changes oldest first)."""
    for change in reversed(changes):
        if change.submitted_at + u * (change.insync_at - change.submitted_at) <= now:
            return change
    return None


def pick_slot(weights: Mapping[str, int], rng: random.Random) -> str | None:
    """Route53's weighted choice: weight 0 gets nothing unless every set is 0, then all share equally."""
    slots = [slot for slot in SLOTS if slot in weights]
    if not slots:
        return None
    total = sum(weights[slot] for slot in slots)
    if total == 0:
        return rng.choice(slots)
    roll = rng.uniform(0, total)
    for slot in slots:
        roll -= weights[slot]
        if roll < 0:
            return slot
    return next(slot for slot in reversed(slots) if weights[slot] > 0)


@dataclass
class CachedAnswer:
    """One client's resolver: its propagation fraction and the answer it holds until ``expires``."""

    u: float
    slot: str | None = None
    expires: float = -float("inf")


class ResolverPopulation:
    """``clients`` resolvers with their own caches; ``pick`` answers where one request goes."""

    def __init__(
        self,
        zone_id: str,
        *,
        clients: int,
        ttl_seconds: float,
        seed: int,
        fallback: Callable[[], dict[str, int]],
        history: ChangeHistory = CHANGES,
        clock: Callable[[], float] = time.time,
        is_healthy: Callable[[str], bool] | None = None,
    ) -> None:
        if clients < 1 or ttl_seconds <= 0:
            raise ValueError("clients must be >= 1 and ttl_seconds > 0")
        self._zone_id = zone_id
        self._ttl = ttl_seconds
        self._fallback = fallback
        self._history = history
        self._clock = clock
        self._is_healthy = is_healthy
        fractions = random.Random(f"resolvers-{seed}")
        self._clients = [CachedAnswer(u=fractions.random()) for _ in range(clients)]
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self._clients)

    def fraction(self, index: int) -> float:
        return self._clients[index].u

    def weights_seen(self, u: float, now: float | None = None) -> dict[str, int]:
        """The weights a resolver with fraction ``u`` is served at ``now``."""
        now = self._clock() if now is None else now
        change = visible_change(self._history.zone(self._zone_id), u, now)
        return self._fallback() if change is None else answer_weights(change.record_sets, self._is_healthy)

    def share_seeing_latest(self, now: float | None = None) -> float:
        """Fraction of the population's resolvers that already answer with the latest change."""
        now = self._clock() if now is None else now
        changes = self._history.zone(self._zone_id)
        if not changes:
            return 1.0
        latest = changes[-1]
        seen = sum(1 for c in self._clients if visible_change(changes, c.u, now) is latest)
        return seen / len(self._clients)

    def pick(self, rng: random.Random) -> tuple[int, str | None]:
        """(client index, slot) for one request: the client's cached answer, re-resolved once expired."""
        index = rng.randrange(len(self._clients))
        client = self._clients[index]
        with self._lock:
            now = self._clock()
            if now >= client.expires:
                client.slot = pick_slot(self.weights_seen(client.u, now), rng)
                client.expires = now + self._ttl
            return index, client.slot

    def flush_caches(self) -> None:
        """Forget every cached answer (tests, and a changed TTL)."""
        with self._lock:
            for client in self._clients:
                client.expires = -float("inf")
