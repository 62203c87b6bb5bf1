"""A laptop stand-in for the AWS side of a lego-api blue/green deployment (moto, traffic, alarms).

``Sandbox`` is imported lazily: the ``bluegreen sandbox`` CLI only talks to a running daemon and
should not pay for importing moto's whole server on every call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bluegreen_provider.sandbox.core import Sandbox

__all__ = ["Sandbox"]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from bluegreen_provider.sandbox.core import Sandbox

        return Sandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
