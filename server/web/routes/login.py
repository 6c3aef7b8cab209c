"""Staff log in and out: the login form, sessions started and ended.

Login attempts are throttled per account and per address before the password is
hashed, and hashing runs in a few threads at most (server/web/throttle.py).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server.web.auth import CSRF_HEADER, accounts, sessions
from server.web.clients import client_id
from server.web.deps import ServicesDep
from server.web.errors import Forbidden
from server.web.staff_pages import login_page, safe_next
from server.web.throttle import HashingBusy, ThrottleUnavailable

router = APIRouter(tags=["login"])


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/review") -> Response:
    """The login form for TAs and instructors."""
    return login_page(request, next_url=next)


@router.post("/login", include_in_schema=False)
async def login(request: Request, services: ServicesDep, name: str = Form(""),
                password: str = Form(""), csrf_token: str = Form(""),
                next: str = Form("/review")) -> Response:
    """Check the password and start a session; back to the form with a message if wrong,
    throttled (429) or too busy to check it (503)."""
    if not sessions(request).check_login_csrf(request, csrf_token):
        return login_page(request, next_url=next, status=403, name=name,
                          error="The form expired: please try again.")
    throttle = services.login_throttle
    try:  # in a worker thread: the counters may be a round trip to Redis
        wait = await run_in_threadpool(throttle.attempt, name, client_id(request))
    except ThrottleUnavailable:
        return _refused(request, next, name, 503, 5,
                        "Logins cannot be checked right now: try again in a moment.")
    if wait is not None:
        return _refused(request, next, name, 429, int(wait),
                        f"Too many login attempts: try again in {_duration(wait)}.")
    try:
        user = await throttle.hashing(accounts(request).login, name, password)
    except HashingBusy:
        return _refused(request, next, name, 503, 1,
                        "The server is busy checking other logins: try again in a moment.")
    if user is None:
        return login_page(request, next_url=next, status=401, name=name,
                          error="Wrong name or password.")
    await run_in_threadpool(throttle.succeeded, name)
    response = RedirectResponse(safe_next(next), status_code=303)
    sessions(request).start(response, user)
    await run_in_threadpool(services.store.audit, user.name, "login")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, csrf_token: str = Form("")) -> Response:
    """End the session, and every other session of the user: their session version goes
    up, so a copy of the cookie stops working too. A live session must send its CSRF
    token (the form carries it), so another site cannot log staff out; without a live
    session (expired, ended, or none) there is nothing to protect or end and the cookie is
    simply cleared."""
    data = sessions(request).read(request)
    if data is not None:
        sent = request.headers.get(CSRF_HEADER) or csrf_token
        if not (sent and hmac.compare_digest(sent.encode(), str(data.get("c", "")).encode())):
            raise Forbidden("The logout form is missing its CSRF token or it is stale: reload "
                            "the page and try again.")
        await run_in_threadpool(_end_sessions, request, data)
    response = RedirectResponse("/", status_code=303)
    sessions(request).end(response)
    return response


def _end_sessions(request: Request, data: dict[str, Any]) -> None:
    """Raise the user's session version, if this session is still current: an old cookie
    (from before a password change) must not end the sessions started since."""
    user = accounts(request).from_session(data["u"], str(data.get("c", "")), data.get("v"))
    if user is not None:
        accounts(request).end_sessions(user.name)
        accounts(request).store.audit(user.name, "logout")


def _refused(request: Request, next_url: str, name: str, status: int, retry_after: int,
             message: str) -> Response:
    response = login_page(request, next_url=next_url, status=status, name=name, error=message)
    response.headers["Retry-After"] = str(max(1, retry_after))
    return response


def _duration(seconds: float) -> str:
    """'42 s', '9 min', '2 h': how long to wait, as people say it."""
    s = max(1, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 2 * 3600:
        return f"{(s + 59) // 60} min"
    return f"{(s + 3599) // 3600} h"
