"""The numbers staff see at /admin/stats: questions per day, the share answered, the most
asked open questions, the most used entries and their "not helpful" rates, and the pairs
of entries close enough to be confused (indexer/overlaps.py)."""

from __future__ import annotations

from typing import Any

from indexer.kb import KnowledgeBase
from indexer.overlaps import searcher_overlaps
from indexer.search import Searcher
from server.review.queue import ReviewQueue
from server.store import Store

STATS_DAYS = 30
# Comparing every phrasing with every vector grows with the square of the KB: 0.7 ms for
# the bundled KB, 0.6 s at 1,000 entries of six vectors, 34 s at 10,000 (2 busy cores).
# The page compares up to this many vectors; beyond, `askta check --overlaps` does it.
OVERLAP_PAGE_VECTORS = 12_000


def collect_stats(store: Store, kb: KnowledgeBase, queue: ReviewQueue,
                  searcher: Searcher | None = None) -> dict[str, Any]:
    """Everything /admin/stats shows, as JSON-ready data (the overlaps need `searcher`)."""
    summary = store.summary()
    groups = queue.groups()
    titles = {e.id: e.question for e in kb.entries.values()}
    return {
        "summary": summary,
        "per_day": store.questions_per_day(STATS_DAYS),
        "top_unanswered": [{"key": g.key, "question": g.question, "count": g.count,
                            "asked": g.asked, "last_asked": g.last_asked.isoformat(),
                            "review_id": g.items[0].id} for g in groups[:10]],
        "top_entries": [{**r, "question": titles.get(r["entry_id"], r["entry_id"])}
                        for r in store.top_entries(10)],
        "not_helpful": [{**r, "question": titles.get(r["entry_id"], r["entry_id"])}
                        for r in store.feedback_by_entry()],
        "overlaps": _overlaps(searcher),
    }


def _overlaps(searcher: Searcher | None) -> list[dict[str, Any]] | None:
    """The confusable pairs, or None when the index is too large to compare on a page view."""
    if searcher is None:
        return []
    if len(searcher.index) > OVERLAP_PAGE_VECTORS:
        return None
    return [o.to_dict() for o in searcher_overlaps(searcher)]
