"""Applying another process's changes here: re-read the entry from kb/, update the index."""

from __future__ import annotations

import logging
from pathlib import Path

from indexer.kb import KnowledgeBase, KnowledgeBaseError
from indexer.search import Searcher
from server.changefeed.base import ChangeFeed, KbChange

log = logging.getLogger("askta.changefeed")


class KbFollower:
    """Keeps one process's knowledge base and index in step with kb/ through a feed.

    The writing process has saved the index folder already, so the index changes here
    in memory only (`persist=False`).
    """

    def __init__(self, kb: KnowledgeBase, searcher: Searcher, feed: ChangeFeed):
        self.kb, self.searcher, self.feed = kb, searcher, feed

    def start(self) -> None:
        """Publish this process's writes, and follow the others'."""
        self.kb.change_hooks.append(self._on_kb_change)
        self.feed.start(self.apply, self.resync)

    def close(self) -> None:
        if self._on_kb_change in self.kb.change_hooks:
            self.kb.change_hooks.remove(self._on_kb_change)
        self.feed.close()

    def _on_kb_change(self, path: Path, text: str | None) -> None:
        """The KB's change hook (under its writer lock): an entry file was written here."""
        if path.suffix == ".yaml" and path.parent.resolve() == self.kb.kb_dir.resolve():
            self.feed.publish(path.stem)

    def apply(self, change: KbChange) -> None:
        """Another process wrote kb/<id>.yaml: read it again and index what it holds now."""
        self._refresh(change.entry_id)

    def resync(self) -> None:
        """Re-read every entry file and index what changed (after a gap in the feed)."""
        on_disk = {p.stem for p in self.kb.kb_dir.glob("*.yaml")}
        for entry_id in sorted(on_disk | set(self.kb.entries)):
            self._refresh(entry_id)

    def _refresh(self, entry_id: str) -> None:
        before = self.kb.entries.get(entry_id)
        try:
            entry = self.kb.reload_entry(entry_id)
        except KnowledgeBaseError as e:  # a hand edit broke it: keep serving the old one
            log.warning("change feed: %s", e)
            return
        if entry is None:
            if before is not None:
                self.searcher.remove(entry_id, persist=False)
        elif entry != before:
            self.searcher.upsert(entry, persist=False)
