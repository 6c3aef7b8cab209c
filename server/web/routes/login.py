"""Staff log in and out: the login form, sessions started and ended."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server.web.auth import accounts, sessions
from server.web.deps import ServicesDep
from server.web.staff_pages import login_page, safe_next

router = APIRouter(tags=["login"])


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/review") -> Response:
    """The login form for TAs and instructors."""
    return login_page(request, next_url=next)


@router.post("/login", include_in_schema=False)
async def login(request: Request, services: ServicesDep, name: str = Form(""),
                password: str = Form(""), csrf_token: str = Form(""),
                next: str = Form("/review")) -> Response:
    """Check the password and start a session; back to the form with a message if wrong."""
    if not sessions(request).check_login_csrf(request, csrf_token):
        return login_page(request, next_url=next, status=403, name=name,
                          error="The form expired: please try again.")
    user = await run_in_threadpool(accounts(request).login, name, password)
    if user is None:
        return login_page(request, next_url=next, status=401, name=name,
                          error="Wrong name or password.")
    response = RedirectResponse(safe_next(next), status_code=303)
    sessions(request).start(response, user)
    await run_in_threadpool(services.store.audit, user.name, "login")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the session (the form carries the CSRF token; a stale one still logs out)."""
    response = RedirectResponse("/", status_code=303)
    sessions(request).end(response)
    return response
