"""Trigger that waits for a Route53 change to reach INSYNC without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from bluegreen_provider.hooks.route53 import Route53Hook


class Route53ChangeTrigger(BaseTrigger):
    """
    Poll ``GetChange`` until a record change is INSYNC, then fire one event.

    The amazon provider's waiter triggers run on ``aiobotocore`` (the ``[aiobotocore]`` extra),
    which this provider does not require; the synchronous hook call runs in a thread instead,
    which keeps the triggerer's event loop free and lets the same code reach moto.

    Event payloads: ``{"status": "success", "change_id": ...}`` or
    ``{"status": "timeout", "change_id": ..., "message": ...}``.

    :param change_id: id returned by :meth:`Route53Hook.set_split`.
    :param aws_conn_id: AWS connection to use.
    :param poll_interval: seconds between polls.
    :param timeout_seconds: give up (with a timeout event) after this long. The deadline restarts
        if the trigger is rebuilt on another triggerer; ``defer(timeout=...)`` bounds the total.
    """

    def __init__(
        self,
        *,
        change_id: str,
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 5.0,
        timeout_seconds: float = 300.0,
    ) -> None:
        super().__init__()
        self.change_id = change_id
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "bluegreen_provider.triggers.route53.Route53ChangeTrigger",
            {
                "change_id": self.change_id,
                "aws_conn_id": self.aws_conn_id,
                "poll_interval": self.poll_interval,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def _hook(self) -> Route53Hook:
        from bluegreen_provider.hooks.route53 import Route53Hook

        return Route53Hook(aws_conn_id=self.aws_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status = await asyncio.to_thread(hook.get_change_status, self.change_id)
            if status == "INSYNC":
                yield TriggerEvent({"status": "success", "change_id": self.change_id})
                return
            if time.monotonic() + self.poll_interval > deadline:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "change_id": self.change_id,
                        "message": f"Route53 change {self.change_id} still {status} after {self.timeout_seconds}s",
                    }
                )
                return
            self.log.info("Route53 change %s is %s; next check in %ss", self.change_id, status, self.poll_interval)
            await asyncio.sleep(self.poll_interval)
