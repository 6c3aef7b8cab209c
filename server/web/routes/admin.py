"""Authoring at /admin: instructors list, create and edit entries, preview answers and
test demos."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from indexer.kb import EntryNotFound, KnowledgeBaseError
from indexer.schema import Status
from server.accounts import StaffUser
from server.sandbox.errors import SandboxError
from server.services import Services
from server.web.auth import InstructorUser, TAUser, require_page_user
from server.web.deps import ServicesDep
from server.web.errors import NotFound, ServiceUnavailable, Unprocessable, sandbox_refusal
from server.web.markdown import render_markdown
from server.web.presenters import sandbox_notice
from server.web.staff_pages import staff_page

ENTRY_FIELDS = ("id", "question", "alternate_questions", "answer", "tags", "demo", "status")

router = APIRouter(tags=["admin"])


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
async def admin_index(request: Request, services: ServicesDep) -> Response:
    """Every entry, with its status, for instructors to open and edit."""
    user = await require_page_user(request, "instructor")
    entries = sorted(services.kb.entries.values(), key=lambda e: (e.status != Status.published,
                                                                  e.id))
    return staff_page(request, "admin.html", user, {
        "entries": entries, "nav": "admin", "saved": request.query_params.get("saved")})


@router.get("/admin/entries/new", response_class=HTMLResponse, include_in_schema=False)
async def new_entry_form(request: Request, services: ServicesDep) -> Response:
    """An empty entry form."""
    user = await require_page_user(request, "instructor")
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
    user = await require_page_user(request, "instructor")
    try:
        e = services.kb.get(entry_id)
    except EntryNotFound:
        raise NotFound(f"There is no entry {entry_id!r}.") from None
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
    user = await require_page_user(request, "instructor")
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ENTRY_FIELDS}
    if entry_id is not None:
        values["id"] = entry_id
    try:
        saved = await run_in_threadpool(services.editor.save, values, by=user.name,
                                        entry_id=entry_id)
    except EntryNotFound:
        raise NotFound(f"There is no entry {entry_id!r}.") from None
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
        "demos": services.editor.demo_files(), "statuses": [s.value for s in Status],
        "preview_html": render_markdown(values.get("answer", "")),
        "can_run": services.sandbox is not None, "sandbox_error": sandbox_notice(services),
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
    try:
        code = services.editor.read_demo(body.demo)
    except KnowledgeBaseError as e:
        raise Unprocessable(str(e)) from None
    if services.sandbox is None:
        raise ServiceUnavailable(sandbox_notice(services) or "Demo runs are not available here.")
    try:
        result = await run_in_threadpool(services.sandbox.run, code, body.device)
    except SandboxError as e:
        raise sandbox_refusal(e) from None
    data = result.to_dict()
    services.store.record_demo_run(body.demo, str(data.get("status")),
                                   device=str(data.get("device", "")),
                                   duration_ms=int(data.get("duration_ms") or 0))
    return data
