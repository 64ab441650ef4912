"""Who is online: the :class:`~hubbub.presence.base.Presence` protocol and its backends."""

from hubbub.presence.base import Presence, PresenceCallback, Status, open_presence

__all__ = ["Presence", "PresenceCallback", "Status", "open_presence"]
