"""Authoring entries in the browser: checked like `askta check`, saved atomically, reindexed."""

from __future__ import annotations

from typing import Any

from indexer.demos import DEMO_DIR, DemoPathError, resolve_demo
from indexer.kb import KnowledgeBase, KnowledgeBaseError, Problem
from indexer.schema import Entry, Status
from indexer.search import Searcher
from server.review.queue import validate_entry_fields
from server.store import Store


class EntryEditor:
    """Create and edit entries on behalf of an instructor."""

    def __init__(self, kb: KnowledgeBase, searcher: Searcher, store: Store):
        self.kb, self.searcher, self.store = kb, searcher, store

    def save(self, fields: dict[str, Any], *, by: str, entry_id: str | None = None) -> Entry:
        """Create an entry (entry_id None) or replace one; it is answerable at once if published."""
        entry = validate_entry_fields(fields)
        if entry_id is not None and entry.id != entry_id:
            raise KnowledgeBaseError([Problem(f"kb/{entry_id}.yaml", None, "id",
                                              "cannot change: ids are stable (links and "
                                              "bookmarks use them); create a new entry instead")])
        if entry_id is not None:
            self.kb.get(entry_id)
        saved = self.kb.save_entry(entry, create=entry_id is None)
        self.searcher.upsert(saved)
        self.store.audit(by, "entry_create" if entry_id is None else "entry_update", saved.id,
                         {"status": saved.status.value})
        if saved.status != Status.unanswered:
            self._close_seed_items(saved, by)
        return saved

    def _close_seed_items(self, entry: Entry, by: str) -> None:
        """An unanswered entry that now has an answer leaves the review queue."""
        ids = [i.id for i in self.store.review_items("open")
               if i.reason == "seed" and i.entry_id == entry.id]
        if ids:
            self.store.resolve(ids, status="drafted", by=by, action="answer_written",
                               resolution={"entry_id": entry.id, "status": entry.status.value})

    def demo_files(self) -> list[str]:
        """Demo paths an entry may point to, relative to the project folder: the .py files
        of demos/ that `resolve_demo` accepts (no link out of demos/)."""
        root = self.kb.project_dir
        names = sorted(f"{DEMO_DIR}/{p.name}" for p in (root / DEMO_DIR).glob("*.py"))
        return [name for name in names if self._usable(name)]

    def _usable(self, demo: str) -> bool:
        try:
            resolve_demo(self.kb.project_dir, demo)
        except DemoPathError:
            return False
        return True

    def read_demo(self, demo: str) -> str:
        """The code of a demo file under demos/ (the same check as an entry's demo gets);
        KnowledgeBaseError when it is not one."""
        try:
            return resolve_demo(self.kb.project_dir, demo).read_text(encoding="utf-8")
        except DemoPathError as e:
            why = str(e)
        except (OSError, UnicodeDecodeError) as e:  # no host path in the message
            why = f"cannot be read ({getattr(e, 'strerror', None) or type(e).__name__})"
        raise KnowledgeBaseError([Problem(demo, None, "demo",
                                          f"is not a demo file of this project: {why}; "
                                          f"pick one from {DEMO_DIR}/")])
