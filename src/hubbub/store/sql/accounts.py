"""Accounts in SQL: users, sessions, refresh tokens and tickets (rules: ``store/roles.py``)."""

from __future__ import annotations

import time
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.auth.names import username_key
from hubbub.models import User, utc_now
from hubbub.store.base import SessionRecord
from hubbub.store.schema import refresh_tokens, sessions, tickets, users
from hubbub.store.sql.engine import Database, new_id
from hubbub.store.sql.rows import ensure_users


class SqlAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_user(self, username: str, password_hash: str | None) -> User:
        user = User(id=new_id(), username=username, created_at=utc_now())
        await self._db.change(
            users.insert().values(
                id=user.id,
                username=username,
                username_key=username_key(username) if password_hash is not None else None,
                password_hash=password_hash,
                created_at=user.created_at,
            )
        )
        return user

    async def ensure_user(self, user_id: str) -> None:
        await self._db.write(lambda c: ensure_users(self._db, c, [user_id]))

    async def provision_user(self, user_id: str, username: str) -> tuple[User, bool]:
        def work(conn: Connection) -> tuple[User, bool]:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
            if row is None:
                user = User(id=user_id, username=username, created_at=utc_now())
                conn.execute(
                    users.insert().values(id=user_id, username=username, created_at=user.created_at)
                )
                return user, True
            if row.username != username:
                conn.execute(users.update().where(users.c.id == user_id).values(username=username))
            return User(id=row.id, username=username, created_at=row.created_at), False

        return await self._db.write(work)

    async def delete_user(self, user_id: str) -> list[str] | None:
        def work(conn: Connection) -> list[str] | None:
            if conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).first() is None:
                return None
            live = _revoke_sessions(conn, user_id, None)
            mine = sa.select(sessions.c.id).where(sessions.c.user_id == user_id)
            conn.execute(sa.delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(mine)))
            conn.execute(sa.delete(tickets).where(tickets.c.user_id == user_id))
            conn.execute(sa.delete(sessions).where(sessions.c.user_id == user_id))
            conn.execute(sa.delete(users).where(users.c.id == user_id))
            return live

        return await self._db.write(work)

    async def user_by_name(self, username: str) -> tuple[User, str | None] | None:
        """The account named exactly ``username``, else the one whose name is the same
        regardless of case and Unicode form (``auth/names.py``)."""
        row = await self._db.first(
            sa.select(users)
            .where(
                sa.or_(users.c.username == username, users.c.username_key == username_key(username))
            )
            .order_by(sa.case((users.c.username == username, 0), else_=1))
            .limit(1)
        )
        if row is None:
            return None
        return User(id=row.id, username=row.username, created_at=row.created_at), row.password_hash

    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._db.first(sa.select(users).where(users.c.id == user_id))
        if row is None:
            return None
        return User(id=row.id, username=row.username, created_at=row.created_at)

    async def password_hash(self, user_id: str) -> str | None:
        row = await self._db.first(sa.select(users.c.password_hash).where(users.c.id == user_id))
        return None if row is None else cast("str | None", row.password_hash)

    async def set_password(
        self, user_id: str, password_hash: str, keep: str | None = None
    ) -> list[str]:
        def work(conn: Connection) -> list[str]:
            conn.execute(
                users.update().where(users.c.id == user_id).values(password_hash=password_hash)
            )
            return _revoke_sessions(conn, user_id, keep)

        return await self._db.write(work)

    # sessions ----------------------------------------------------------------------------

    async def create_session(self, user_id: str, ttl: float) -> SessionRecord:
        now = time.time()
        rec = SessionRecord(id=new_id(), user_id=user_id, expires_at=now + ttl, revoked=False)
        await self._db.change(
            sessions.insert().values(
                id=rec.id, user_id=user_id, created_at=now, expires_at=rec.expires_at
            )
        )
        return rec

    async def session(self, session_id: str) -> SessionRecord | None:
        row = await self._db.first(sa.select(sessions).where(sessions.c.id == session_id))
        if row is None:
            return None
        return SessionRecord(
            id=row.id, user_id=row.user_id, expires_at=row.expires_at, revoked=bool(row.revoked)
        )

    async def revoke_session(self, session_id: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(revoked=True))
            conn.execute(sa.delete(tickets).where(tickets.c.session_id == session_id))

        await self._db.write(work)

    async def revoke_sessions(self, user_id: str, keep: str | None = None) -> list[str]:
        return await self._db.write(lambda c: _revoke_sessions(c, user_id, keep))

    # refresh tokens and tickets ----------------------------------------------------------

    async def add_refresh_token(self, token_hash: str, session_id: str, ttl: float) -> None:
        await self._db.change(
            refresh_tokens.insert().values(
                token_hash=token_hash, session_id=session_id, expires_at=time.time() + ttl
            )
        )

    async def use_refresh_token(self, token_hash: str) -> tuple[str, SessionRecord] | None:
        def work(conn: Connection) -> tuple[str, SessionRecord] | None:
            row = conn.execute(
                sa.select(
                    refresh_tokens,
                    sessions.c.user_id,
                    sessions.c.revoked,
                    sessions.c.expires_at.label("session_expires"),
                )
                .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                .where(refresh_tokens.c.token_hash == token_hash)
            ).first()
            if row is None or row.expires_at < time.time():
                return None
            rec = SessionRecord(
                id=row.session_id,
                user_id=row.user_id,
                expires_at=row.session_expires,
                revoked=bool(row.revoked),
            )
            if row.used:
                return "reused", rec
            conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.token_hash == token_hash)
                .values(used=True)
            )
            return "ok", rec

        return await self._db.write(work)

    async def add_ticket(
        self, ticket_hash: str, user_id: str, session_id: str | None, ttl: float
    ) -> None:
        def work(conn: Connection) -> None:
            now = time.time()
            conn.execute(sa.delete(tickets).where(tickets.c.expires_at < now))
            conn.execute(
                tickets.insert().values(
                    ticket_hash=ticket_hash,
                    user_id=user_id,
                    session_id=session_id,
                    expires_at=now + ttl,
                )
            )

        await self._db.write(work)

    async def consume_ticket(self, ticket_hash: str) -> tuple[str, str | None] | None:
        def work(conn: Connection) -> tuple[str, str | None] | None:
            row = conn.execute(
                sa.delete(tickets)
                .where(tickets.c.ticket_hash == ticket_hash)
                .returning(tickets.c.user_id, tickets.c.session_id, tickets.c.expires_at)
            ).first()
            now = time.time()
            if row is None or row.expires_at < now:
                return None
            if row.session_id is not None:
                live = conn.execute(
                    sa.select(sessions.c.id).where(
                        sessions.c.id == row.session_id,
                        sessions.c.revoked == sa.false(),
                        sessions.c.expires_at >= now,
                    )
                ).first()
                if live is None:
                    return None
            return str(row.user_id), None if row.session_id is None else str(row.session_id)

        return await self._db.write(work)


def _revoke_sessions(conn: Connection, user_id: str, keep: str | None) -> list[str]:
    """Revoke the user's live sessions but ``keep``; the ids revoked."""
    live = sa.and_(
        sessions.c.user_id == user_id,
        sessions.c.revoked == sa.false(),
        sessions.c.expires_at >= time.time(),
    )
    if keep is not None:
        live = sa.and_(live, sessions.c.id != keep)
    ids = [str(r.id) for r in conn.execute(sa.select(sessions.c.id).where(live)).all()]
    if ids:
        conn.execute(sessions.update().where(sessions.c.id.in_(ids)).values(revoked=True))
        conn.execute(sa.delete(tickets).where(tickets.c.session_id.in_(ids)))
    return ids
