"""Staff users (TAs and instructors) and the audit log of who did what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from server.store.base import StoreBase, json_safe
from server.store.errors import StoreError, UnknownUser
from server.store.models import ROLES, AuditEvent, User, utcnow

# What `update_user` may change (session_version only goes up, by `end_sessions`).
USER_FIELDS = frozenset({"password_hash", "token_hash", "token_expires_at", "role",
                         "disabled"})


class Users(StoreBase):
    """Staff accounts, and the audit log every staff action is written to."""

    def add_user(self, name: str, role: str, password_hash: str | None) -> User:
        """Create a user; StoreError when the name is taken or the role unknown."""
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self.writing() as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise StoreError(f"a user named {name!r} already exists")
            user = User(name=name, role=role, password_hash=password_hash, created_at=utcnow())
            s.add(user)
            s.add(AuditEvent(actor="cli", action="user_add", target=name,
                             details={"role": role}, at=utcnow()))
            s.flush()
            return user

    def user(self, name: str) -> User | None:
        """The user with this name, or None."""
        with self.reading() as s:
            return s.scalar(select(User).where(User.name == name))

    def user_by_token_hash(self, token_hash: str) -> User | None:
        """The user whose API token hashes to this, or None."""
        with self.reading() as s:
            return s.scalar(select(User).where(User.token_hash == token_hash))

    def users(self) -> list[User]:
        """Every user, by name."""
        with self.reading() as s:
            return list(s.scalars(select(User).order_by(User.name)))

    def update_user(self, name: str, *, end_sessions: bool = False, **values: Any) -> None:
        """Change a user's password_hash, token_hash, token_expires_at, role or disabled;
        with end_sessions, also end every session they have (in the same transaction)."""
        if not set(values) <= USER_FIELDS:
            raise ValueError(f"only {sorted(USER_FIELDS)} can be changed")
        if end_sessions:
            values["session_version"] = User.session_version + 1  # in SQL: no lost bumps
        if not values:
            return
        with self.writing() as s:
            if s.scalar(select(User.id).where(User.name == name)) is None:
                raise UnknownUser(f"no user named {name!r}: add one with `askta user add`")
            s.execute(update(User).where(User.name == name).values(**values))

    def end_sessions(self, name: str) -> None:
        """End every session of this user: the version their session cookies carry goes up."""
        self.update_user(name, end_sessions=True)

    def audit(self, actor: str, action: str, target: str | None = None,
              details: dict[str, Any] | None = None) -> None:
        """Record who did what."""
        with self.writing() as s:
            s.add(AuditEvent(actor=actor, action=action, target=target,
                             details=json_safe(details or {}), at=utcnow()))
