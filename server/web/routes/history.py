"""An entry's history at /admin/entries/{id}/history: the git commits that changed its
file, each with its diff and a button that reverts the entry to it (instructors)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from indexer.kb import KnowledgeBaseError, Problem, parse_entry
from indexer.schema import ID_PATTERN
from server.accounts import StaffUser
from server.history import CommitInfo, DiffLine, KbHistory
from server.history.messages import revert_message
from server.services import Services
from server.web.auth import require_page_user
from server.web.deps import ServicesDep
from server.web.errors import NotFound
from server.web.staff_pages import staff_page

MAX_COMMITS = 200
SHA_RE = re.compile(r"[0-9a-f]{40}")

router = APIRouter(tags=["admin"])


@dataclass(frozen=True)
class Version:
    """One commit of an entry's history, as the page shows it."""

    commit: CommitInfo
    diff: list[DiffLine]
    exists: bool  # the file existed as of this commit (else the commit deleted it)
    current: bool  # the file on disk now is this version


@router.get("/admin/entries/{entry_id}/history", response_class=HTMLResponse,
            include_in_schema=False)
async def entry_history(request: Request, entry_id: str, services: ServicesDep) -> Response:
    """The commits that changed the entry, newest first, with their diffs."""
    user = await require_page_user(request, "instructor")
    return await _page(request, services, user, entry_id,
                       reverted=request.query_params.get("reverted", "")[:7])


@router.post("/admin/entries/{entry_id}/history/{sha}/revert", response_class=HTMLResponse,
             include_in_schema=False)
async def revert_entry(request: Request, entry_id: str, sha: str,
                       services: ServicesDep) -> Response:
    """Save the entry as it was after commit `sha`, through the editor (checked, indexed,
    and committed as `revert: ID to SHA7`)."""
    user = await require_page_user(request, "instructor")
    history = services.history
    if not isinstance(history, KbHistory) or not SHA_RE.fullmatch(sha) \
            or not re.match(ID_PATTERN, entry_id):
        raise NotFound(f"There is no version {sha[:12]!r} of {entry_id!r}.")
    try:
        await run_in_threadpool(_revert, services, history, entry_id, sha, user.name)
    except KnowledgeBaseError as e:
        return await _page(request, services, user, entry_id, status_code=422,
                           error="The entry was not reverted: "
                                 + "; ".join(str(p) for p in e.problems))
    return RedirectResponse(f"/admin/entries/{quote(entry_id)}/history?reverted={sha[:7]}",
                            status_code=303)


def _revert(services: Services, history: KbHistory, entry_id: str, sha: str, by: str) -> None:
    if sha not in {c.sha for c in history.log(entry_id, MAX_COMMITS)}:
        raise NotFound(f"Commit {sha[:7]} did not change {entry_id}.")
    text = history.version(entry_id, sha)
    path = f"kb/{entry_id}.yaml"
    if text is None:  # the page has no button for it: a commit that deleted the entry
        raise KnowledgeBaseError([Problem(path, None, None, f"did not exist after commit "
                                          f"{sha[:7]}: there is nothing to revert to")])
    entry = parse_entry(text, path, entry_id)[0]
    services.editor.save(entry.to_yaml_dict(), by=by,
                         entry_id=entry_id if entry_id in services.kb.entries else None,
                         message=revert_message(entry_id, sha))


def _versions(history: KbHistory, entry_id: str) -> list[Version]:
    history.flush(timeout=2.0)  # the change just made is on the page
    current = history.current(entry_id)
    out = []
    for commit in history.log(entry_id, MAX_COMMITS):
        text = history.version(entry_id, commit.sha)
        out.append(Version(commit, history.diff(commit.sha, entry_id), text is not None,
                           text is not None and text == current))
    return out


async def _page(request: Request, services: Services, user: StaffUser, entry_id: str, *,
                error: str = "", reverted: str = "", status_code: int = 200) -> Response:
    entry = services.kb.entries.get(entry_id)
    history = services.history
    context: dict[str, Any] = {
        "entry_id": entry_id, "entry": entry, "error": error, "reverted": reverted,
        "nav": "admin", "title": f"History of {entry_id}", "enabled": history.enabled,
        "reason": history.error, "versions": [], "pending": 0}
    if isinstance(history, KbHistory) and re.match(ID_PATTERN, entry_id):
        context["versions"] = await run_in_threadpool(_versions, history, entry_id)
        context["pending"] = history.pending
    if entry is None and not context["versions"]:
        raise NotFound(f"There is no entry {entry_id!r}, and no history of one.")
    return staff_page(request, "admin_history.html", user, context, status_code)
