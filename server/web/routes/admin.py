"""Authoring at /admin: instructors list, create and edit entries, preview answers and
test demos."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from indexer.kb import EntryNotFound, KnowledgeBaseError
from indexer.schema import Entry, Status
from server.accounts import StaffUser
from server.review.authoring import VersionConflict, entry_version
from server.runs import RunRequest
from server.services import Services
from server.web.auth import InstructorUser, TAUser, require_page_user
from server.web.demo_runs import run_to_end
from server.web.deps import ServicesDep
from server.web.errors import (
    BODY_ERRORS,
    STAFF_ERRORS,
    ErrorBody,
    NotFound,
    Unprocessable,
    error_responses,
    problems_by_field,
)
from server.web.markdown import render_markdown
from server.web.presenters import EntrySource, entry_source, etag, sandbox_notice
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
    return _entry_form(request, services, user, _form_values(e), {}, create=False,
                       saved=request.query_params.get("saved") == "1",
                       version=entry_version(e))


@router.post("/admin/entries/{entry_id}", response_class=HTMLResponse, include_in_schema=False)
async def update_entry(request: Request, entry_id: str, services: ServicesDep) -> Response:
    """Save the edited entry; it is reindexed at once."""
    return await _save_from_form(request, services, entry_id)


async def _save_from_form(request: Request, services: Services,
                          entry_id: str | None) -> Response:
    user = await require_page_user(request, "instructor")
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ENTRY_FIELDS}
    # The version the form was loaded at: a save over someone else's is refused (409).
    version = str(form.get("version", "")) or None
    if entry_id is not None:
        values["id"] = entry_id
    try:
        saved = await run_in_threadpool(services.editor.save, values, by=user.name,
                                        entry_id=entry_id,
                                        if_match=version if entry_id is not None else None)
    except EntryNotFound:
        raise NotFound(f"There is no entry {entry_id!r}.") from None
    except VersionConflict as e:
        # Nothing typed is lost: the form comes back with the user's text, their version
        # to compare with, and the current version in the hidden field, so that Save
        # again replaces it knowingly.
        theirs = _form_values(e.current) if e.current is not None else None
        return _entry_form(request, services, user, values, {}, create=False,
                           status_code=409, conflict={"current": theirs},
                           version=entry_version(e.current) if e.current else version)
    except KnowledgeBaseError as e:
        return _entry_form(request, services, user, values, problems_by_field(e),
                           create=entry_id is None,
                           status_code=422, version=version)
    return RedirectResponse(f"/admin/entries/{quote(saved.id)}?saved=1", status_code=303)


def _form_values(e: Entry) -> dict[str, str]:
    """An entry's fields as the form shows them."""
    return {"id": e.id, "question": e.question,
            "alternate_questions": "\n".join(e.alternate_questions), "answer": e.answer,
            "tags": ", ".join(e.tags), "demo": e.demo or "", "status": e.status.value}


def _entry_form(request: Request, services: Services, user: StaffUser, values: dict[str, str],
                errors: dict[str, str], *, create: bool, saved: bool = False,
                status_code: int = 200, version: str | None = None,
                conflict: dict[str, Any] | None = None) -> HTMLResponse:
    return staff_page(request, "admin_entry.html", user, {
        "values": values, "errors": errors, "create": create, "saved": saved,
        "version": version or "", "conflict": conflict,
        "demos": services.editor.demo_files(), "statuses": [s.value for s in Status],
        "preview_html": render_markdown(values.get("answer", "")),
        "can_run": services.runs.available, "sandbox_error": sandbox_notice(services),
        "nav": "admin", "title": "New entry" if create else f"Edit {values.get('id')}",
    }, status_code)


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No login session or bearer token."},
    403: {"model": ErrorBody, "description": "Not an instructor."},
}


@router.get("/api/admin/entries", responses=ADMIN_ERRORS)
def list_entry_sources(services: ServicesDep, user: InstructorUser) -> list[EntrySource]:
    """Every entry, whatever its status, with all its fields and its ETag (instructors)."""
    entries = services.kb.entries
    return [EntrySource(**entry_source(entries[k])) for k in sorted(entries)]


@router.get("/api/admin/entries/{entry_id}", response_model=EntrySource,
            responses={**ADMIN_ERRORS, 404: {"model": ErrorBody,
                                            "description": "No such entry."}})
def get_entry_source(entry_id: str, services: ServicesDep, user: InstructorUser,
                     response: Response) -> dict[str, Any]:
    """One entry, whatever its status, with all its fields (instructors); the ETag header
    (also `etag` in the body) is its version, for If-Match on PUT / DELETE
    /api/entries/{id}."""
    entry = services.kb.get(entry_id)  # EntryNotFound: 404
    response.headers["ETag"] = etag(entry)
    return entry_source(entry)


class PreviewRequest(BaseModel):
    """Markdown to render as the chat would show it."""

    markdown: str = Field("", max_length=50_000)


@router.post("/api/admin/preview", responses=error_responses(*STAFF_ERRORS, *BODY_ERRORS))
def preview(body: PreviewRequest, user: TAUser) -> dict[str, str]:
    """The sanitized HTML of an answer, for the live preview."""
    return {"html": render_markdown(body.markdown)}


class DemoTestRequest(BaseModel):
    """A demo file of the project to run in the sandbox."""

    demo: str = Field(min_length=1, max_length=300)
    device: Literal["auto", "cpu", "cuda"] = "auto"


@router.post("/api/admin/demo/test",
             responses=error_responses(*STAFF_ERRORS, *BODY_ERRORS, 503))
async def test_demo(body: DemoTestRequest, services: ServicesDep,
                    user: InstructorUser) -> dict[str, Any]:
    """Run a demo file in the sandbox, as the "test demo" button does."""
    try:
        code = services.editor.read_demo(body.demo)
    except KnowledgeBaseError as e:
        raise Unprocessable(str(e)) from None
    request = RunRequest(entry_id="", code=code, device=body.device,
                         filename=PurePosixPath(body.demo).name)
    data = (await run_to_end(services, request)).result()
    await run_in_threadpool(services.store.record_demo_run, body.demo, str(data["status"]),
                            device=str(data["device"]), duration_ms=int(data["duration_ms"]))
    return data
