"""The HTML pages: the chat, the list of entries, one entry with its runnable demo."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from indexer.kb import EntryNotFound
from indexer.schema import Entry
from server.web.deps import KBDep, ServicesDep
from server.web.errors import NotFound
from server.web.markdown import highlight_code
from server.web.presenters import demo_file, entry_to_json, published_entry, sandbox_notice
from server.web.templating import PACKAGE_DIR, PAGE_HEADERS, templates

IMAGE_MIMES = {"image/png"}
BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
EXAMPLE_COUNT = 4

router = APIRouter(tags=["pages"], include_in_schema=False)
router.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200
          ) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code,
                                      headers=PAGE_HEADERS)


def _matches(entry: Entry, q: str, tag: str) -> bool:
    if tag and tag not in entry.tags:
        return False
    text = " ".join([*entry.phrasings, *entry.tags]).lower()
    return all(word in text for word in q.lower().split())


def _safe_images(run: dict[str, Any] | None) -> list[dict[str, str]]:
    """Only well-formed PNG data from a cached run becomes a data: URL in the page."""
    out = []
    for image in (run or {}).get("images") or []:
        mime, data = image.get("mime"), image.get("data_base64")
        if mime not in IMAGE_MIMES or not isinstance(data, str) or not BASE64_RE.fullmatch(data):
            continue
        try:
            if not base64.b64decode(data[:64], validate=True).startswith(b"\x89PNG"):
                continue
        except (binascii.Error, ValueError):
            continue
        title = image.get("title")
        out.append({"mime": mime, "data_base64": data,
                    "title": title[:300] if isinstance(title, str) else ""})
    return out


@router.get("/", response_class=HTMLResponse)
def chat_page(request: Request, kb: KBDep, services: ServicesDep) -> HTMLResponse:
    """The chat: ask a question, read the curated answer."""
    published = kb.published()
    with_demo = [e for e in published if e.demo] or published
    examples = [e.question for e in with_demo[:EXAMPLE_COUNT]]
    return _page(request, "chat.html", {
        "examples": examples, "max_chars": services.settings.max_message_chars, "nav": "chat"})


@router.get("/entries", response_class=HTMLResponse)
def entries_page(request: Request, kb: KBDep, q: str = Query("", max_length=200),
                 tag: str = Query("", max_length=80)) -> HTMLResponse:
    """Every published entry, searchable and filterable by tag (works without JavaScript)."""
    published = kb.published()
    tags = sorted({t for e in published for t in e.tags})
    rows = [{"id": e.id, "question": e.question, "tags": e.tags, "has_demo": bool(e.demo),
             "search_text": " ".join([*e.phrasings, *e.tags]).lower(),
             "visible": _matches(e, q, tag)} for e in published]
    return _page(request, "entries.html", {
        "entries": rows, "tags": tags, "q": q, "tag": tag, "nav": "entries",
        "shown": sum(r["visible"] for r in rows)})


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(request: Request, entry_id: str, services: ServicesDep) -> HTMLResponse:
    """One entry: its answer, and its demo with the last output and a Run button."""
    try:
        entry = published_entry(services, entry_id)
    except (EntryNotFound, NotFound):
        return _page(request, "404.html", {"entry_id": entry_id, "nav": "entries"}, 404)
    data = entry_to_json(services, entry)
    demo_code = demo_source = None
    if data["demo"]:
        path = demo_file(services, entry)
        try:
            demo_source = path.read_text(encoding="utf-8") if path else None
        except OSError:
            demo_source = None
        demo_code = highlight_code(demo_source) if demo_source is not None else None
    last = data["demo"]["last_run"] if data["demo"] else None
    return _page(request, "entry.html", {
        "entry": data, "nav": "entries", "demo_code": demo_code, "demo_source": demo_source,
        "last_run": last, "last_images": _safe_images(last),
        "can_run": services.runs.available, "sandbox_error": sandbox_notice(services),
        "has_cuda": services.runs.cuda_available,
    })
