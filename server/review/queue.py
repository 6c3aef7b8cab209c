"""The review queue: what the bot could not answer, grouped, and what TAs do about it.

Every open item has an embedding (stored when it is created); items whose
embeddings are close join the oldest open group they resemble, so the queue
shows "12 students asked this" instead of twelve rows. Reading the queue never
writes: groups are computed in memory, and saved only at start-up and by the
actions. A TA links a group to an entry (its questions become alternate
phrasings, written atomically to kb/ and indexed at once), drafts a new entry
from it, or dismisses it. Every action goes to the audit log with who and when.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from indexer.kb import (
    KnowledgeBase,
    KnowledgeBaseError,
    normalize_question,
    validate_fields,
)
from indexer.schema import Entry, Status, slugify
from indexer.search import Searcher
from server.history import History
from server.history.messages import draft_message, link_message
from server.store import ReviewItem, Store

DISMISS_REASONS = ("off-topic", "duplicate", "abuse")
MAX_SUGGESTIONS = 5


class ReviewError(Exception):
    """A review action that cannot be carried out, with a message for people."""


class ItemClosed(ReviewError):
    """The item was already linked, drafted or dismissed (perhaps by another TA)."""


class NotAllowed(ReviewError):
    """The user's role does not allow this action."""


@dataclass
class ReviewGroup:
    """Near-duplicate open questions, shown and acted on together."""

    key: str
    items: list[ReviewItem]
    suggestions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def asked(self) -> int:
        """How many of the items students asked (a seed item is an entry waiting for its
        answer, which nobody asked yet)."""
        return sum(1 for i in self.items if i.reason != "seed")

    @property
    def first_asked(self) -> datetime:
        return min(i.created_at for i in self.items)

    @property
    def last_asked(self) -> datetime:
        return max(i.created_at for i in self.items)

    @property
    def question(self) -> str:
        """The representative question: the seed entry's, else the oldest."""
        seeds = [i for i in self.items if i.reason == "seed"]
        return (seeds or self.items)[0].text

    @property
    def entry_id(self) -> str | None:
        """The entry the group is about (a seed entry or the answer found unhelpful), if any."""
        for item in self.items:
            if item.reason == "seed" and item.entry_id:
                return item.entry_id
        ids = {i.entry_id for i in self.items if i.entry_id}
        return ids.pop() if len(ids) == 1 else None

    def texts(self) -> list[str]:
        """The distinct phrasings in the group, oldest first."""
        seen: dict[str, str] = {}
        for item in self.items:
            seen.setdefault(normalize_question(item.text), item.text.strip())
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON for GET /api/review."""
        return {
            "key": self.key,
            "question": self.question,
            "count": self.count,
            "asked": self.asked,
            "first_asked": self.first_asked.isoformat(),
            "last_asked": self.last_asked.isoformat(),
            "reasons": sorted({i.reason for i in self.items}),
            "entry_id": self.entry_id,
            "suggestions": self.suggestions,
            "items": [item_to_dict(i) for i in self.items],
        }


def item_to_dict(item: ReviewItem) -> dict[str, Any]:
    """One review item as JSON."""
    return {
        "id": item.id,
        "text": item.text,
        "reason": item.reason,
        "status": item.status,
        "entry_id": item.entry_id,
        "asked_at": item.created_at.isoformat(),
        "suggestions": item.suggestions or [],
        "resolved_by": item.resolved_by,
        "resolved_at": item.resolved_at.isoformat() if item.resolved_at else None,
        "resolution": item.resolution,
        "attachment": item.attachment,
    }


@dataclass
class LinkResult:
    """What a link did: the entry as saved, the phrasings added, those skipped and why."""

    entry: Entry
    linked: list[str]
    added: list[str]
    skipped: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {"entry": {"id": self.entry.id, "question": self.entry.question,
                          "alternate_questions": self.entry.alternate_questions},
                "linked": self.linked, "added": self.added, "skipped": self.skipped}


class ReviewQueue:
    """The review queue over a store, a knowledge base and its searcher.

    Reading the queue never writes: `groups` and `group_of` file what open items
    lack (embedding, suggestions, group key) in memory. Items are filed when they
    are created (`record_feedback`, `ensure_seed_items`; the chat path stores its
    own), and `settle` saves the grouping at start-up and before every action, so
    that the group a TA acts on is the group they saw and keeps its key.
    """

    def __init__(self, store: Store, kb: KnowledgeBase, searcher: Searcher,
                 group_threshold: float = 0.75, *, history: History | None = None):
        self.store, self.kb, self.searcher = store, kb, searcher
        self.history = history or History()  # each change to kb/ one commit by the TA
        self.group_threshold = group_threshold
        self._grouping_lock = threading.Lock()  # one saved grouping at a time

    # --- filing new items ------------------------------------------------------------------
    def record_feedback(self, message: str, entry_id: str, helpful: bool,
                        client: str = "") -> str | None:
        """Store a verdict on an answer; "not helpful" opens a review item, filed with its
        embedding and suggested entries, whose id is returned."""
        if helpful:
            return self.store.record_feedback(message, entry_id, True, client)
        vector = self._embed([message])[0]
        return self.store.record_feedback(message, entry_id, False, client,
                                          embedding=vector.tobytes(),
                                          suggestions=self._suggest(message, vector))

    def ask_about_demo(self, question: str, entry_id: str, attachment: dict[str, Any]) -> str:
        """A student's question about a demo they changed, with their code and its run
        (`attachment`), as one review item, filed with its embedding and suggestions."""
        vector = self._embed([question])[0]
        return self.store.open_review_item(None, question, reason="demo_question",
                                           suggestions=self._suggest(question, vector),
                                           embedding=vector.tobytes(), entry_id=entry_id,
                                           attachment=attachment)

    def confirm_near_miss(self, review_id: str, entry_id: str) -> None:
        """A student said the near miss they were offered answers their question: the entry
        becomes the item's first suggestion, marked confirmed, one click for a TA to link.

        ReviewItemNotFound, ItemClosed, EntryNotFound, or ReviewError for an entry that
        is not a published answer.
        """
        item = self._open(review_id)
        target = self.kb.get(entry_id)
        if not target.answerable:
            raise ReviewError(f"{entry_id} is not a published answer.")
        previous: dict[str, Any] = next(
            (s for s in item.suggestions or [] if s.get("id") == entry_id), {})
        suggestion = {"id": entry_id, "question": target.question,
                      "score": previous.get("score", 0.0), "confirmed": True}
        if not self.store.confirm_suggestion(review_id, suggestion):
            self._open(review_id)  # closed meanwhile: say by whom

    def ensure_seed_items(self) -> int:
        """Open a "seed" review item, with its embedding, for each unanswered entry that
        never had one; return how many."""
        entries = [e for e in self.kb.unanswered() if not self.store.has_seed_item(e.id)]
        if not entries:
            return 0
        vectors = self._embed([e.question for e in entries])
        for entry, vector in zip(entries, vectors, strict=True):
            self.store.open_review_item(None, entry.question, reason="seed", suggestions=[],
                                        embedding=vector.tobytes(), entry_id=entry.id)
        return len(entries)

    # --- reading ---------------------------------------------------------------------------
    def groups(self) -> list[ReviewGroup]:
        """Open items in groups, most asked first, then most recent."""
        items = self.store.review_items("open")
        self._file(items)
        by_key: dict[str, list[ReviewItem]] = {}
        for item in items:
            by_key.setdefault(item.group_key or item.id, []).append(item)
        groups = [ReviewGroup(key, members, _merge_suggestions(members))
                  for key, members in by_key.items()]
        groups.sort(key=lambda g: (-g.count, -g.last_asked.timestamp(), g.key))
        return groups

    def group_of(self, review_id: str) -> list[ReviewItem]:
        """The open items in the same group as this one (at least the item itself, if open)."""
        item = self._open(review_id)
        items = self.store.review_items("open")
        self._file(items)
        return _same_group(item, items)

    # --- saving the grouping ---------------------------------------------------------------
    def settle(self) -> list[ReviewItem]:
        """File every open item as a read would, and save what that computed.

        Run at start-up and before each action, never by a read. Returns the open items.
        """
        with self._grouping_lock:
            items = self.store.review_items("open")
            self.store.update_review_items(self._file(items))
        return items

    def _group_to_act_on(self, review_id: str) -> list[ReviewItem]:
        """`group_of` for an action: the grouping is saved first (see `settle`)."""
        item = self._open(review_id)
        return _same_group(item, self.settle())

    # --- filing ----------------------------------------------------------------------------
    def _file(self, items: list[ReviewItem]) -> dict[str, dict[str, Any]]:
        """Give each open item an embedding, suggestions and a group key, in memory.

        `items` are the open items, oldest first; the same items always get the same
        groups. Returns what changed, {review_id: {field: value}}, for `settle` to save.
        """
        dim = self._dimension()
        updates: dict[str, dict[str, Any]] = {}
        vectors: dict[str, np.ndarray] = {}
        missing = []
        for item in items:
            vec = _vector(item.embedding, dim)
            if vec is None:
                missing.append(item)
            else:
                vectors[item.id] = vec
        if missing:
            for item, vec in zip(missing, self._embed([i.text for i in missing]), strict=True):
                vectors[item.id] = vec
                item.embedding = vec.tobytes()
                updates.setdefault(item.id, {})["embedding"] = item.embedding
        for item in items:
            if not item.suggestions and item.reason != "seed":
                item.suggestions = self._suggest(item.text, vectors[item.id])
                if item.suggestions:
                    updates.setdefault(item.id, {})["suggestions"] = item.suggestions

        # Representatives: the oldest item of each existing group.
        reps: dict[str, np.ndarray] = {}
        seed_groups: dict[str, str] = {}
        for item in items:
            if item.group_key and item.group_key not in reps:
                reps[item.group_key] = vectors[item.id]
            if item.reason == "seed" and item.entry_id and item.group_key:
                seed_groups[item.entry_id] = item.group_key
        for item in items:
            if item.group_key:
                continue
            key = seed_groups.get(item.entry_id or "") if item.reason != "seed" else None
            if key is None and reps and item.reason != "seed":
                keys = list(reps)
                sims = np.stack([reps[k] for k in keys]) @ vectors[item.id]
                best = int(np.argmax(sims))
                if float(sims[best]) >= self.group_threshold:
                    key = keys[best]
            if key is None:
                key = item.id
                reps[key] = vectors[item.id]
                if item.reason == "seed" and item.entry_id:
                    seed_groups[item.entry_id] = key
            item.group_key = key
            updates.setdefault(item.id, {})["group_key"] = key
        return updates

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.searcher.embed(texts), dtype=np.float32)

    def _suggest(self, text: str, vector: np.ndarray) -> list[dict[str, Any]]:
        """The entries closest to a question, for the TA to link it to."""
        return [h.to_dict() for h in self.searcher.search_vector(text, vector,
                                                                 k=MAX_SUGGESTIONS).hits]

    def _dimension(self) -> int:
        dim = getattr(getattr(self.searcher, "embedder", None), "dimension", None)
        return int(dim) if dim else 0

    # --- actions ---------------------------------------------------------------------------
    def link(self, review_id: str, entry_id: str, *, by: str, group: bool = True) -> LinkResult:
        """Add the question (or its whole group) to an entry's alternate phrasings, and index it."""
        items = self._group_to_act_on(review_id) if group else [self._open(review_id)]
        target = self.kb.get(entry_id)
        if not target.answerable:
            raise ReviewError(f"{entry_id} is a {target.status.value} entry, not an answer: "
                              "link to a published entry, or draft its answer instead.")
        added: list[str] = []
        skipped: list[dict[str, str]] = []
        entry = target
        with self.history.change(by) as change:
            for text in _distinct_texts(items):
                before = {normalize_question(q) for q in entry.phrasings}
                if normalize_question(text) in before:
                    skipped.append({"text": text, "reason": f"already a phrasing of {entry_id}"})
                    continue
                try:
                    entry = self.kb.add_alternate(entry_id, text)
                except KnowledgeBaseError as e:
                    skipped.append({"text": text,
                                    "reason": "; ".join(p.message for p in e.problems)})
                    continue
                added.append(text)
                change.message = link_message(added, entry_id)
        entry = self.kb.get(entry_id)
        if added:
            self.searcher.upsert(entry)
        linked = self.store.resolve([i.id for i in items], status="linked", by=by, action="link",
                                    resolution={"entry_id": entry_id, "added": added,
                                                "skipped": skipped})
        if not linked and not added:
            raise ItemClosed(f"Review item {review_id} was resolved by someone else meanwhile.")
        return LinkResult(entry, linked, added, skipped)

    def draft_template(self, review_id: str) -> dict[str, Any]:
        """Entry fields to prefill the draft form with, from the item and its group."""
        items = self.group_of(review_id)
        group = ReviewGroup(items[0].group_key or items[0].id, items)
        base = self.kb.entries.get(group.entry_id) if group.entry_id else None
        if base is not None and base.status == Status.unanswered:
            e = base
            known = {normalize_question(q) for q in e.phrasings}
            extra = [t for t in group.texts() if normalize_question(t) not in known]
            return {"id": e.id, "question": e.question,
                    "alternate_questions": [*e.alternate_questions, *extra],
                    "answer": e.answer, "tags": e.tags, "demo": e.demo or "", "status": "draft",
                    "updates_existing": True}
        texts = group.texts()
        return {"id": slugify(texts[0]), "question": texts[0], "alternate_questions": texts[1:],
                "answer": "", "tags": [], "demo": "", "status": "draft",
                "updates_existing": False}

    def draft(self, review_id: str, fields: dict[str, Any], *, by: str,
              may_publish: bool) -> Entry:
        """Save a new entry (or the answer of the seed entry) from the item's group."""
        items = self._group_to_act_on(review_id)
        entry = validate_entry_fields(fields)
        if entry.status == Status.published and not may_publish:
            raise NotAllowed("Only instructors publish entries: save it as a draft, and an "
                             "instructor will review and publish it.")
        existing = self.kb.entries.get(entry.id)
        updates_seed = existing is not None and existing.status == Status.unanswered and any(
            i.entry_id == entry.id for i in items)
        with self.history.change(by, draft_message(entry)):
            saved = self.kb.save_entry(entry, create=not updates_seed)
        self.searcher.upsert(saved)
        self.store.resolve([i.id for i in items], status="drafted", by=by, action="draft",
                           resolution={"entry_id": saved.id, "status": saved.status.value,
                                       "updated_existing": updates_seed})
        return saved

    def dismiss(self, review_id: str, reason: str, *, by: str, group: bool = True) -> list[str]:
        """Close the item (or its group) without changing the KB; the reason is kept."""
        reason = reason.strip()
        if not reason:
            raise ReviewError("Say why: off-topic, duplicate, abuse, or a short note.")
        items = self._group_to_act_on(review_id) if group else [self._open(review_id)]
        closed = self.store.resolve([i.id for i in items], status="dismissed", by=by,
                                    action="dismiss", resolution={"reason": reason})
        if not closed:
            raise ItemClosed(f"Review item {review_id} was resolved by someone else meanwhile.")
        return closed

    def _open(self, review_id: str) -> ReviewItem:
        """The item if it is open; ItemClosed (saying who closed it) if not."""
        item = self.store.review_item(review_id)
        if item.status != "open":
            raise ItemClosed(f"Review item {review_id} is already {item.status}"
                             + (f" by {item.resolved_by}" if item.resolved_by else "") + ".")
        return item


