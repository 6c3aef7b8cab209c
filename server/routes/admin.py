"""Staff pages: log in and out, author entries at /admin, and the numbers at /admin/stats."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from indexer.kb import EntryNotFound, KnowledgeBaseError
from indexer.schema import Status
from server.auth import (
    CSRF_FIELD,
    InstructorUser,
    StaffUser,
    TAUser,
    accounts,
    describe,
    page_user,
    sessions,
)
from server.authoring import EntryEditor
from server.deps import ServicesDep
from server.errors import ServiceUnavailable, Unprocessable
from server.render import render_markdown
from server.routes.review import queue
from server.services import Services
from server.templating import STAFF_HEADERS, templates

ENTRY_FIELDS = ("id", "question", "alternate_questions", "answer", "tags", "demo", "status")
STATS_DAYS = 30

router = APIRouter(tags=["admin"])


# --- page helpers ------------------------------------------------------------------------
def staff_page(request: Request, name: str, user: StaffUser | None, context: dict[str, Any],
               status_code: int = 200) -> HTMLResponse:
    """Render a staff template with the user, their CSRF token and the staff nav."""
    ctx = {"user": describe(user), "csrf_token": user.csrf if user else "",
           "csrf_field": CSRF_FIELD, **context}
    ctx.setdefault("nav", "staff")
    return templates.TemplateResponse(request, name, ctx, status_code=status_code,
                                      headers=STAFF_HEADERS)


async def guard_page(request: Request, role: str) -> StaffUser | Response:
    """The user when allowed; else a 401 login page or a 403 page, to return as is."""
    user, status, why = await page_user(request, role)
    if status == 401:
        return login_page_response(request, next_url=request.url.path, status=401)
    if status == 403 or user is None:
        return staff_page(request, "login.html", user, {
            "mode": "forbidden", "needed": role, "why": why, "title": "Not allowed"}, 403)
    return user


def login_page_response(request: Request, *, next_url: str, status: int = 200,
                        error: str = "", name: str = "") -> HTMLResponse:
    """The login form (401 when it stands in for a protected page)."""
    token, cookie = sessions(request).login_csrf(request)
    response = staff_page(request, "login.html", None, {
        "mode": "login", "next": _safe_next(next_url), "error": error, "name": name,
        "login_csrf": token, "title": "Log in"}, status)
    if cookie:
        sessions(request).set_login_cookie(response, cookie)
    return response


def _safe_next(url: str) -> str:
    """Only same-site paths: never redirect a login to another site."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/review"
    return url


def _editor(services: Services) -> EntryEditor:
    return EntryEditor(services.kb, services.searcher, services.store)


# --- login -------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/review") -> Response:
    """The login form for TAs and instructors."""
    return login_page_response(request, next_url=next)


