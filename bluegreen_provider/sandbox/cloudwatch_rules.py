"""CloudWatch's exact dimension matching, patched into moto's GetMetricStatistics.

CloudWatch treats each distinct combination of dimensions as its own metric: a query for
``FunctionName=lego-api-moc`` returns only datapoints published with exactly that dimension set, not
the per-alias ones that also carry ``Resource``. moto's ``get_metric_statistics`` matches any superset,
so an alarm on the function would count every request twice (once per function, once per alias).
moto's ``get_metric_data`` already compares dimension sets exactly, which is what the deployment's
soaks read.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.exceptions import InvalidParameterValue
from moto.cloudwatch.models import CloudWatchBackend, Statistics, daterange

_lock = threading.Lock()
_installed = False


def dimension_key(dimensions: Any) -> tuple[tuple[str, str | None], ...]:
    """A dimension set as CloudWatch identifies a metric by it: order-free, exact."""
    pairs = []
    for d in dimensions or []:
        if isinstance(d, dict):
            pairs.append((str(d["Name"]), d.get("Value")))
        else:
            pairs.append((str(d.name), d.value))
    return tuple(sorted(pairs))


def _get_metric_statistics(
    self: CloudWatchBackend,
    namespace: str,
    metric_name: str,
    start_time: datetime,
    end_time: datetime,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None = None,
) -> list[Statistics]:
    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time >= end_time:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    wanted = dimension_key(dimensions)
    data = sorted(
        (
            md
            for md in self.get_all_metrics()
            if md.namespace == namespace
            and md.name == metric_name
            and start_time <= md.timestamp < end_time
            and (not unit or md.unit == unit)
            and dimension_key(md.dimensions) == wanted
        ),
        key=lambda md: md.timestamp,
    )
    if not data:
        return []
    delta = timedelta(seconds=period)
    result: list[Statistics] = []
    idx = 0
    for dt in daterange(data[0].timestamp, data[-1].timestamp + delta, delta):
        s = Statistics(stats, dt)
        while idx < len(data) and data[idx].timestamp < dt + delta:
            s.metric_data.append(data[idx])
            s.unit = data[idx].unit
            idx += 1
        if s.metric_data:
            result.append(s)
    return result


def install() -> None:
    """Patch moto's CloudWatch (process-wide, idempotent)."""
    global _installed
    with _lock:
        if not _installed:
            CloudWatchBackend.get_metric_statistics = _get_metric_statistics  # type: ignore[method-assign]
            _installed = True
