"""Users known from the application's identity service's tokens (``--jwt-public-key``).

The token's ``sub`` is the user id (the same ids the server API provisions), so a user seen for
the first time is created then, without a password, named by the token's ``name`` or else by
``sub``. The identity service owns names: a later token whose ``name`` differs from the one
last applied renames the user. A name that is someone else's username is not taken from them:
the user gets ``"<name> (<sub>)"`` instead (then ``<sub>``, then ``<sub>-<random>``). Accounts
with a password (registered in Hubbub) keep their username: it is what they sign in with.

Work happens once per user per process: later tokens of the same user with the same ``name``
are answered from memory, and concurrent first requests share one creation. Concurrent
creations in several processes meet at the store's primary key; the losers read the winner's
row.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections.abc import Iterator

from hubbub.auth.names import display_name_problem
from hubbub.store.base import Store

NAME_MAX = 64  # users.username
_CACHE_MAX = 100_000


def clean_name(claim: object) -> str | None:
    """The token's ``name`` as a username, or None to ignore it (absent, not text, or not
    showable: control or bidi-override characters, nothing visible)."""
    if not isinstance(claim, str):
        return None
    name = unicodedata.normalize("NFKC", claim).strip()[:NAME_MAX].strip()
    if not name or display_name_problem(name) is not None:
        return None
    return name


class ExternalUsers:
    def __init__(self, store: Store) -> None:
        self._store = store
        # user id -> (the name claim last applied, the username it gave)
        self._seen: dict[str, tuple[str | None, str]] = {}
        self._settling: dict[str, asyncio.Task[str]] = {}

    async def username(self, user_id: str, name_claim: object) -> str:
        """The username of ``user_id``, the user created or renamed first if the token says
        so."""
        name = clean_name(name_claim)
        while True:
            seen = self._seen.get(user_id)
            if seen is not None and (name is None or seen[0] == name):
                return seen[1]
            running = self._settling.get(user_id)
            if running is None or running.done():
                break
            # Someone is creating or renaming this user: wait, then look again.
            await asyncio.wait([running])
        task = asyncio.get_running_loop().create_task(self._settle(user_id, name))
        self._settling[user_id] = task
        task.add_done_callback(lambda t: self._done(user_id, t))
        return await asyncio.shield(task)

    def forget(self, user_id: str) -> None:
        """The user was changed or deleted elsewhere (server API): look them up afresh."""
        self._seen.pop(user_id, None)

    def _done(self, user_id: str, task: asyncio.Task[str]) -> None:
        if self._settling.get(user_id) is task:
            del self._settling[user_id]
        if not task.cancelled():
            task.exception()  # retrieved: a failure is its requester's, not the loop's

    async def _settle(self, user_id: str, name: str | None) -> str:
        accounts = self._store.accounts
        user = await accounts.user_by_id(user_id)
        if user is None:
            username = await self._claim_name(user_id, name, creating=True)
        elif name is None or name == user.username:
            username = user.username
        elif await accounts.password_hash(user_id) is None:
            username = await self._claim_name(user_id, name, creating=False)
        else:  # a Hubbub account: its username is what it signs in with
            username = user.username
        if len(self._seen) > _CACHE_MAX:
            self._seen.clear()
        self._seen[user_id] = (name, username)
        return username

    async def _claim_name(self, user_id: str, name: str | None, *, creating: bool) -> str:
        """Create (or rename) ``user_id`` under the first free candidate name."""
        accounts = self._store.accounts
        for candidate in _candidates(user_id, name):
            holder = await accounts.user_by_name(candidate)
            if holder is not None and holder[0].id != user_id:
                continue
            try:
                user, _ = await accounts.provision_user(user_id, candidate)
            except Exception:  # a unique index lost a race (the store's IntegrityError)
                if creating:
                    existing = await accounts.user_by_id(user_id)
                    if existing is not None:  # another process created the user first
                        return existing.username
                holder = await accounts.user_by_name(candidate)
                if holder is None or holder[0].id == user_id:
                    raise  # not a race for the name: the store's own failure
                continue  # the name was taken meanwhile
            return user.username
        raise RuntimeError(f"no free username for user {user_id!r}")


def _candidates(user_id: str, name: str | None) -> Iterator[str]:
    if name is not None:
        yield name
        suffix = f" ({user_id})"
        if len(suffix) < NAME_MAX:
            yield name[: NAME_MAX - len(suffix)].rstrip() + suffix
    yield user_id
    for _ in range(3):
        yield f"{user_id[: NAME_MAX - 9]}-{secrets.token_hex(4)}"
