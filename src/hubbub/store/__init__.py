"""Durable storage: the :class:`~hubbub.store.base.Store` protocol and its SQL backend."""

from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult, Store

__all__ = ["AppendOutcome", "AppendRequest", "AppendResult", "Store"]
