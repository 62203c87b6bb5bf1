"""Lambda alias weighted routing as the traffic router: one live alias per function carries the split.

Every request invokes the live alias (``production`` by default). Its ``FunctionVersion`` is the
live slot's version and its ``RoutingConfig.AdditionalVersionWeights`` sends the candidate's share
to the candidate's version, chosen per invocation: no DNS, no client cache, so a shift or a rollback
reaches every request at once and the candidate is at 0 the moment a rollback is applied. The slot
aliases (``production-blue`` / ``production-green``) still pin each slot's release; the live alias
only routes between the versions they serve. Promotion points the live alias at the new version
and clears its routing; a rollback clears the routing.

Why applying the alias after the state transition is safe
----------------------------------------------------------
The deployment state stays where it is: the TXT record in Route53, changed only by the state core's
owner/generation compare-and-swap. It is the single source of truth; the aliases are its projection.
Route53 cannot swap a Lambda alias in the same batch, so the alias follows in a second step:

1. The transition lands (or not) on the state record alone. A stale or losing actor's batch is
   refused by Route53 and it changes nothing, the alias included: it never reaches step 2.
2. Each function's live alias is moved with ``UpdateAlias`` under its ``RevisionId`` (Lambda refuses
   the update if anyone changed the alias since it was read) and its description records the state
   generation it applies (``bluegreen <service> generation N``). An applier skips an alias already at
   its generation or a newer one, and says so: a slow actor never writes an older split over a newer
   one, and a lost race is read again and decided again. Before each update it also reads the state
   record: once a newer transition has landed, an older one's applier stops, so a rolled-back canary
   share is not put back on the alias while the rollback is still being applied (what is left is the
   instant between that read and the update, which the newer applier's ``RevisionId`` then overwrites).
3. Every read of the state (every stage, the failure callback, the CLI, the UI, a re-run) first
   brings any alias whose generation is behind the state's up to the state's declared split. A crash
   between step 1 and step 2 therefore leaves a declared state that the next reader applies; re-applying
   is idempotent.

Rollback always wins: the state core decides "roll back" from any split its run owns, so its
transition lands with a newer generation than any shift, and from then on no applier may write the
shift's split (its generation is older) while the rollback's applier and every reader write 0.
An alias changed by hand at the current generation reads as a split the state does not declare, and
the state core's guards refuse to move on from it, exactly like a hand-edited weighted record.

Lambda's limits (``RoutingConfig``): at most one additional version, never ``$LATEST`` nor the primary
version itself, weight 0..1. A release that reuses the live slot's version routes nothing (both
slots run the same code).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bluegreen_provider.routers.base import Applied, Change, RecordKey, Traffic, TrafficError, TrafficRouter, describe

if TYPE_CHECKING:
    from bluegreen_provider.hooks.lambda_alias import AliasRouting, LambdaAliasHook
    from bluegreen_provider.hooks.route53 import Route53Hook
    from bluegreen_provider.spec import DeploymentSpec
    from bluegreen_provider.state import DeploymentState

log = logging.getLogger(__name__)

_GENERATION = re.compile(r"\bgeneration (\d+)\b")
_ATTEMPTS = 5


def alias_generation(description: str) -> int:
    """The state generation an alias description says it applies; 0 for an alias bluegreen never moved."""
    found = _GENERATION.search(description or "")
    return int(found.group(1)) if found else 0


class LambdaAliasRouter(TrafficRouter):
    """The split is each function's live alias routing; applied after the state's swap, reconciled on every read.

    :param lambdas: the Lambda hook of this router's region.
    """

    kind = "lambda_alias"

    def __init__(self, spec: DeploymentSpec, route53: Route53Hook, zone_id: str, *, lambdas: LambdaAliasHook) -> None:
        super().__init__(spec, route53, zone_id)
        self.lambdas = lambdas
        self.alias = spec.live_alias
        self.source = f"Lambda alias {self.alias}"

    # -- reading ----------------------------------------------------------------------------------
    def _routes(self) -> dict[str, AliasRouting]:
        routes: dict[str, AliasRouting] = {}
        missing = []
        for release in self.spec.functions:
            route = self.lambdas.get_alias_routing(release.name, self.alias)
            if route is None:
                missing.append(release.name)
            else:
                routes[release.name] = route
        if missing:
            raise TrafficError(
                f"router lambda_alias: {missing} have no alias {self.alias!r}; create it on the version in "
                f"production (every request must invoke it), then retry"
            )
        return routes

    def _slot_of(self, function: str, version: str, state: DeploymentState | None) -> str | None:
        """The set identifier of the slot serving ``version``: by the state's record, else by the slot aliases."""
        slots = self.spec.slots
        if state is not None:
            for name in (state.live, state.candidate):
                if state.versions.get(name, {}).get(function) == version:
                    return slots[name].set_identifier
        for slot in slots.values():
            target = self.lambdas.get_alias(function, slot.alias)
            if target is not None and target.version == version:
                return slot.set_identifier
        return None

    def _split_of(self, route: AliasRouting, state: DeploymentState | None) -> dict[str, int]:
        fn = route.function_name
        if state is not None:
            live_v = state.versions.get(state.live, {}).get(fn)
            same = live_v is not None and live_v == state.versions.get(state.candidate, {}).get(fn)
            if same and route.version == live_v and not route.weights:
                return dict(state.split)  # both slots run this very version: any split is this one
        split = dict.fromkeys(self.set_ids, 0)
        primary = self._slot_of(fn, route.version, state)
        if primary is None:
            raise TrafficError(
                f"alias {fn}:{self.alias} serves version {route.version}, which no slot serves "
                f"({', '.join(s.alias for s in self.spec.slots.values())}); point it back at the live slot's version"
            )
        rest = 100
        for version, weight in route.weights.items():
            slot = self._slot_of(fn, version, state)
            if slot is None:
                raise TrafficError(
                    f"alias {fn}:{self.alias} sends {weight:.0%} to version {version}, which no slot serves; "
                    f"clear its routing or roll back"
                )
            pct = round(weight * 100)
            split[slot] += pct
            rest -= pct
        split[primary] += rest
        return split

    def observe(self, listed: Mapping[RecordKey, list[dict]], state: DeploymentState | None) -> Traffic:
        routes = self._routes()
        splits = {fn: self._split_of(route, state) for fn, route in routes.items()}
        declared = dict(state.split) if state is not None else None
        # The functions move one by one: report one that differs from the declared split, if any.
        split = next((s for s in splits.values() if s != declared), next(iter(splits.values())))
        generation = min(alias_generation(r.description) for r in routes.values())
        return Traffic(split=split, generation=generation)

    def reconcile(self, state: DeploymentState | None, traffic: Traffic) -> Traffic:
        if state is None or traffic.generation is None or traffic.generation >= state.generation:
            return traffic
        log.warning(
            "%s: the live aliases apply generation %d, the state declares generation %d (%s): applying it",
            self.spec.service,
            traffic.generation,
            state.generation,
            describe(self.spec, state.split),
        )
        self.apply(state)
        return self.observe({}, state)

    # -- changing ---------------------------------------------------------------------------------
    def changes(self, traffic: Traffic, nxt: DeploymentState, health_checks: Mapping[str, str]) -> list[Change]:
        return []  # the state record alone is swapped; the aliases follow in apply()

    def target(self, state: DeploymentState, function: str) -> tuple[str, dict[str, float]]:
        """(primary version, additional weights) the live alias of ``function`` has under ``state``."""
        live_v = state.versions.get(state.live, {}).get(function)
        if live_v is None:
            raise TrafficError(
                f"the deployment state (generation {state.generation}) records no version of {function} for the "
                f"live slot {state.live}; the alias {function}:{self.alias} is left as it is"
            )
        pct = state.split[self.spec.slots[state.candidate].set_identifier]
        cand_v = state.versions.get(state.candidate, {}).get(function)
        if pct == 0 or cand_v is None or cand_v == live_v:
            return live_v, {}
        if pct == 100:
            return cand_v, {}
        return live_v, {cand_v: round(pct / 100, 2)}

    def apply(self, state: DeploymentState) -> Applied:
        from bluegreen_provider.hooks.lambda_alias import AliasConflict
        from bluegreen_provider.state import declared_generation

        tag = f"bluegreen {self.spec.service} generation {state.generation}: {describe(self.spec, state.split)}"
        changed: list[str] = []
        skipped: list[str] = []
        for release in self.spec.functions:
            fn = release.name
            version, weights = self.target(state, fn)
            for _ in range(_ATTEMPTS):
                current = self.lambdas.get_alias_routing(fn, self.alias)
                if current is None:
                    raise TrafficError(f"{fn} has no alias {self.alias!r}; cannot apply generation {state.generation}")
                at = alias_generation(current.description)
                if at >= state.generation:
                    if at > state.generation:
                        skipped.append(f"{fn} already applies the newer generation {at}")
                    break
                declared = declared_generation(self.route53, self.zone_id, self.spec)
                if declared is not None and declared > state.generation:
                    # A newer transition landed while this one was being applied: its applier (or the
                    # next reader) owns the aliases now, and this split must not be served even briefly.
                    skipped.append(f"{fn} left for the newer generation {declared} the state declares")
                    break
                try:
                    self.lambdas.route_alias(current, version=version, weights=weights, description=tag)
                except AliasConflict as err:
                    log.info("%s; reading it again", err)
                    continue
                changed.append(f"{fn}:{self.alias} -> {version}" + (f" + {weights}" if weights else ""))
                break
            else:
                raise TrafficError(
                    f"alias {fn}:{self.alias} kept changing under generation {state.generation} after {_ATTEMPTS} "
                    f"attempts; the next read applies it"
                )
        if skipped:
            log.info("generation %d: not applied where newer: %s", state.generation, "; ".join(skipped))
        detail = "; ".join(changed + skipped) or f"aliases already at generation {state.generation}"
        return Applied(changed=bool(changed), detail=detail)
