"""Staff accounts: TA and instructor users, argon2 passwords (pwdlib) and API tokens.

Students are anonymous. Staff log in with a password of at least 12 characters or,
for scripts, a bearer token (`askta user token NAME`) that the database keeps only as
its SHA-256 and that expires (90 days unless told otherwise). Every session carries
the user's session version: logging out, a new password or disabling the account
raises it, which ends every session signed before.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from server.store import ROLES, Store, StoreError

TOKEN_PREFIX = "askta_"
MIN_PASSWORD_CHARS = 12
TOKEN_DAYS = 90  # how long a token lasts unless `askta user token --days` says otherwise
MAX_TOKEN_DAYS = 3650
# An instructor may do everything a TA may.
ROLE_RANK = {"ta": 1, "instructor": 2}

_hasher = PasswordHash((Argon2Hasher(),))


class WeakPassword(ValueError):
    """A password refused for every account: empty, blank or under 12 characters."""


class TokenRefused(Exception):
    """A bearer token that belongs to a user but may not be used: expired, or the account
    is disabled. The message says what to do."""


# --- passwords and tokens ----------------------------------------------------------------
def check_password(password: str) -> None:
    """WeakPassword unless the password has at least MIN_PASSWORD_CHARS characters."""
    if not password.strip():
        raise WeakPassword(f"the password is {'empty' if not password else 'blank'}: "
                           f"use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"the password has only {len(password)} characters: use at least "
                           f"{MIN_PASSWORD_CHARS} characters (a few words make a good one)")


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
    version: int = 0  # the session version a session of theirs must carry

    def can(self, role: str) -> bool:
        """Whether this user has at least this role."""
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


class Accounts:
    """Creating users, checking passwords, sessions and tokens: the library under login and
    the CLI. Every change that must end a user's sessions raises their session version."""

    def __init__(self, store: Store):
        self.store = store

    # --- changes (the CLI) ---------------------------------------------------------------
    def add(self, name: str, role: str, password: str | None) -> None:
        """Create a TA or instructor (password None: a token-only account); StoreError when
        the name is taken or the role unknown, WeakPassword when the password is too short."""
        name = name.strip()
        if not name:
            raise StoreError("the name is empty")
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if password is not None:
            check_password(password)
        self.store.add_user(name, role,
                            hash_password(password) if password is not None else None)

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password and end every session they have."""
        check_password(password)
        self.store.update_user(name, password_hash=hash_password(password), end_sessions=True)
        self.store.audit("cli", "password_changed", name)

    def issue_token(self, name: str, days: int = TOKEN_DAYS) -> str:
        """A new API token for the user that works for `days` days (replacing any earlier
        one); shown once, stored hashed."""
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise ValueError(f"a token must last at least 1 day and at most {MAX_TOKEN_DAYS}, "
                             f"not {days}")
        token = new_token()
        expires = datetime.now(UTC) + timedelta(days=days)
        self.store.update_user(name, token_hash=token_hash(token), token_expires_at=expires)
        self.store.audit("cli", "token_issued", name, {"days": days})
        return token

    def revoke_token(self, name: str) -> None:
        """Remove the user's API token: it stops working at once."""
        self.store.update_user(name, token_hash=None, token_expires_at=None)
        self.store.audit("cli", "token_revoked", name)

    def disable(self, name: str) -> None:
        """The user can no longer log in; their sessions and token stop working at once."""
        self.store.update_user(name, disabled=True, end_sessions=True)
        self.store.audit("cli", "user_disabled", name)

    def enable(self, name: str) -> None:
        """Let a disabled user log in (and use their token, if unexpired) again."""
        self.store.update_user(name, disabled=False)
        self.store.audit("cli", "user_enabled", name)

    def end_sessions(self, name: str) -> None:
        """End every session of the user (logging out ends them on every device)."""
        self.store.end_sessions(name)

    # --- checks (every request) ----------------------------------------------------------
    def login(self, name: str, password: str) -> StaffUser | None:
        """The user if the password is right and the account enabled, else None."""
        user = self.store.user(name.strip())
        if not verify_password(password, user.password_hash if user else None) or user is None:
            return None
        if user.disabled:
            return None
        return StaffUser(user.name, user.role, "session", version=user.session_version)

    def from_token(self, token: str) -> StaffUser | None:
        """The user this bearer token belongs to, or None when it is nobody's; TokenRefused
        when it is theirs but expired or their account is disabled."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        user = self.store.user_by_token_hash(token_hash(token))
        if user is None:
            return None
        if user.disabled:
            raise TokenRefused(f"The account {user.name!r} is disabled: its token no longer "
                               "works.")
        renew = f"issue a new one with `askta user token {user.name}`"
        if user.token_expires_at is None:
            raise TokenRefused(f"That API token has no expiry date and is no longer accepted: "
                               f"{renew}.")
        if user.token_expires_at <= datetime.now(UTC):
            raise TokenRefused(f"That API token expired on "
                               f"{user.token_expires_at:%Y-%m-%d %H:%M} UTC: {renew}.")
        return StaffUser(user.name, user.role, "token")

    def from_session(self, name: str, csrf: str, version: object) -> StaffUser | None:
        """The user a valid session names, if they still exist, are enabled and the session
        carries their current session version (their current role)."""
        if not isinstance(version, int) or isinstance(version, bool):
            return None  # signed before sessions carried a version
        user = self.store.user(name)
        if user is None or user.disabled or user.session_version != version:
            return None
        return StaffUser(user.name, user.role, "session", csrf, version)
