"""Rendering staff pages: the layout with the user, CSRF token and staff nav; the login form."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from server.accounts import StaffUser
from server.web.auth import CSRF_FIELD, describe, sessions
from server.web.templating import STAFF_HEADERS, templates


def staff_page(request: Request, name: str, user: StaffUser | None, context: dict[str, Any],
               status_code: int = 200) -> HTMLResponse:
    """Render a staff template with the user, their CSRF token and the staff nav."""
    ctx = {"user": describe(user), "csrf_token": user.csrf if user else "",
           "csrf_field": CSRF_FIELD, **context}
    ctx.setdefault("nav", "staff")
    return templates.TemplateResponse(request, name, ctx, status_code=status_code,
                                      headers=STAFF_HEADERS)


def login_page(request: Request, *, next_url: str, status: int = 200, error: str = "",
               name: str = "") -> HTMLResponse:
    """The login form (401 when it stands in for a protected page)."""
    token, cookie = sessions(request).login_csrf(request)
    response = staff_page(request, "login.html", None, {
        "mode": "login", "next": safe_next(next_url), "error": error, "name": name,
        "login_csrf": token, "title": "Log in"}, status)
    if cookie:
        sessions(request).set_login_cookie(response, cookie)
    return response


def safe_next(url: str) -> str:
    """Only same-site paths: never redirect a login to another site."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/review"
    return url
