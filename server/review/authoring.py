"""Authoring entries in the browser: checked like `askta check`, saved atomically, reindexed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.kb import KnowledgeBase, KnowledgeBaseError, Problem
from indexer.schema import Entry, Status
from indexer.search import Searcher
from server.history import History
from server.history.messages import save_message
from server.review.queue import validate_entry_fields
from server.store import Store


class EntryEditor:
    """Create and edit entries on behalf of an instructor."""

    def __init__(self, kb: KnowledgeBase, searcher: Searcher, store: Store, *,
                 history: History | None = None):
        self.kb, self.searcher, self.store = kb, searcher, store
        self.history = history or History()  # each save one commit by the instructor

    def save(self, fields: dict[str, Any], *, by: str, entry_id: str | None = None,
             message: str | None = None) -> Entry:
        """Create an entry (entry_id None) or replace one; it is answerable at once if published.

        The commit says `message`, or what happened (create, publish, edit).
        """
        entry = validate_entry_fields(fields)
        if entry_id is not None and entry.id != entry_id:
            raise KnowledgeBaseError([Problem(f"kb/{entry_id}.yaml", None, "id",
                                              "cannot change: ids are stable (links and "
                                              "bookmarks use them); create a new entry instead")])
        before = self.kb.get(entry_id) if entry_id is not None else None
        with self.history.change(by, message or save_message(before, entry)):
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
        """Demo paths an entry may point to, relative to the project folder."""
        root = self.kb.project_dir
        return sorted(str(p.relative_to(root)) for p in (root / "demos").glob("*.py"))

    def read_demo(self, demo: str) -> str:
        """The code of a demo file inside the project; KnowledgeBaseError when it is not one."""
        root = self.kb.project_dir.resolve()
        path = (root / demo).resolve()
        if demo.startswith("/") or not path.is_relative_to(root) or path.suffix != ".py" \
                or not path.is_file():
            raise KnowledgeBaseError([Problem(demo, None, "demo",
                                              "is not a demo file of this project: pick one "
                                              "from demos/")])
        return Path(path).read_text(encoding="utf-8")
