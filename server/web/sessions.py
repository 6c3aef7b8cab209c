"""Signed, timed session cookies (itsdangerous) that carry a CSRF token, and their key."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from server.accounts import StaffUser
from server.config import SecretKeyError as SecretKeyError  # raised here, defined with settings
from server.config import Settings

SESSION_COOKIE = "askta_session"
LOGIN_CSRF_COOKIE = "askta_login_csrf"


MIN_KEY_CHARS = 32
KEY_FILE = "secret_key"


def secret_key(settings: Settings) -> str:
    """settings.secret_key, or the key generated once and kept in data_dir/secret_key.

    A key shorter than 32 characters (empty included: a crash or a full disk while it
    was written) would let anyone sign a session for any user, so it stops start-up.
    A new key is written to a temporary file, fsynced, and linked into place, so the
    file is either absent or whole, and two processes starting at once agree on one.
    """
    if settings.secret_key is not None:
        return _checked(settings.secret_key, "ASKTA_SECRET_KEY")
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SecretKeyError(f"cannot read the session key {path}: {e}") from None
    return _checked(text, str(path), remedy=f"delete {path} so a new key is generated "
                    "(everyone logs in again)")


GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _checked(key: str, where: str, remedy: str = "") -> str:
    key = key.strip()
    if len(key) < MIN_KEY_CHARS:
        what = "is empty" if not key else f"has only {len(key)} characters"
        raise SecretKeyError(
            f"the session key in {where} {what}; it needs at least {MIN_KEY_CHARS} random "
            f"characters: {remedy or 'set one made by ' + GENERATE}")
    return key


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process linked its key first: use theirs
        except FileExistsError:
            pass
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        os.unlink(tmp)


# --- sessions ----------------------------------------------------------------------------
class Sessions:
    """Signed, timed session cookies carrying the user's name, a CSRF token and the user's
    session version ({"u", "c", "v"}): a cookie whose version is no longer the user's (they
    logged out, changed their password or were disabled) is refused by `Accounts`."""

    def __init__(self, settings: Settings):
        key = secret_key(settings)
        self.max_age = settings.session_max_age_s
        self.secure = settings.secure_cookies
        self._session = URLSafeTimedSerializer(key, salt="askta-session")
        self._login = URLSafeTimedSerializer(key, salt="askta-login-csrf")

    def read(self, request: Request) -> dict[str, Any] | None:
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
        value = self._session.dumps({"u": user.name, "c": csrf, "v": user.version})
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


