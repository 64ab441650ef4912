"""Durable storage: the :class:`~hubbub.store.base.Store` of role interfaces
(``store/roles.py``) and its SQL backend (``store/sql/``)."""

from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult, Store
from hubbub.store.roles import Accounts, ChangeLog, FileIndex, Messages, Rooms, Search

__all__ = [
    "Accounts",
    "AppendOutcome",
    "AppendRequest",
    "AppendResult",
    "ChangeLog",
    "FileIndex",
    "Messages",
    "Rooms",
    "Search",
    "Store",
]
