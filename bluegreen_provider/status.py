"""What AWS says about a service right now, for the CLI and the UI view.

Read-only: the split, who holds the deployment lock, which slot is retained and until when, which
version each alias serves, and which alarms are firing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bluegreen_provider.hooks.cloudwatch import CloudWatchMetricsHook
from bluegreen_provider.hooks.lambda_alias import LambdaAliasHook
from bluegreen_provider.hooks.route53 import Route53Hook
from bluegreen_provider.spec import DeploymentSpec
from bluegreen_provider.state import Phase, ServiceState


@dataclass
class ServiceStatus:
    service: str
    record: str
    split: dict[str, int]
    live: str | None
    lock: dict[str, str] | None
    retention: dict[str, str] | None
    deployment: dict[str, Any] | None = None
    aliases: dict[str, dict[str, str | None]] = field(default_factory=dict)
    alarms_in_alarm: list[str] = field(default_factory=list)
    region: str | None = None  # one region of a multi-region service

    @property
    def state(self) -> str:
        weights = [w for w in self.split.values() if w > 0]
        if len(weights) > 1:
            return "SPLIT (deployment in progress or held)"
        return f"{self.live} live" if self.live else "NO TRAFFIC (both sets weight 0)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state}

    def render(self) -> str:
        lines = [
            f"{self.service}{f' [{self.region}]' if self.region else ''}  ({self.record})  {self.state}",
            "  split:     " + " / ".join(f"{k} {v}" for k, v in sorted(self.split.items())),
            "  state:     "
            + (
                f"{self.deployment['phase']} (generation {self.deployment['generation']}, "
                f"run {self.deployment['owner']}): {self.deployment['reason']}"
                if self.deployment
                else "no deployment yet"
            ),
            "  lock:      " + (f"{self.lock['owner']} since {self.lock['since']}" if self.lock else "free"),
            "  retained:  "
            + (
                f"{self.retention['slot']} until {self.retention['until']} ({self.retention['owner']})"
                if self.retention
                else "nothing"
            ),
            "  alarms:    " + (", ".join(self.alarms_in_alarm) if self.alarms_in_alarm else "none in ALARM"),
        ]
        for fn, by_slot in sorted(self.aliases.items()):
            lines.append(f"  {fn}: " + ", ".join(f"{slot}→v{v or '-'}" for slot, v in sorted(by_slot.items())))
        return "\n".join(lines)


def service_status(spec: DeploymentSpec, *, aws_conn_id: str | None = "aws_default") -> ServiceStatus:
    route53 = Route53Hook(aws_conn_id=aws_conn_id, region_name=spec.region_name)
    lambdas = LambdaAliasHook(aws_conn_id=aws_conn_id, region_name=spec.region_name)
    zone_id = route53.resolve_zone_id(spec.hosted_zone)
    svc = ServiceState(route53, zone_id, spec, lambdas=lambdas)
    by_set = svc.router.read_split()
    split = {name: by_set[slot.set_identifier] for name, slot in spec.slots.items()}
    positive = [name for name, weight in split.items() if weight > 0]
    state = svc.state()
    lock = (
        {"owner": state.owner, "since": state.updated_at, "live": state.live, "phase": str(state.phase)}
        if state is not None and state.active
        else None
    )
    retention = (
        {"slot": state.retained.slot, "until": state.retained.until, "owner": state.retained.owner}
        if state is not None and state.phase == Phase.RETAINED and state.retained is not None
        else None
    )
    aliases: dict[str, dict[str, str | None]] = {}
    for fn in spec.functions:
        aliases[fn.name] = {}
        for name, slot in spec.slots.items():
            target = lambdas.get_alias(fn.name, slot.alias)
            aliases[fn.name][name] = target.version if target else None
    firing = (
        [
            a.name
            for a in CloudWatchMetricsHook(aws_conn_id=aws_conn_id, region_name=spec.region_name).alarms_in_alarm(
                spec.alarms
            )
        ]
        if spec.alarms
        else []
    )
    return ServiceStatus(
        service=spec.service,
        region=spec.region_name,
        record=spec.record_name,
        split=split,
        live=positive[0] if len(positive) == 1 else None,
        lock=lock,
        retention=retention,
        deployment=(
            {"phase": str(state.phase), "generation": state.generation, "owner": state.owner, "reason": state.reason}
            if state is not None
            else None
        ),
        aliases=aliases,
        alarms_in_alarm=firing,
    )
