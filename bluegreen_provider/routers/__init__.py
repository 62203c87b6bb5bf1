"""Traffic routers: the interface (:mod:`.base`) and one module per mechanism, as the spec's ``router`` names them."""

from bluegreen_provider.routers.base import (
    Applied,
    Traffic,
    TrafficError,
    TrafficRouter,
    change_phrase,
    describe,
    make_router,
)

__all__ = ["Applied", "Traffic", "TrafficError", "TrafficRouter", "change_phrase", "describe", "make_router"]
