"""Fan-out between nodes: the :class:`~hubbub.broker.base.Broker` protocol and its backends."""

from hubbub.broker.base import Broker, open_broker

__all__ = ["Broker", "open_broker"]