def validate_entry_fields(fields: dict[str, Any]) -> Entry:
    """An Entry from form or JSON fields, checked like `askta check` (KnowledgeBaseError).

    Line breaks are normalised and control characters refused by the schema
    (indexer/schema.py); the KB checks again that the file it writes reads back as this.
    """
    data = {k: v for k, v in fields.items() if k in Entry.model_fields}
    if isinstance(data.get("alternate_questions"), str):
        data["alternate_questions"] = [q for q in data["alternate_questions"].splitlines()
                                       if q.strip()]
    if isinstance(data.get("tags"), str):
        data["tags"] = [t for t in data["tags"].replace(",", " ").split() if t]
    if data.get("demo") in ("", None):
        data.pop("demo", None)
    entry_id = str(data.get("id") or "new-entry")
    return validate_fields(data, f"kb/{entry_id}.yaml")


def _distinct_texts(items: list[ReviewItem]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(normalize_question(item.text), item.text.strip())
    return list(seen.values())


def _same_group(item: ReviewItem, filed: list[ReviewItem]) -> list[ReviewItem]:
    """The items of `filed` in the same group as `item` (at least `item` itself)."""
    key = next((i.group_key for i in filed if i.id == item.id), None)
    return [i for i in filed if key and i.group_key == key] or [item]


def _vector(raw: bytes | None, dim: int) -> np.ndarray | None:
    if not raw:
        return None
    vec = np.frombuffer(raw, dtype=np.float32)
    if dim and vec.shape[0] != dim:  # stored by another model: embed again
        return None
    return vec


def _merge_suggestions(items: list[ReviewItem]) -> list[dict[str, Any]]:
    """Each suggested entry once, with its best score over the group: the ones a student
    confirmed ("Yes, that's it") first, then best first."""
    best: dict[str, dict[str, Any]] = {}
    for item in items:
        for s in item.suggestions or []:
            sid = s.get("id")
            if sid and (sid not in best or s.get("score", 0) > best[sid].get("score", 0)):
                best[sid] = {**dict(s), "confirmed": bool(s.get("confirmed"))
                             or bool(best.get(sid, {}).get("confirmed"))}
            elif sid and s.get("confirmed"):
                best[sid]["confirmed"] = True
    return sorted(best.values(), key=lambda s: (not s.get("confirmed"),
                                                -float(s.get("score", 0))))[:MAX_SUGGESTIONS]
