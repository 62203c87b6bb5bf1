"""Route53 weighted records as the traffic router: the split is the weights of the record's two sets."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bluegreen_provider.routers.base import Change, RecordKey, Traffic, TrafficRouter

if TYPE_CHECKING:
    from bluegreen_provider.state import DeploymentState


class Route53WeightedRouter(TrafficRouter):
    """The split is the weights of the record's two weighted sets, changed in the state's own batch.

    A change reaches resolvers over up to a minute (INSYNC), and clients keep a cached answer for
    the record's TTL: a drained slot serves until the last cache expires.
    """

    kind = "route53"
    source = "Route53"

    def listed_records(self) -> list[RecordKey]:
        return [(self.spec.record_name, self.spec.record_type)]

    def observe(self, listed: Mapping[RecordKey, list[dict]], state: DeploymentState | None) -> Traffic:
        spec = self.spec
        sets = {r["SetIdentifier"]: r for r in listed[(spec.record_name, spec.record_type)] if "Weight" in r}
        missing = [s for s in self.set_ids if s not in sets]
        if missing:
            from bluegreen_provider.state import StateError

            raise StateError(
                f"weighted set(s) {missing} of {spec.record_name} not found in zone {self.zone_id}; "
                f"existing sets: {sorted(sets)}"
            )
        records = {s: sets[s] for s in self.set_ids}
        return Traffic(split={s: int(r["Weight"]) for s, r in records.items()}, records=records)

    def changes(self, traffic: Traffic, nxt: DeploymentState, health_checks: Mapping[str, str]) -> list[Change]:
        changes: list[Change] = []
        for set_id in self.set_ids:
            current = traffic.records[set_id]
            successor = copy.deepcopy(current)
            successor["Weight"] = nxt.split[set_id]
            successor.pop("HealthCheckId", None)
            if set_id in health_checks:
                successor["HealthCheckId"] = health_checks[set_id]
            changes.append(("DELETE", current))
            changes.append(("CREATE", successor))
        return changes

    def read_split(self) -> dict[str, int]:
        spec = self.spec
        return self.route53.get_split(self.zone_id, spec.record_name, spec.record_type, self.set_ids)

    def propagated(self, change_id: str) -> bool:
        return self.route53.get_change_status(change_id) == "INSYNC"
