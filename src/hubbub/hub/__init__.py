"""Local fan-out: one hub per process, room → the connections listening on this node.

Delivery is the hot path and is built for it (see ``docs/architecture.md``):
:mod:`~hubbub.hub.core` keeps who listens to what and releases each room's events in order,
:mod:`~hubbub.hub.repair` reads holes in that order back from the store, and
:mod:`~hubbub.hub.fanout` writes each tick's events, framed once, into every connection.
"""

from hubbub.hub.connection import (
    WS_REVOKED,
    WS_SERVICE_RESTART,
    Connection,
    ConnectionKind,
    FlowState,
    TransportLike,
)
from hubbub.hub.core import CONTROL, Hub

__all__ = [
    "CONTROL",
    "WS_REVOKED",
    "WS_SERVICE_RESTART",
    "Connection",
    "ConnectionKind",
    "FlowState",
    "Hub",
    "TransportLike",
]
