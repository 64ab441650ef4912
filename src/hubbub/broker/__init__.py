"""Fan-out between nodes: the :class:`~hubbub.broker.base.Broker` protocol and its backends."""

from hubbub.broker.base import Broker, EventCallback, ReconnectHook, open_broker

__all__ = ["Broker", "EventCallback", "ReconnectHook", "open_broker"]
