"""The traffic router interface: how traffic moves between a service's two slots, one implementation per mechanism.

The deployment logic (which step, what the metrics say, who owns the service) lives in
:mod:`bluegreen_provider.state` and never knows which router runs. A router only answers four
things for the state core: what traffic reads now (:meth:`TrafficRouter.observe`), which record
changes join a transition's compare-and-swap batch (:meth:`TrafficRouter.changes`), what to apply
once that batch landed (:meth:`TrafficRouter.apply`), and whether a change has propagated
(:meth:`TrafficRouter.propagated`). A router instance serves one service in one region.

- :class:`~bluegreen_provider.routers.route53.Route53WeightedRouter` (``router: "route53"``, the
  default): the two weighted sets of the service's record carry the split. Their DELETE/CREATE
  join the state record's in one change batch, so state and traffic change together or not at
  all; DNS answers follow once the change is INSYNC, and clients keep a cached answer for the TTL.
- :class:`~bluegreen_provider.routers.lambda_alias.LambdaAliasRouter` (``router: "lambda_alias"``):
  one live alias per function whose ``RoutingConfig`` sends the candidate's share to its version,
  picked per invocation. See that module for why applying it after the state transition is safe.

Every router reports the split the same way: percent per set identifier (``{"blue": 90, "green":
10}``), so plans, soaks, evidence and the UI read one shape whichever router runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bluegreen_provider.plan import PlanError
from bluegreen_provider.spec import ROUTERS

if TYPE_CHECKING:
    from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.spec import DeploymentSpec
    from bluegreen_provider.state import DeploymentState

RecordKey = tuple[str, str]
Change = tuple[str, dict]


class TrafficError(PlanError):
    """Traffic cannot be read or does not match what the router expects; a person must look."""


@dataclass(frozen=True)
class Traffic:
    """What a router read: the split (percent by set identifier) and the raw records a swap must match.

    ``records`` are the Route53 weighted sets as listed (their exact values are the batch's DELETEs);
    empty for a router whose split lives elsewhere. ``generation`` is the state generation the
    traffic was last applied for, when the router records one (None: it moves with the state).
    """

    split: dict[str, int]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    generation: int | None = None


@dataclass(frozen=True)
class Applied:
    """What :meth:`TrafficRouter.apply` did after a transition landed: changed, or why it did not."""

    changed: bool
    detail: str


class TrafficRouter(ABC):
    """Reads and moves one service's traffic in one region; the state core is its only writer.

    :param spec: the service.
    :param route53: the hook of the zone holding the service's state record.
    :param zone_id: that zone.
    """

    kind: str = ""
    #: how messages name the place the split is read from ("Route53 reads blue 90 / green 10")
    source: str = ""

    def __init__(self, spec: DeploymentSpec, route53: Route53Hook, zone_id: str) -> None:
        self.spec = spec
        self.route53 = route53
        self.zone_id = zone_id

    @property
    def set_ids(self) -> list[str]:
        return [s.set_identifier for s in self.spec.slots.values()]

    def listed_records(self) -> list[RecordKey]:
        """Route53 (name, type) pairs to list together with the state record; none by default."""
        return []

    @abstractmethod
    def observe(self, listed: Mapping[RecordKey, list[dict]], state: DeploymentState | None) -> Traffic:
        """The traffic now, from the records :meth:`listed_records` asked for (and anything else the router reads).

        :param state: the deployment state read in the same pass (None before the first deployment).
        """

    @abstractmethod
    def changes(self, traffic: Traffic, nxt: DeploymentState, health_checks: Mapping[str, str]) -> list[Change]:
        """Record changes that join the state record's compare-and-swap batch for ``nxt``.

        :param traffic: what :meth:`observe` read before the decision (its records are the DELETEs).
        :param health_checks: set identifier -> health check the set carries in ``nxt``.
        """

    def apply(self, state: DeploymentState) -> Applied | None:
        """Bring traffic to ``state``'s declared split after its transition landed; None when the batch did it."""
        return None

    def reconcile(self, state: DeploymentState | None, traffic: Traffic) -> Traffic:
        """On every read: traffic brought to the declared split if a landed transition was not applied yet."""
        return traffic

    def read_split(self) -> dict[str, int]:
        """The split now, read on its own (a stage verifying its change, the status command)."""
        from bluegreen_provider.state import ServiceState

        return ServiceState(self.route53, self.zone_id, self.spec, router=self).read().split

    def propagated(self, change_id: str) -> bool:
        """Whether the traffic change of a landed transition reaches every client (Route53: INSYNC)."""
        return True

    def verify(self, expected: Mapping[str, int]) -> str | None:
        """None when traffic reads ``expected``; else what it reads, for the stage's error."""
        split = self.read_split()
        if split == dict(expected):
            return None
        return f"{self.source} reads {describe(self.spec, split)}, expected {describe(self.spec, expected)}"


def change_phrase(spec: DeploymentSpec) -> str:
    """How a dry run names a traffic change under the spec's router ("set Route53 weights ...")."""
    if spec.router == "lambda_alias":
        return f"route each function's {spec.live_alias} alias"
    return "set Route53 weights"


def describe(spec: DeploymentSpec, split: Mapping[str, int]) -> str:
    """A split as people read it: 'blue 90 / green 10'."""
    names = {s.set_identifier: s.name for s in spec.slots.values()}
    return " / ".join(f"{names.get(k, k)} {v}" for k, v in sorted(split.items()))


def make_router(
    spec: DeploymentSpec, route53: Route53Hook, zone_id: str, *, lambdas: LambdaAliasHook | None = None
) -> TrafficRouter:
    """The router the service config names (``router``), for the region of ``lambdas``.

    Without ``lambdas`` the alias router talks to Lambda through the Route53 hook's connection and region.
    """
    kind = spec.router
    if kind == "route53":
        from bluegreen_provider.routers.route53 import Route53WeightedRouter

        return Route53WeightedRouter(spec, route53, zone_id)
    if kind == "lambda_alias":
        from bluegreen_provider.routers.lambda_alias import LambdaAliasRouter

        if lambdas is None:
            from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook

            lambdas = LambdaAliasHook(aws_conn_id=route53.aws_conn_id, region_name=route53.region_name)
        return LambdaAliasRouter(spec, route53, zone_id, lambdas=lambdas)
    raise ValueError(f"router must be one of {list(ROUTERS)}, got {kind!r}")
