"""Staff accounts: TA and instructor users, argon2 passwords (pwdlib) and API tokens.

Students are anonymous. Staff log in with a password or, for scripts, a bearer
token (`askta user token NAME`) that the database keeps only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from server.store import ROLES, Store, StoreError

TOKEN_PREFIX = "askta_"
# An instructor may do everything a TA may.
ROLE_RANK = {"ta": 1, "instructor": 2}

_hasher = PasswordHash((Argon2Hasher(),))


# --- passwords and tokens ----------------------------------------------------------------
def hash_password(password: str) -> str:
    """An argon2 hash of the password."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether the password matches the hash (False when the user has no password)."""
    if not password_hash:
        _hasher.hash(password)  # same cost either way, so timing says nothing about names
        return False
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # a corrupt or foreign hash is a failed login, not a crash
        return False


def new_token() -> str:
    """A fresh random API token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256 (tokens are random, so no salt)."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- users -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaffUser:
    """A logged-in TA or instructor, as routes see them."""

    name: str
    role: str
    via: str  # "session" or "token"
    csrf: str = ""

    def can(self, role: str) -> bool:
        """Whether this user has at least this role."""
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


class Accounts:
    """Creating users, checking passwords and tokens: the library under login and the CLI."""

    def __init__(self, store: Store):
        self.store = store

    def add(self, name: str, role: str, password: str | None) -> None:
        """Create a TA or instructor; StoreError when the name is taken or the role unknown."""
        name = name.strip()
        if not name:
            raise StoreError("the name is empty")
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        self.store.add_user(name, role, hash_password(password) if password else None)

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password."""
        self.store.update_user(name, password_hash=hash_password(password))

    def issue_token(self, name: str) -> str:
        """A new API token for the user (replacing any earlier one); shown once, stored hashed."""
        token = new_token()
        self.store.update_user(name, token_hash=token_hash(token))
        self.store.audit("cli", "token_issued", name)
        return token

    def login(self, name: str, password: str) -> StaffUser | None:
        """The user if the password is right, else None."""
        user = self.store.user(name.strip())
        if not verify_password(password, user.password_hash if user else None) or user is None:
            return None
        return StaffUser(user.name, user.role, "session")

    def from_token(self, token: str) -> StaffUser | None:
        """The user this bearer token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        user = self.store.user_by_token_hash(token_hash(token))
        return StaffUser(user.name, user.role, "token") if user else None

    def from_session(self, name: str, csrf: str) -> StaffUser | None:
        """The user a valid session names, if they still exist (their current role)."""
        user = self.store.user(name)
        return StaffUser(user.name, user.role, "session", csrf) if user else None


