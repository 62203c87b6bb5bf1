"""Every AWS operation the provider's code makes while a block runs, recorded at botocore's single call site.

``BaseClient._make_api_call`` is where every client method, paginator page and waiter poll ends up
(retries happen below it, so a call is recorded once however often it was sent). A call counts as
the provider's when a ``bluegreen_provider`` module other than the sandbox is on its stack: the
sandbox's traffic and metrics, and the test's own reads of moto, are left out. A call with neither
is kept apart (``unattributed``) so that nothing the provider causes from a stack without its own
frames (an Airflow callback, say) can hide there unnoticed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.client import BaseClient

_SANDBOX = "bluegreen_provider.sandbox"
_TESTS = ("tests.", "conftest")


@dataclass(frozen=True)
class AwsCall:
    service: str  # boto3's name for the client, e.g. "cloudwatch" (its IAM prefix for these services)
    operation: str  # botocore's operation name, e.g. "GetMetricData"
    region: str
    params: dict[str, Any] = field(hash=False, compare=False)


@dataclass
class Recording:
    calls: list[AwsCall] = field(default_factory=list)
    unattributed: list[AwsCall] = field(default_factory=list)

    def operations(self) -> set[tuple[str, str]]:
        return {(c.service, c.operation) for c in self.calls}


def _caller(frame: Any) -> str:
    """'provider', 'harness' (the sandbox or a test) or 'other', from the modules on the stack."""
    harness = False
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("bluegreen_provider"):
            if not module.startswith(_SANDBOX):
                return "provider"
            harness = True
        elif module.startswith(_TESTS):
            harness = True
        frame = frame.f_back
    return "harness" if harness else "other"


@contextmanager
def recording_aws_calls() -> Iterator[Recording]:
    """Record the provider's AWS calls (in every thread) until the block ends."""
    recording = Recording()
    lock = threading.Lock()
    original = BaseClient._make_api_call

    def record(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        caller = _caller(sys._getframe(1))
        if caller != "harness":
            call = AwsCall(
                client.meta.service_model.service_name, operation_name, client.meta.region_name, dict(api_params)
            )
            with lock:
                (recording.calls if caller == "provider" else recording.unattributed).append(call)
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", record):
        yield recording
