"""Entries: the list of published entries and one entry as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.web.deps import KBDep, ServicesDep
from server.web.errors import error_responses
from server.web.presenters import entry_to_json, published_entry

router = APIRouter(tags=["entries"])


@router.get("/api/entries")
def list_entries(kb: KBDep) -> list[dict[str, Any]]:
    """Every published entry: id, question, tags, status and whether it has a demo."""
    return [
        {"id": e.id, "question": e.question, "tags": list(e.tags), "status": e.status.value,
         "has_demo": bool(e.demo)}
        for e in kb.published()
    ]


@router.get("/api/entries/{entry_id}", responses=error_responses(404, 422))
def get_entry(entry_id: str, services: ServicesDep) -> dict[str, Any]:
    """One published entry, with its answer rendered and its demo's last cached run."""
    return entry_to_json(services, published_entry(services, entry_id))
