"""Authoring entries in the browser: checked like `askta check`, saved atomically, reindexed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from indexer.demos import DEMO_DIR, DemoPathError, resolve_demo
from indexer.kb import EntryNotFound, KnowledgeBase, KnowledgeBaseError, Problem
from indexer.schema import Entry, Status
from indexer.search import Searcher
from server.history import History
from server.history.messages import delete_message, save_message
from server.review.queue import validate_entry_fields
from server.store import Store

ANY_VERSION = "*"


def entry_version(entry: Entry) -> str:
    """A strong validator of an entry: the hash of all its fields, canonically serialized.

    Any change to any field (tags and demo too) gives a new version; the same content
    always gives the same one, in every process. HTTP sends it as the entry's ETag.
    """
    canonical = json.dumps(entry.model_dump(mode="json"), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class VersionConflict(Exception):
    """The entry is not at the version a change was based on: someone else saved it,
    created it or deleted it meanwhile. `current` is the entry now (None: there is none)."""

    def __init__(self, entry_id: str, current: Entry | None):
        self.entry_id, self.current = entry_id, current
        if current is None:
            message = f"{entry_id!r} does not exist (any more)"
        else:
            message = f"{entry_id!r} is now at version {entry_version(current)}"
        super().__init__(message)


def _expecting(entry_id: str, if_match: str | None,
               if_none_match: bool) -> Callable[[Entry | None], None] | None:
    """The check KnowledgeBase runs under its writer lock: the entry must be at `if_match`
    (a version, or ANY_VERSION for any existing one), or absent when `if_none_match`."""
    if if_match is None and not if_none_match:
        return None

    def check(current: Entry | None) -> None:
        if if_none_match and current is not None:
            raise VersionConflict(entry_id, current)
        if if_match is not None and (current is None or (
                if_match != ANY_VERSION and entry_version(current) != if_match)):
            raise VersionConflict(entry_id, current)

    return check


class EntryEditor:
    """Create and edit entries on behalf of an instructor."""

    def __init__(self, kb: KnowledgeBase, searcher: Searcher, store: Store, *,
                 history: History | None = None):
        self.kb, self.searcher, self.store = kb, searcher, store
        self.history = history or History()  # each save one commit by the instructor

    def save(self, fields: dict[str, Any], *, by: str, entry_id: str | None = None,
             if_match: str | None = None, if_none_match: bool = False,
             message: str | None = None) -> Entry:
        """Create an entry (entry_id None) or replace one; it is answerable at once if published.

        Optimistic concurrency, checked under the KB's writer lock: with `if_match` (the
        `entry_version` the change is based on, or ANY_VERSION) the entry must still be
        at that version; with `if_none_match` it must not exist. Otherwise VersionConflict.
        The commit says `message`, or what happened (create, publish, edit).
        """
        entry = validate_entry_fields(fields)
        if entry_id is not None and entry.id != entry_id:
            raise KnowledgeBaseError([Problem(f"kb/{entry_id}.yaml", None, "id",
                                              "cannot change: ids are stable (links and "
                                              "bookmarks use them); create a new entry instead")])
        before = self.kb.entries.get(entry_id) if entry_id is not None else None
        if entry_id is not None and if_match is None and before is None:
            raise EntryNotFound(entry_id)
        with self.history.change(by, message or save_message(before, entry)):
            saved = self.kb.save_entry(entry, create=entry_id is None,
                                       check=_expecting(entry.id, if_match, if_none_match))
        self.searcher.upsert(saved)
        self.store.audit(by, "entry_create" if entry_id is None else "entry_update", saved.id,
                         {"status": saved.status.value})
        if saved.status != Status.unanswered:
            self._close_seed_items(saved, by)
        return saved

    def delete(self, entry_id: str, *, by: str, if_match: str | None = None) -> Entry | None:
        """Delete an entry's file and drop it from search at once; its question, if it was
        waiting for an answer, leaves the review queue. EntryNotFound when there is none;
        VersionConflict when `if_match` is given and the entry is not at that version."""
        check = _expecting(entry_id, if_match, False)

        def exists_then_check(current: Entry | None) -> None:
            if current is None:
                raise EntryNotFound(entry_id)
            if check is not None:
                check(current)

        with self.history.change(by, delete_message(entry_id)):
            old = self.kb.delete_entry(entry_id, check=exists_then_check)
        self.searcher.remove(entry_id)
        self.store.audit(by, "entry_delete", entry_id,
                         {"status": old.status.value if old else None})
        ids = [i.id for i in self.store.review_items("open")
               if i.reason == "seed" and i.entry_id == entry_id]
        if ids:
            self.store.resolve(ids, status="dismissed", by=by, action="entry_deleted",
                               resolution={"entry_id": entry_id, "reason": "entry deleted"})
        return old

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
