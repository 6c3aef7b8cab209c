"""Who may do what, for routes: the staff member behind a request, CSRF, and guards.

Forms and the pages' JavaScript send the session's CSRF token back on every
change (X-CSRF-Token header or the csrf_token field); scripts send a bearer token.
API routes declare `TAUser`/`InstructorUser`; pages call `require_page_user`, which
raises `LoginRequired` or `Forbidden` for the one error handler to render.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from server.accounts import ROLE_RANK, Accounts, StaffUser, TokenRefused
from server.web.errors import Forbidden, LoginRequired, Unauthorized
from server.web.sessions import Sessions

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_UNSET = object()


def sessions(request: Request) -> Sessions:
    """The app's session signer (built once, in Services.start)."""
    return request.app.state.services.sessions  # type: ignore[no-any-return]


def accounts(request: Request) -> Accounts:
    """The accounts over the app's store."""
    return request.app.state.services.accounts  # type: ignore[no-any-return]


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
        try:
            user = accounts(request).from_token(token.strip())
        except TokenRefused as e:
            raise Unauthorized(str(e)) from None
        if user is None:
            raise Unauthorized("That API token is not valid: issue a new one with "
                               "`askta user token NAME`.")
        return user
    data = sessions(request).read(request)
    if data is None:
        return None
    user = accounts(request).from_session(data["u"], str(data.get("c", "")), data.get("v"))
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


async def require_page_user(request: Request, role: str) -> StaffUser:
    """For HTML pages: the user with at least `role`; else LoginRequired or Forbidden,
    which the error handler renders as the login form or a "not allowed" page."""
    try:
        user = await optional_user(request)
    except Unauthorized as e:
        raise LoginRequired(e.message) from None
    if user is None:
        raise LoginRequired("Log in as a TA or instructor.")
    if not user.can(role):
        raise Forbidden(f"This page needs the {role} role; you are logged in as a {user.role}.")
    return user


def describe(user: StaffUser | None) -> dict[str, Any] | None:
    """A user as templates and JSON see them."""
    return {"name": user.name, "role": user.role} if user else None
