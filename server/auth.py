"""Who may do what: TA and instructor logins, API tokens, CSRF, and route guards.

Students are anonymous. Staff log in with a password (argon2 hash, via pwdlib)
and get a signed session cookie (itsdangerous) that carries a CSRF token; forms
and the pages' JavaScript send that token back on every change. Scripts use a
bearer token instead (`askta user token NAME`), stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.errors import Forbidden, Unauthorized
from server.store import ROLES, Store, StoreError

SESSION_COOKIE = "askta_session"
LOGIN_CSRF_COOKIE = "askta_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "askta_"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# An instructor may do everything a TA may.
ROLE_RANK = {"ta": 1, "instructor": 2}

_hasher = PasswordHash((Argon2Hasher(),))
_UNSET = object()


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


def secret_key(settings: Settings) -> str:
    """settings.secret_key, or one generated once and kept in data_dir/secret_key."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker wrote it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key


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


# --- sessions ----------------------------------------------------------------------------
class Sessions:
    """Signed, timed session cookies carrying the user's name and a CSRF token."""

    def __init__(self, settings: Settings):
        key = secret_key(settings)
        self.max_age = settings.session_max_age_s
        self.secure = settings.secure_cookies
        self._session = URLSafeTimedSerializer(key, salt="askta-session")
        self._login = URLSafeTimedSerializer(key, salt="askta-login-csrf")

    def read(self, request: Request) -> dict[str, str] | None:
        """The session payload from the request's cookie, if it is valid and fresh."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._session.loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            return None
        return data

    def start(self, response: Response, user: StaffUser) -> str:
        """Set the session cookie for a user who just logged in; return the CSRF token."""
        csrf = secrets.token_urlsafe(24)
        value = self._session.dumps({"u": user.name, "c": csrf})
        response.set_cookie(SESSION_COOKIE, value, max_age=self.max_age, httponly=True,
                            samesite="lax", secure=self.secure, path="/")
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return csrf

    def end(self, response: Response) -> None:
        """Forget the session."""
        response.delete_cookie(SESSION_COOKIE, path="/")

    def login_csrf(self, request: Request) -> tuple[str, str | None]:
        """A CSRF token for the login form (no session exists yet), and a cookie to set if new.

        The token is bound to a signed cookie: the form must send back the token in its cookie.
        """
        raw = request.cookies.get(LOGIN_CSRF_COOKIE)
        if raw:
            try:
                token = self._login.loads(raw, max_age=self.max_age)
                if isinstance(token, str):
                    return token, None
            except BadSignature:
                pass
        token = secrets.token_urlsafe(24)
        return token, self._login.dumps(token)

    def set_login_cookie(self, response: Response, value: str) -> None:
        """Set the cookie that a login form's CSRF token is checked against."""
        response.set_cookie(LOGIN_CSRF_COOKIE, value, max_age=self.max_age, httponly=True,
                            samesite="lax", secure=self.secure, path="/")

    def check_login_csrf(self, request: Request, submitted: str) -> bool:
        """Whether the login form's token matches its cookie."""
        raw = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not raw or not submitted:
            return False
        try:
            token = self._login.loads(raw, max_age=self.max_age)
        except BadSignature:
            return False
        return isinstance(token, str) and hmac.compare_digest(token, submitted)


def sessions(request: Request) -> Sessions:
    """The app's session signer, built once per app."""
    found = getattr(request.app.state, "askta_sessions", None)
    if found is None:
        found = Sessions(request.app.state.settings)
        request.app.state.askta_sessions = found
    return found  # type: ignore[no-any-return]


def accounts(request: Request) -> Accounts:
    """Accounts over the app's store."""
    return Accounts(request.app.state.services.store)


# --- dependencies ------------------------------------------------------------------------
async def optional_user(request: Request) -> StaffUser | None:
    """The staff member making this request (bearer token or session cookie), or None.

    A request authenticated by the session cookie that changes something must carry
    the session's CSRF token (X-CSRF-Token header or the form's csrf_token field).
    """
    cached = getattr(request.state, "askta_user", _UNSET)
    if cached is not _UNSET:
        return cast(StaffUser | None, cached)
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.method not in SAFE_METHODS and request.headers.get(
            "content-type", "").startswith(("application/x-www-form-urlencoded",
                                            "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)  # FastAPI has already parsed it
        sent = value if isinstance(value, str) else ""
    user = await run_in_threadpool(_authenticate, request, sent)
    request.state.askta_user = user
    return user


def _authenticate(request: Request, sent_csrf: str) -> StaffUser | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send 'Authorization: Bearer <token>' (see `askta user token`).")
        user = accounts(request).from_token(token.strip())
        if user is None:
            raise Unauthorized("That API token is not valid: issue a new one with "
                               "`askta user token NAME`.")
        return user
    data = sessions(request).read(request)
    if data is None:
        return None
    user = accounts(request).from_session(data["u"], str(data.get("c", "")))
    if user is None:
        return None
    if request.method not in SAFE_METHODS and not (
            sent_csrf and hmac.compare_digest(sent_csrf, user.csrf)):
        raise Forbidden("The request is missing its CSRF token or it is stale: reload the page "
                        "and try again.")
    return user


def current_user(user: Annotated[StaffUser | None, Depends(optional_user)]) -> StaffUser:
    """The logged-in staff member; 401 for anyone else."""
    if user is None:
        raise Unauthorized("Log in as a TA or instructor (or send a bearer token).")
    return user


def require_role(role: str) -> Callable[..., StaffUser]:
    """A dependency: the user must have at least `role` ("ta" or "instructor"); 401/403."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def dependency(user: Annotated[StaffUser, Depends(current_user)]) -> StaffUser:
        if not user.can(role):
            raise Forbidden(f"This needs the {role} role; you are logged in as a {user.role}.")
        return user

    dependency.__name__ = f"require_{role}"
    return dependency


OptionalUser = Annotated[StaffUser | None, Depends(optional_user)]
CurrentUser = Annotated[StaffUser, Depends(current_user)]
TAUser = Annotated[StaffUser, Depends(require_role("ta"))]
InstructorUser = Annotated[StaffUser, Depends(require_role("instructor"))]


async def page_user(request: Request, role: str) -> tuple[StaffUser | None, int, str]:
    """For HTML pages: (user, 200, ""), or (None, 401, why) or (user|None, 403, why)."""
    try:
        user = await optional_user(request)
    except Unauthorized as e:
        return None, 401, e.message
    except Forbidden as e:
        return None, 403, e.message
    if user is None:
        return None, 401, "Log in as a TA or instructor."
    if not user.can(role):
        return user, 403, f"This page needs the {role} role; you are logged in as a {user.role}."
    return user, 200, ""


def describe(user: StaffUser | None) -> dict[str, Any] | None:
    """A user as templates and JSON see them."""
    return {"name": user.name, "role": user.role} if user else None