@router.post("/login", include_in_schema=False)
async def login(request: Request, name: str = Form(""), password: str = Form(""),
                csrf_token: str = Form(""), next: str = Form("/review")) -> Response:
    """Check the password and start a session; back to the form with a message if wrong."""
    if not sessions(request).check_login_csrf(request, csrf_token):
        return login_page_response(request, next_url=next, status=403, name=name,
                                         error="The form expired: please try again.")
    user = await run_in_threadpool(accounts(request).login, name, password)
    if user is None:
        return login_page_response(request, next_url=next, status=401, name=name,
                                         error="Wrong name or password.")
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions(request).start(response, user)
    await run_in_threadpool(request.app.state.services.store.audit, user.name, "login")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the session (the form carries the CSRF token; a stale one still logs out)."""
    response = RedirectResponse("/", status_code=303)
    sessions(request).end(response)
    return response


# --- authoring ---------------------------------------------------------------------------
@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
async def admin_index(request: Request, services: ServicesDep) -> Response:
    """Every entry, with its status, for instructors to open and edit."""
    user = await guard_page(request, "instructor")
    if isinstance(user, Response):
        return user
    entries = sorted(services.kb.entries.values(), key=lambda e: (e.status != Status.published,
                                                                  e.id))
    return staff_page(request, "admin.html", user, {
        "entries": entries, "nav": "admin", "saved": request.query_params.get("saved")})


@router.get("/admin/entries/new", response_class=HTMLResponse, include_in_schema=False)
async def new_entry_form(request: Request, services: ServicesDep) -> Response:
    """An empty entry form."""
    user = await guard_page(request, "instructor")
    if isinstance(user, Response):
        return user
    values = {"id": "", "question": "", "alternate_questions": "", "answer": "", "tags": "",
              "demo": "", "status": "draft"}
    return _entry_form(request, services, user, values, {}, create=True)


@router.post("/admin/entries/new", response_class=HTMLResponse, include_in_schema=False)
async def create_entry(request: Request, services: ServicesDep) -> Response:
    """Create an entry from the form; errors go back next to their fields."""
    return await _save_from_form(request, services, None)


@router.get("/admin/entries/{entry_id}", response_class=HTMLResponse, include_in_schema=False)
async def edit_entry_form(request: Request, entry_id: str, services: ServicesDep) -> Response:
    """The form for one entry, filled in."""
    user = await guard_page(request, "instructor")
    if isinstance(user, Response):
        return user
    try:
        e = services.kb.get(entry_id)
    except EntryNotFound:
        return staff_page(request, "login.html", user, {"mode": "missing", "entry_id": entry_id,
                                                        "title": "No such entry"}, 404)
    values = {"id": e.id, "question": e.question,
              "alternate_questions": "\n".join(e.alternate_questions), "answer": e.answer,
              "tags": ", ".join(e.tags), "demo": e.demo or "", "status": e.status.value}
    return _entry_form(request, services, user, values, {}, create=False,
                       saved=request.query_params.get("saved") == "1")


@router.post("/admin/entries/{entry_id}", response_class=HTMLResponse, include_in_schema=False)
async def update_entry(request: Request, entry_id: str, services: ServicesDep) -> Response:
    """Save the edited entry; it is reindexed at once."""
    return await _save_from_form(request, services, entry_id)


async def _save_from_form(request: Request, services: Services,
                          entry_id: str | None) -> Response:
    user = await guard_page(request, "instructor")
    if isinstance(user, Response):
        return user
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ENTRY_FIELDS}
    if entry_id is not None:
        values["id"] = entry_id
    try:
        saved = await run_in_threadpool(_editor(services).save, values, by=user.name,
                                        entry_id=entry_id)
    except EntryNotFound:
        return staff_page(request, "login.html", user, {"mode": "missing", "entry_id": entry_id,
                                                        "title": "No such entry"}, 404)
    except KnowledgeBaseError as e:
        errors: dict[str, str] = {}
        for p in e.problems:
            errors.setdefault((p.field or "entry").split("[")[0], p.message)
        return _entry_form(request, services, user, values, errors, create=entry_id is None,
                           status_code=422)
    return RedirectResponse(f"/admin/entries/{quote(saved.id)}?saved=1", status_code=303)


def _entry_form(request: Request, services: Services, user: StaffUser, values: dict[str, str],
                errors: dict[str, str], *, create: bool, saved: bool = False,
                status_code: int = 200) -> HTMLResponse:
    return staff_page(request, "admin_entry.html", user, {
        "values": values, "errors": errors, "create": create, "saved": saved,
        "demos": _editor(services).demo_files(), "statuses": [s.value for s in Status],
        "preview_html": render_markdown(values.get("answer", "")),
        "can_run": services.sandbox is not None, "sandbox_error": services.sandbox_error,
        "nav": "admin", "title": "New entry" if create else f"Edit {values.get('id')}",
    }, status_code)


class PreviewRequest(BaseModel):
    """Markdown to render as the chat would show it."""

    markdown: str = Field("", max_length=50_000)


@router.post("/api/admin/preview")
def preview(body: PreviewRequest, user: TAUser) -> dict[str, str]:
    """The sanitized HTML of an answer, for the live preview."""
    return {"html": render_markdown(body.markdown)}


class DemoTestRequest(BaseModel):
    """A demo file of the project to run in the sandbox."""

    demo: str = Field(min_length=1, max_length=300)
    device: Literal["auto", "cpu", "cuda"] = "auto"


@router.post("/api/admin/demo/test")
async def test_demo(body: DemoTestRequest, services: ServicesDep,
                    user: InstructorUser) -> dict[str, Any]:
    """Run a demo file in the sandbox, as the "test demo" button does."""
    from server.sandbox.errors import DeviceUnavailable, SandboxBusy, SandboxError

    try:
        code = _editor(services).read_demo(body.demo)
    except KnowledgeBaseError as e:
        raise Unprocessable(str(e)) from None
    if services.sandbox is None:
        raise ServiceUnavailable(services.sandbox_error or "Demo runs are not available here.")
    try:
        result = await run_in_threadpool(services.sandbox.run, code, body.device)
    except SandboxBusy as e:
        retry = str(max(1, round(getattr(e, "retry_after", 5))))
        raise ServiceUnavailable("Every demo runner is busy: try again shortly.",
                                 headers={"Retry-After": retry}) from None
    except DeviceUnavailable as e:
        raise Unprocessable(str(e) or "That device is not available here.") from None
    except SandboxError as e:
        raise ServiceUnavailable(f"Demo runs are not available: {e}") from None
    data = result.to_dict()
    services.store.record_demo_run(body.demo, str(data.get("status")),
                                   device=str(data.get("device", "")),
                                   duration_ms=int(data.get("duration_ms") or 0))
    return data


# --- statistics --------------------------------------------------------------------------
def collect_stats(services: Services) -> dict[str, Any]:
    """Everything /admin/stats shows, as JSON-ready data."""
    store = services.store
    summary = store.summary()
    groups = queue(services).groups()
    titles = {e.id: e.question for e in services.kb.entries.values()}
    return {
        "summary": summary,
        "per_day": store.questions_per_day(STATS_DAYS),
        "top_unanswered": [{"key": g.key, "question": g.question, "count": g.count,
                            "last_asked": g.last_asked.isoformat(),
                            "review_id": g.items[0].id} for g in groups[:10]],
        "top_entries": [{**r, "question": titles.get(r["entry_id"], r["entry_id"])}
                        for r in store.top_entries(10)],
        "not_helpful": [{**r, "question": titles.get(r["entry_id"], r["entry_id"])}
                        for r in store.feedback_by_entry()],
    }


@router.get("/api/admin/stats")
def stats_json(services: ServicesDep, user: TAUser) -> dict[str, Any]:
    """Questions per day, share answered, top unanswered groups, most-used entries, rates."""
    return collect_stats(services)


@router.get("/admin/stats", response_class=HTMLResponse, include_in_schema=False)
async def stats_page(request: Request, services: ServicesDep) -> Response:
    """The numbers, with a chart of questions per day."""
    user = await guard_page(request, "ta")
    if isinstance(user, Response):
        return user
    stats = await run_in_threadpool(collect_stats, services)
    return staff_page(request, "stats.html", user, {"stats": stats, "chart": _chart(stats),
                                                    "nav": "stats", "title": "Statistics"})


def _chart(stats: dict[str, Any]) -> dict[str, Any]:
    """Bar geometry for the SVG chart of questions per day (answered stacked on asked)."""
    days = stats["per_day"]
    peak = max([d["asked"] for d in days] + [1])
    width, height, gap = 600, 160, 2
    bar = (width - gap * len(days)) / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        h_all = height * d["asked"] / peak
        h_ok = height * d["answered"] / peak
        x = i * (bar + gap)
        bars.append({"x": round(x, 1), "w": round(bar, 1), "day": d["day"],
                     "asked": d["asked"], "answered": d["answered"],
                     "y_all": round(height - h_all, 1), "h_all": round(h_all, 1),
                     "y_ok": round(height - h_ok, 1), "h_ok": round(h_ok, 1)})
    return {"bars": bars, "width": width, "height": height, "peak": peak}
