"""The Store: every read and write of the database, as plain synchronous methods.

SQLite by default (one file, WAL so readers never wait for the writer, a busy
timeout and BEGIN IMMEDIATE so concurrent writers queue instead of failing);
PostgreSQL by URL when several servers share one queue.

The chat path does not wait for the database: `log_question` hands the question
(and its review item) to a background writer, which commits whatever has queued
up in one transaction. Every read and write through the Store first waits for
the questions queued before it, so a review id returned by the chat can be used
at once, and `close()` writes what is left.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from server.store.models import (
    REVIEW_REASONS,
    REVIEW_STATUSES,
    ROLES,
    AuditEvent,
    DemoRun,
    Feedback,
    Question,
    ReviewItem,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000


class StoreError(Exception):
    """A request the store cannot carry out, with a message for people."""


class UnknownUser(StoreError):
    """No user has this name."""


class ReviewItemNotFound(StoreError):
    """No review item has this id."""

    def __init__(self, review_id: str):
        self.review_id = review_id
        super().__init__(f"No review item with id {review_id!r}.")


def new_review_id() -> str:
    """A short random id for a review item (what /api/review/{id} takes)."""
    return uuid.uuid4().hex[:12]


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below), so writes can take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads, then writes, can fail with "database is
        # locked" when another writer got there first; IMMEDIATE waits its turn instead.
        immediate = conn.get_execution_options().get("askta_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """The askta database: questions, feedback, the review queue, users, the audit log."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(askta_write=True), expire_on_commit=False
        )
        self._behind = _WriteBehind(self._write_questions)

    # --- lifecycle -------------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema (Alembic) to `revision`; creates the tables on a new database."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at, or None before the first migration."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        """Write the questions still queued, then close every pooled connection."""
        self._behind.close()
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads, which sees every question logged before it."""
        self._behind.wait()
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose transaction commits at the end (or rolls back on error)."""
        self._behind.wait()
        with self._write() as session, session.begin():
            yield session

    # --- the chat path ---------------------------------------------------------------------
    def log_question(self, text: str, *, client: str, session_id: str | None,
                     entry_id: str | None, score: float, answered: bool,
                     suggestions: list[dict[str, Any]], review: dict[str, Any] | None = None,
                     ) -> str | None:
        """Queue one question and what the bot did with it for the background writer.

        `review` (reason, and optionally embedding and entry_id) also opens a review
        item for it; its id is returned at once, and any later read sees it.
        """
        question = _question_row(text, client=client, session_id=session_id,
                                 entry_id=entry_id, score=score, answered=answered,
                                 suggestions=suggestions)
        item = None
        if review is not None:
            item = _review_row(None, text, suggestions=suggestions, **review)
        self._behind.put((question, item))
        return item["id"] if item is not None else None

    def record_question(self, text: str, *, client: str, session_id: str | None,
                        entry_id: str | None, score: float, answered: bool,
                        suggestions: list[dict[str, Any]]) -> int:
        """Log one question and what the bot did with it, now; return its id."""
        with self.writing() as s:
            q = Question(**_question_row(text, client=client, session_id=session_id,
                                         entry_id=entry_id, score=score, answered=answered,
                                         suggestions=suggestions))
            s.add(q)
            s.flush()
            return q.id

    def _write_questions(self, batch: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
        """The background writer's transaction: the questions, then their review items."""
        with self._write() as s, s.begin():
            ids = s.execute(
                insert(Question).returning(Question.id, sort_by_parameter_order=True),
                [q for q, _ in batch],
            ).scalars().all()
            items = [{**item, "question_id": qid}
                     for (_, item), qid in zip(batch, ids, strict=True) if item is not None]
            if items:
                s.execute(insert(ReviewItem), items)

    def open_review_item(self, question_id: int | None, text: str, *, reason: str,
                         suggestions: list[dict[str, Any]], embedding: bytes | None = None,
                         entry_id: str | None = None) -> str:
        """Put a question in the review queue; return the review id."""
        item = ReviewItem(**_review_row(question_id, text, reason=reason, suggestions=suggestions,
                                        embedding=embedding, entry_id=entry_id))
        with self.writing() as s:
            s.add(item)
            return item.id

    def record_feedback(self, message: str, entry_id: str, helpful: bool,
                        client: str = "") -> str | None:
        """Store a verdict on an answer; "not helpful" opens a review item, whose id is returned."""
        review_id = None
        with self.writing() as s:
            if not helpful:
                row = _review_row(None, message, reason="not_helpful", suggestions=[],
                                  entry_id=entry_id)
                review_id = row["id"]
                s.add(ReviewItem(**row))
            s.add(Feedback(message=message, entry_id=entry_id, helpful=bool(helpful),
                           client=client, review_id=review_id, created_at=utcnow()))
        return review_id

    def record_demo_run(self, entry_id: str, status: str, *, device: str = "",
                        duration_ms: int = 0) -> None:
        """Log the outcome of one demo run (for the failure rate in the stats)."""
        with self.writing() as s:
            s.add(DemoRun(entry_id=entry_id, status=status, device=device,
                          duration_ms=int(duration_ms), at=utcnow()))

    # --- the review queue ------------------------------------------------------------------
    def review_item(self, review_id: str) -> ReviewItem:
        """One review item, or ReviewItemNotFound."""
        with self.reading() as s:
            item = s.get(ReviewItem, review_id)
            if item is None:
                raise ReviewItemNotFound(review_id)
            return item

    def review_items(self, status: str | None = "open", *, limit: int = 5000) -> list[ReviewItem]:
        """Review items with this status (all when None), oldest first."""
        with self.reading() as s:
            stmt = select(ReviewItem).order_by(ReviewItem.created_at, ReviewItem.id).limit(limit)
            if status is not None:
                stmt = stmt.where(ReviewItem.status == status)
            return list(s.scalars(stmt))

    def items_in_group(self, group_key: str, status: str = "open") -> list[ReviewItem]:
        """The items sharing a group key, oldest first."""
        with self.reading() as s:
            stmt = (select(ReviewItem)
                    .where(ReviewItem.group_key == group_key, ReviewItem.status == status)
                    .order_by(ReviewItem.created_at, ReviewItem.id))
            return list(s.scalars(stmt))

    def update_review_items(self, updates: dict[str, dict[str, Any]]) -> None:
        """Save computed fields of open items: {review_id: {field: value}}.

        The fields are group_key, embedding and suggestions.
        """
        allowed = {"group_key", "embedding", "suggestions"}
        if not updates:
            return
        with self.writing() as s:
            for review_id, values in updates.items():
                if not set(values) <= allowed:
                    raise ValueError(f"only {sorted(allowed)} can be updated")
                values = {k: _plain(v) if k == "suggestions" else v for k, v in values.items()}
                s.execute(update(ReviewItem).where(ReviewItem.id == review_id).values(**values))

    def resolve(self, review_ids: Sequence[str], *, status: str, by: str,
                resolution: dict[str, Any], action: str | None = None) -> list[str]:
        """Close open items with a status and who did it, audited in the same transaction.

        Returns the ids that were still open (an item another TA resolved first is left as is).
        """
        if status not in REVIEW_STATUSES or status == "open":
            raise ValueError(f"cannot resolve to status {status!r}")
        now = utcnow()
        with self.writing() as s:
            open_ids = list(s.scalars(select(ReviewItem.id).where(
                ReviewItem.id.in_(list(review_ids)), ReviewItem.status == "open")))
            if open_ids:
                s.execute(update(ReviewItem).where(ReviewItem.id.in_(open_ids)).values(
                    status=status, resolved_by=by, resolved_at=now, resolution=_plain(resolution)))
            s.add(AuditEvent(actor=by, action=action or status, target=",".join(open_ids) or None,
                             details=_plain({**resolution, "review_ids": list(review_ids),
                                             "resolved": open_ids}), at=now))
            return open_ids

    def has_seed_item(self, entry_id: str) -> bool:
        """Whether a seed review item (any status) exists for this entry."""
        with self.reading() as s:
            return s.scalar(select(func.count()).select_from(ReviewItem).where(
                ReviewItem.reason == "seed", ReviewItem.entry_id == entry_id)) != 0

    # --- users -----------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password_hash: str | None) -> User:
        """Create a user; StoreError when the name is taken or the role unknown."""
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self.writing() as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise StoreError(f"a user named {name!r} already exists")
            user = User(name=name, role=role, password_hash=password_hash, created_at=utcnow())
            s.add(user)
            s.add(AuditEvent(actor="cli", action="user_add", target=name,
                             details={"role": role}, at=utcnow()))
            s.flush()
            return user

    def user(self, name: str) -> User | None:
        """The user with this name, or None."""
        with self.reading() as s:
            return s.scalar(select(User).where(User.name == name))

    def user_by_token_hash(self, token_hash: str) -> User | None:
        """The user whose API token hashes to this, or None."""
        with self.reading() as s:
            return s.scalar(select(User).where(User.token_hash == token_hash))

    def users(self) -> list[User]:
        """Every user, by name."""
        with self.reading() as s:
            return list(s.scalars(select(User).order_by(User.name)))

    def update_user(self, name: str, **values: Any) -> None:
        """Change a user's password_hash, token_hash or role."""
        allowed = {"password_hash", "token_hash", "role"}
        if not set(values) <= allowed:
            raise ValueError(f"only {sorted(allowed)} can be changed")
        with self.writing() as s:
            if s.scalar(select(User.id).where(User.name == name)) is None:
                raise UnknownUser(f"no user named {name!r}: add one with `askta user add`")
            s.execute(update(User).where(User.name == name).values(**values))

    # --- audit log -------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str | None = None,
              details: dict[str, Any] | None = None) -> None:
        """Record who did what."""
        with self.writing() as s:
            s.add(AuditEvent(actor=actor, action=action, target=target,
                             details=_plain(details or {}), at=utcnow()))

    def audit_log(self, limit: int = 100) -> list[AuditEvent]:
        """The latest audit events, newest first."""
        with self.reading() as s:
            return list(s.scalars(select(AuditEvent)
                                  .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                                  .limit(limit)))

    # --- statistics ------------------------------------------------------------------------
    def questions(self, limit: int = 100) -> list[Question]:
        """The latest questions, newest first."""
        with self.reading() as s:
            return list(s.scalars(select(Question)
                                  .order_by(Question.asked_at.desc(), Question.id.desc())
                                  .limit(limit)))

    def questions_per_day(self, days: int = 30,
                          now: datetime | None = None) -> list[dict[str, Any]]:
        """[{"day": "YYYY-MM-DD", "asked": n, "answered": n}] for each of the last `days` days."""
        now = now or utcnow()
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
        with self.reading() as s:
            rows = s.execute(select(Question.asked_at, Question.answered)
                             .where(Question.asked_at >= start)).all()
        counts: dict[str, list[int]] = {}
        for i in range(days):
            counts[(start + timedelta(days=i)).date().isoformat()] = [0, 0]
        for asked_at, answered in rows:
            day = asked_at.astimezone(UTC).date().isoformat()
            if day in counts:
                counts[day][0] += 1
                counts[day][1] += int(bool(answered))
        return [{"day": d, "asked": a, "answered": b} for d, (a, b) in counts.items()]

    def summary(self) -> dict[str, Any]:
        """Totals for the stats page: questions, share answered, demo failures, queue size."""
        with self.reading() as s:
            asked = s.scalar(select(func.count()).select_from(Question)) or 0
            answered = s.scalar(select(func.count()).select_from(Question)
                                .where(Question.answered.is_(True))) or 0
            runs = s.scalar(select(func.count()).select_from(DemoRun)) or 0
            failed = s.scalar(select(func.count()).select_from(DemoRun)
                              .where(DemoRun.status != "ok")) or 0
            open_items = s.scalar(select(func.count()).select_from(ReviewItem)
                                  .where(ReviewItem.status == "open")) or 0
        return {
            "questions": asked,
            "answered": answered,
            "answered_share": answered / asked if asked else None,
            "demo_runs": runs,
            "demo_failures": failed,
            "demo_failure_rate": failed / runs if runs else None,
            "open_review_items": open_items,
        }

    def top_entries(self, limit: int = 10) -> list[dict[str, Any]]:
        """Entries answered most often: [{"entry_id", "count"}]."""
        with self.reading() as s:
            n = func.count().label("n")
            rows = s.execute(select(Question.entry_id, n)
                             .where(Question.answered.is_(True), Question.entry_id.is_not(None))
                             .group_by(Question.entry_id).order_by(n.desc(), Question.entry_id)
                             .limit(limit)).all()
        return [{"entry_id": e, "count": c} for e, c in rows]

    def feedback_by_entry(self) -> list[dict[str, Any]]:
        """Per entry: feedback count, "not helpful" count and rate, worst first."""
        with self.reading() as s:
            rows = s.execute(select(Feedback.entry_id, Feedback.helpful, func.count())
                             .group_by(Feedback.entry_id, Feedback.helpful)).all()
        per: dict[str, list[int]] = {}
        for entry_id, helpful, count in rows:
            per.setdefault(entry_id, [0, 0])
            per[entry_id][0] += count
            if not helpful:
                per[entry_id][1] += count
        out = [{"entry_id": e, "feedback": t, "not_helpful": n, "not_helpful_rate": n / t}
               for e, (t, n) in per.items()]
        return sorted(out, key=lambda r: (-r["not_helpful_rate"], -r["feedback"], r["entry_id"]))

    def count_open_by_status(self) -> dict[str, int]:
        """How many review items have each status."""
        with self.reading() as s:
            rows = s.execute(select(ReviewItem.status, func.count())
                             .group_by(ReviewItem.status)).all()
        return {status: count for status, count in rows}


