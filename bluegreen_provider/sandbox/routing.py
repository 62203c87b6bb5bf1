"""Where a request to api.lego-mocs.com lands: Route53 weights pick a slot, the slot's Lambda alias
picks a version, and the version's CodeSha256 names the code that runs.

Weights and aliases are re-read from moto at most once per ``refresh_seconds`` so a change made by a
deployment shows up within about a second without one API call per request. (Traffic takes its
weights from the resolvers in :mod:`dns`; the router's weights are their fallback before any change.)
A published version's code never changes, so its CodeSha256 is cached for good.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bluegreen_provider.sandbox.clients import Clients
from bluegreen_provider.sandbox.world import RECORD_NAME, SLOTS, alias_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AliasTarget:
    """An alias's primary version plus any weighted extra versions (Lambda's RoutingConfig)."""

    version: str
    additional: tuple[tuple[str, float], ...] = ()

    def pick(self, rng: random.Random) -> str:
        roll = rng.random()
        for version, weight in self.additional:
            if roll < weight:
                return version
            roll -= weight
        return self.version


class RouteResolutionError(Exception):
    """A request cannot be routed to code (missing alias, version or record)."""


class Router:
    """Resolves slot weights and the code behind each slot's alias, with short-lived caches."""

    def __init__(
        self,
        clients: Clients,
        hosted_zone_id: str,
        functions: tuple[str, ...],
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._zone_id = hosted_zone_id
        self._functions = functions
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._weights: dict[str, int] = {}
        self._weights_at = -float("inf")
        self._aliases: dict[tuple[str, str], AliasTarget] = {}
        self._aliases_at = -float("inf")
        self._sha_by_version: dict[tuple[str, str], str] = {}

    def weights(self) -> dict[str, int]:
        """Current weights of the slots' record sets (cached up to ``refresh_seconds``)."""
        with self._lock:
            if self._clock() - self._weights_at >= self._refresh:
                self._weights = self.read_weights()
                self._weights_at = self._clock()
            return dict(self._weights)

    def read_weights(self) -> dict[str, int]:
        records = self._clients("route53").list_resource_record_sets(
            HostedZoneId=self._zone_id, StartRecordName=RECORD_NAME, StartRecordType="A"
        )["ResourceRecordSets"]
        return {
            record["SetIdentifier"]: int(record["Weight"])
            for record in records
            if record["Name"].rstrip(".") == RECORD_NAME
            and record["Type"] == "A"
            and record.get("SetIdentifier") in SLOTS
            and "Weight" in record
        }

    @staticmethod
    def pick_slot(weights: dict[str, int], rng: random.Random) -> str | None:
        """Route53's weighted choice (see :func:`bluegreen_provider.sandbox.dns.pick_slot`)."""
        from bluegreen_provider.sandbox.dns import pick_slot

        return pick_slot(weights, rng)

    def target(self, function: str, slot: str) -> AliasTarget:
        """The slot alias's target (cached up to ``refresh_seconds``)."""
        return self.alias_target(function, alias_name(slot))

    def alias_target(self, function: str, alias: str) -> AliasTarget:
        """Any alias's target, routing included (cached up to ``refresh_seconds``)."""
        with self._lock:
            if self._clock() - self._aliases_at >= self._refresh:
                self._aliases = self._read_aliases()
                self._aliases_at = self._clock()
            target = self._aliases.get((function, alias))
        if target is None:
            raise RouteResolutionError(f"{function} has no alias {alias}")
        return target

    def slot_serving(self, function: str, version: str) -> str | None:
        """The slot whose alias serves ``version`` of ``function`` (blue first when both do), or None."""
        for slot in SLOTS:
            try:
                if self.target(function, slot).version == version:
                    return slot
            except RouteResolutionError:
                continue
        return None

    def code_sha(self, function: str, version: str, *, fresh: bool = False) -> str:
        """CodeSha256 of a function version; ``$LATEST`` (mutable) is never cached."""
        key = (function, version)
        with self._lock:
            cached = self._sha_by_version.get(key)
        if cached is not None and not fresh:
            return cached
        lambda_ = self._clients("lambda")
        try:
            sha = lambda_.get_function(FunctionName=function, Qualifier=version)["Configuration"]["CodeSha256"]
        except lambda_.exceptions.ResourceNotFoundException as exc:
            raise RouteResolutionError(f"{function} has no version {version}") from exc
        if version != "$LATEST":
            with self._lock:
                self._sha_by_version[key] = sha
        return sha

    def resolve_now(self, function: str, slot: str) -> tuple[str, str]:
        """(version, CodeSha256) behind the slot alias, read fresh: a health check must see the latest."""
        lambda_ = self._clients("lambda")
        try:
            alias = lambda_.get_alias(FunctionName=function, Name=alias_name(slot))
        except lambda_.exceptions.ResourceNotFoundException as exc:
            raise RouteResolutionError(f"{function} has no alias {alias_name(slot)}") from exc
        version = alias["FunctionVersion"]
        return version, self.code_sha(function, version)

    def _read_aliases(self) -> dict[tuple[str, str], AliasTarget]:
        lambda_ = self._clients("lambda")
        targets: dict[tuple[str, str], AliasTarget] = {}
        for function in self._functions:
            try:
                aliases = lambda_.list_aliases(FunctionName=function)["Aliases"]
            except lambda_.exceptions.ResourceNotFoundException:
                continue
            for alias in aliases:
                extra = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
                targets[(function, alias["Name"])] = AliasTarget(
                    alias["FunctionVersion"], tuple((v, float(w)) for v, w in sorted(extra.items()))
                )
        return targets
