"""The deployment plan: the spec plus what AWS says now (which slot is live, which versions run).

The plan task writes it once to XCom; every later task reads it instead of guessing, and re-reads
AWS for anything that may have changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bluegreen_provider.spec import DeploymentSpec


class PlanError(ValueError):
    """AWS is in a state this deployment must not start from; the message says what to do."""


@dataclass(frozen=True)
class Plan:
    """A resolved deployment: live and candidate slots, and the state found before anything changed."""

    spec: DeploymentSpec
    zone_id: str
    live: str
    candidate: str
    owner: str
    split_before: dict[str, int]
    live_versions: dict[str, str]
    candidate_versions_before: dict[str, str | None]
    alarms_firing: list[dict[str, str]] = field(default_factory=list)
    replaces_retained: dict[str, str] | None = None
    resumed: bool = False
    generation: int = 0
    warnings: list[str] = field(default_factory=list)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if not isinstance(data, Mapping) or "spec" not in data:
            raise PlanError(
                "no deployment plan found: the 'plan' task must run first in this DAG run "
                "(clear it together with this task)"
            )
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["spec"] = DeploymentSpec.from_dict(data["spec"])
        return cls(**fields)

    # -- convenience views used by the operators -------------------------------------------------
    @property
    def live_set(self) -> str:
        return self.spec.slots[self.live].set_identifier

    @property
    def candidate_set(self) -> str:
        return self.spec.slots[self.candidate].set_identifier

    @property
    def candidate_alias(self) -> str:
        return self.spec.slots[self.candidate].alias

    @property
    def live_alias(self) -> str:
        return self.spec.slots[self.live].alias

    def weights_for(self, candidate_pct: int) -> dict[str, int]:
        """Route53 weights by set identifier for a candidate share in percent."""
        return self.spec.route53_weights(self.candidate, candidate_pct)

    def candidate_pct(self, split_by_set: Mapping[str, int]) -> float:
        """The candidate's share of traffic in percent for a split read back from Route53."""
        total = sum(split_by_set.values())
        return 0.0 if total == 0 else 100.0 * split_by_set.get(self.candidate_set, 0) / total

    def describe_split(self, split_by_set: Mapping[str, int]) -> str:
        """A split as people read it: 'blue 90 / green 10'."""
        sets = {s.set_identifier: s.name for s in self.spec.slots.values()}
        return " / ".join(f"{sets.get(k, k)} {v}" for k, v in sorted(split_by_set.items()))