def _question_row(text: str, *, client: str, session_id: str | None, entry_id: str | None,
                  score: float, answered: bool, suggestions: list[dict[str, Any]],
                  ) -> dict[str, Any]:
    """The columns of one logged question."""
    return {"text": text, "client": client, "session_id": session_id, "entry_id": entry_id,
            "score": float(score), "answered": bool(answered),
            "suggestions": _plain(suggestions), "asked_at": utcnow()}


def _review_row(question_id: int | None, text: str, *, reason: str,
                suggestions: list[dict[str, Any]], embedding: bytes | None = None,
                entry_id: str | None = None) -> dict[str, Any]:
    """The columns of a new, open review item (with a fresh id)."""
    if reason not in REVIEW_REASONS:
        raise ValueError(f"reason must be one of {', '.join(REVIEW_REASONS)}, not {reason!r}")
    return {"id": new_review_id(), "question_id": question_id, "text": text, "reason": reason,
            "status": "open", "suggestions": _plain(suggestions), "embedding": embedding,
            "entry_id": entry_id, "created_at": utcnow()}


class _WriteBehind:
    """A thread that writes queued items in batches, and a barrier for readers.

    `put` never blocks on the database. `wait` returns once everything put before
    it has been written (or given up on). A batch that fails is retried; after
    WRITE_ATTEMPTS failures its questions are logged at ERROR level, text and
    all, so that nothing disappears without a trace.
    """

    WRITE_ATTEMPTS = 5
    RETRY_DELAY_S = 0.2
    # How long the writer lets items gather before a write, unless a reader waits:
    # a write then never competes with the request that queued it for the GIL,
    # and under load one transaction takes many questions.
    LINGER_S = 0.05
    MAX_BATCH = 1000

    def __init__(self, write: Any):
        self._write = write
        self._cv = threading.Condition()
        self._pending: list[Any] = []
        self._queued = self._done = 0
        self._waiting = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, item: Any) -> None:
        with self._cv:
            if self._closed:
                raise StoreError("The store is closed.")
            self._pending.append(item)
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="askta-question-log",
                                                daemon=True)
                self._thread.start()
            # The writer needs waking only for a first item or a full batch: while it
            # lingers over a batch, waking it at each question would only cost the GIL.
            if len(self._pending) == 1 or len(self._pending) >= self.MAX_BATCH:
                self._cv.notify_all()

    def wait(self) -> None:
        if threading.current_thread() is self._thread:
            return
        with self._cv:
            target = self._queued
            if self._done >= target:
                return
            self._waiting += 1
            self._cv.notify_all()
            try:
                while self._done < target:
                    self._cv.wait()
            finally:
                self._waiting -= 1

    def close(self) -> None:
        self.wait()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending:
                    return
                deadline = time.monotonic() + self.LINGER_S
                while not (self._waiting or self._closed or len(self._pending) >= self.MAX_BATCH):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                batch, self._pending = self._pending, []
            self._write_batch(batch)
            with self._cv:
                self._done += len(batch)
                self._cv.notify_all()

    def _write_batch(self, batch: list[Any]) -> None:
        for attempt in range(1, self.WRITE_ATTEMPTS + 1):
            try:
                self._write(batch)
                return
            except Exception:
                if attempt == self.WRITE_ATTEMPTS:
                    log.exception("could not write %d logged questions; they were: %r",
                                  len(batch), [q["text"] for q, _ in batch])
                    return
                time.sleep(self.RETRY_DELAY_S * attempt)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic Config built in code, so migrations run from an installed package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _plain(value: Any) -> Any:
    """JSON-safe copy (numpy floats and the like become plain Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return str(value)
