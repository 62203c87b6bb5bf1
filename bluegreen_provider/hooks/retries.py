"""Retries for every AWS call the hooks make: botocore's ``standard`` retry mode, attempts per service.

A transient AWS answer (throttling, ``PriorRequestNotComplete``, HTTP 5xx, a dropped connection) must
not abort a deployment: a stage that fails rolls a good release back. botocore's ``standard`` mode
(``botocore/retries/standard.py``) retries exactly those — the transient codes ``RequestTimeout``,
``RequestTimeoutException`` and ``PriorRequestNotComplete``, HTTP 500/502/503/504, the throttling
codes (``Throttling``, ``ThrottlingException``, ``TooManyRequestsException``, …), HTTP 429, and
connection errors (``ConnectionError``, ``HTTPClientError``: a closed or reset connection, a read
timeout) — with truncated exponential backoff and full jitter (at most 20 s between attempts). The
hooks only choose how many attempts each service gets; nothing here loops by hand.

A retry after a dropped connection can repeat a request that already applied. For Route53's
``ChangeResourceRecordSets`` that is safe here: every deployment change is a compare-and-swap batch
(:mod:`bluegreen_provider.state`), so the repeat is refused with ``InvalidChangeBatch`` and the state
reads Route53 again to recognise its own change (:meth:`~bluegreen_provider.state.ServiceState.transition`).

A connection's ``config_kwargs`` (its extra) override these defaults key by key, e.g.
``{"config_kwargs": {"retries": {"total_max_attempts": 20}}}`` keeps ``standard`` mode with 20
attempts, and ``{"retries": {"mode": "adaptive"}}`` keeps the service's attempts. A ``botocore_config``
given to an operator or hook does the same (it replaces the connection's, as in the amazon provider).
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

RETRY_MODE = "standard"
# Route53 rate-limits each account (a bucket of about 50 requests refilled at 10/s, shared by every
# caller) and answers ``PriorRequestNotComplete`` while a zone's previous change is being applied, so
# throttling is routine when several services deploy at once: 10 attempts wait up to 111 s in all
# (about 55 s on average) before giving up. ``adaptive`` mode is not used: its client-side rate
# limiter learns per client object, and each task builds its own client, so it would learn nothing
# across the callers that share the account's bucket, while it can stall a caller before it sends.
ROUTE53_MAX_ATTEMPTS = 10
# Lambda's control plane (UpdateAlias, PublishVersion, UpdateFunctionCode) and CloudWatch's
# GetMetricData/DescribeAlarms throttle less often but a soak polls them every few seconds: at a
# 20 % transient failure rate 8 attempts fail about once in 400,000 calls.
LAMBDA_MAX_ATTEMPTS = 8
CLOUDWATCH_MAX_ATTEMPTS = 8
_ATTEMPT_KEYS = ("total_max_attempts", "max_attempts")


def retry_config(explicit: Config | None, *, total_max_attempts: int) -> Config:
    """The botocore config a hook's client gets: ``standard`` retries with ``total_max_attempts``,
    under whatever ``explicit`` sets (a connection's ``config_kwargs`` or a hook's ``config``).

    ``explicit``'s ``retries`` keys win one by one: a connection that only sets ``mode`` keeps the
    service's attempts, one that sets ``max_attempts`` (botocore: retries after the first attempt)
    or ``total_max_attempts`` replaces them.
    """
    defaults: dict[str, Any] = {"mode": RETRY_MODE, "total_max_attempts": total_max_attempts}
    if explicit is None:
        return Config(retries=defaults)
    given = dict(explicit.retries or {})
    if any(key in given for key in _ATTEMPT_KEYS):
        defaults.pop("total_max_attempts")
    return Config(retries=defaults).merge(explicit).merge(Config(retries={**defaults, **given}))


class StandardRetriesMixin:
    """Gives an ``AwsBaseHook`` subclass botocore ``standard`` retries with ``max_attempts`` attempts.

    Overrides ``AwsGenericHook.config``, which the amazon provider feeds to every session and client
    it builds (sync and async), so the default sits under the connection's own settings rather than
    replacing them (an explicit hook ``config`` would hide the connection's ``config_kwargs``).
    Put it before the amazon hook in the bases.
    """

    max_attempts: int = 3

    @property
    def config(self) -> Config:
        explicit = self.conn_config.botocore_config  # type: ignore[attr-defined]
        return retry_config(explicit, total_max_attempts=self.max_attempts)
