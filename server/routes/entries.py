"""Entries: the list of published entries and one entry as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from indexer.schema import Entry
from server.demo_cache import demo_cache
from server.deps import KBDep, ServicesDep
from server.errors import NotFound
from server.render import render_markdown
from server.services import Services

router = APIRouter(tags=["entries"])


def default_device(services: Services) -> str:
    """The device an `auto` demo run uses on this server."""
    runner = services.sandbox
    return "cuda" if runner is not None and getattr(runner, "cuda_available", False) else "cpu"


def last_run(services: Services, entry: Entry, device: str) -> dict[str, Any] | None:
    """The cached last successful run of the entry's demo, preferring `device`."""
    path = services.kb.demo_path(entry)
    if path is None:
        return None
    cache = demo_cache(services)
    code_hash = cache.code_hash(path)
    if code_hash is None:
        return None
    for dev in (device, "cpu" if device == "cuda" else "cuda"):
        result = cache.get(code_hash, dev)
        if result is not None:
            return result
    return None


def entry_to_json(services: Services, entry: Entry, *, include_last_run: bool = True) -> dict:
    """An entry as the API shows it: Markdown, sanitized HTML, tags and its demo."""
    demo = None
    if entry.demo:
        device = default_device(services)
        demo = {
            "path": entry.demo,
            "device": device,
            "last_run": last_run(services, entry, device) if include_last_run else None,
        }
    return {
        "id": entry.id,
        "question": entry.question,
        "answer_markdown": entry.answer,
        "answer_html": render_markdown(entry.answer),
        "tags": list(entry.tags),
        "demo": demo,
    }


def published_entry(services: Services, entry_id: str) -> Entry:
    """The entry with this id if it may be shown to students, else NotFound."""
    entry = services.kb.get(entry_id)
    if not entry.answerable:
        raise NotFound(f"No published entry with id {entry_id!r}.")
    return entry


@router.get("/api/entries")
def list_entries(kb: KBDep) -> list[dict[str, Any]]:
    """Every published entry: id, question, tags, status and whether it has a demo."""
    return [
        {"id": e.id, "question": e.question, "tags": list(e.tags), "status": e.status.value,
         "has_demo": bool(e.demo)}
        for e in kb.published()
    ]


@router.get("/api/entries/{entry_id}")
def get_entry(entry_id: str, services: ServicesDep) -> dict[str, Any]:
    """One published entry, with its answer rendered and its demo's last cached run."""
    return entry_to_json(services, published_entry(services, entry_id))
