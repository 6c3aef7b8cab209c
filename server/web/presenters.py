"""How entries and review items look to clients: the JSON and page data routes share."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from indexer.demo_params import DemoParam, ParamDeclarationError, read_params
from indexer.demos import DemoPathError
from indexer.kb import EntryNotFound
from indexer.schema import Entry
from server.review.authoring import entry_version
from server.services import Services
from server.web.errors import NotFound, public_reason
from server.web.markdown import render_markdown

log = logging.getLogger("askta")


def default_device(services: Services) -> str:
    """The device an `auto` demo run uses on this server."""
    return "cuda" if services.runs.cuda_available else "cpu"


def demo_file(services: Services, entry: Entry) -> Path | None:
    """The entry's demo file if it may be shown and run now: a .py file under demos/
    (indexer.demos, checked at every use); None when it has none or it is refused."""
    try:
        return services.kb.demo_path(entry)
    except DemoPathError as e:
        log.warning("entry %s: demo %s refused: %s", entry.id, entry.demo, e)
        return None


def sandbox_notice(services: Services) -> str | None:
    """Why demos cannot run here, without host paths (the full reason is in the log)."""
    return public_reason(services.sandbox_error)


def last_run(services: Services, entry: Entry, device: str) -> dict[str, Any] | None:
    """The cached last successful run of the entry's demo, preferring `device`."""
    path = demo_file(services, entry)
    if path is None:
        return None
    cache = services.demo_cache
    code_hash = cache.code_hash(path)
    if code_hash is None:
        return None
    for dev in (device, "cpu" if device == "cuda" else "cuda"):
        result = cache.get(code_hash, dev)
        if result is not None:
            return result
    return None


_FENCE = re.compile(r"```.*?(```|$)", re.S)
_MARKUP = re.compile(r"[*_`#>|]+|\$+|!?\[([^\]]*)\]\([^)]*\)")


def excerpt(markdown: str, limit: int = 220) -> str:
    """The start of an answer as plain text, cut at a word, with an ellipsis if cut."""
    text = _FENCE.sub(" ", markdown)
    text = _MARKUP.sub(lambda m: m.group(1) or "", text)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def demo_params(entry: Entry, path: Path) -> list[DemoParam]:
    """The parameters the entry's demo declares; none (and a warning in the log) when a
    declaration cannot be used: the demo still runs as written (`askta check` fails)."""
    try:
        return read_params(path)
    except (OSError, UnicodeDecodeError, ParamDeclarationError) as e:
        log.warning("entry %s: the parameters of %s are ignored: %s", entry.id, entry.demo, e)
        return []


def entry_to_json(services: Services, entry: Entry, *, include_last_run: bool = True) -> dict:
    """An entry as the API shows it: Markdown, sanitized HTML, tags and its demo (with
    the parameters it declares)."""
    demo = None
    path = demo_file(services, entry) if entry.demo else None
    if entry.demo and path is not None:
        device = default_device(services)
        demo = {
            "path": entry.demo,
            "device": device,
            "last_run": last_run(services, entry, device) if include_last_run else None,
            "params": [p.to_json() for p in demo_params(entry, path)],
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
    """The entry with this id if it may be shown to students, else NotFound: the same
    error for a draft as for an unknown id, so students cannot probe for drafts."""
    try:
        entry = services.kb.get(entry_id)
    except EntryNotFound:
        entry = None
    if entry is None or not entry.answerable:
        raise NotFound(f"No published entry with id {entry_id!r}.")
    return entry


# --- an entry's source, for instructors' scripts (ETag / If-Match) ------------------------
class EntrySource(BaseModel):
    """An entry's fields as they are saved in kb/<id>.yaml, whatever its status, and its
    version: `etag` is the value of the ETag header, to send back in If-Match."""

    id: str
    question: str
    alternate_questions: list[str]
    answer: str
    tags: list[str]
    demo: str | None
    status: str = Field(examples=["published"])
    etag: str = Field(examples=['"3f2a9c0e5b1d4e7fa8c6b2d0e9f1a3c4"'])


def etag(entry: Entry) -> str:
    """The entry's strong ETag: its version (a hash of every field), quoted."""
    return f'"{entry_version(entry)}"'


def entry_source(entry: Entry) -> dict[str, Any]:
    """An entry as `EntrySource`: every field, and its ETag."""
    return {"id": entry.id, "question": entry.question,
            "alternate_questions": list(entry.alternate_questions), "answer": entry.answer,
            "tags": list(entry.tags), "demo": entry.demo, "status": entry.status.value,
            "etag": etag(entry)}
