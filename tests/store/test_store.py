"""The database store: SQLite always, and a real PostgreSQL when ASKTA_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from server.store import (
    REVIEW_REASONS,
    QuestionNotStored,
    ReviewItemNotFound,
    Store,
    StoreError,
    UnknownUser,
)
from tests.postgres import POSTGRES_URL, fresh_postgres_url
from tests.store.readback import audit_log, questions, schema_revision

BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database of each backend under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'askta.db'}"
    else:
        with fresh_postgres_url() as url:
            yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


SUGGESTIONS = [{"id": "why-nonlinearities", "question": "Why ReLU?", "score": 0.41},
               {"id": "weight-initialization", "question": "How to init?", "score": 0.22}]


def test_migrate_creates_every_table(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"questions", "feedback", "review_items", "users", "audit_log", "demo_runs",
            "alembic_version"} <= tables
    assert schema_revision(store) == "0004"


def test_models_match_migrations(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from server.store import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models and migrations disagree: write a migration for " + repr(diff)


def test_upgrade_keeps_existing_data(db_url: str) -> None:
    old = Store(db_url)
    old.migrate("0001")
    assert schema_revision(old) == "0001"
    with old.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO questions (text, asked_at, client, session_id, entry_id, score, answered,"
            " suggestions) VALUES ('what is a tensor', '2024-09-01 10:00:00', 'c1', NULL, NULL,"
            " 0.2, false, '[]')"))
        conn.execute(text(
            "INSERT INTO review_items (id, question_id, text, reason, status, suggestions,"
            " entry_id, created_at) VALUES ('abc123', 1, 'what is a tensor', 'unanswered', 'open',"
            " '[]', NULL, '2024-09-01 10:00:00')"))
    old.close()

    new = Store(db_url)
    new.migrate()
    assert schema_revision(new) == "0004"
    item = new.review_item("abc123")
    assert item.text == "what is a tensor" and item.status == "open" and item.group_key is None
    assert item.created_at == datetime(2024, 9, 1, 10, tzinfo=UTC)
    assert questions(new)[0].text == "what is a tensor"
    new.migrate()  # idempotent
    assert len(new.review_items()) == 1
    new.close()


def test_open_review_item(store: Store) -> None:
    rid = store.open_review_item(None, "why relu", reason="seed", suggestions=SUGGESTIONS,
                                 embedding=b"\x00" * 8, entry_id="why-nonlinearities")
    assert isinstance(rid, str) and rid
    item = store.review_item(rid)
    assert (item.question_id, item.reason, item.status) == (None, "seed", "open")
    assert item.suggestions == SUGGESTIONS and item.embedding == b"\x00" * 8
    assert item.entry_id == "why-nonlinearities" and item.group_key is None
    assert item.created_at.tzinfo is not None


def test_numpy_scores_are_stored_as_plain_numbers(store: Store) -> None:
    import numpy as np

    store.log_question("q", client="c", session_id=None, entry_id="e", score=np.float32(0.5),
                       answered=True,
                       suggestions=[{"id": "e", "question": "q", "score": np.float32(0.25)}])
    q = questions(store)[0]
    assert q.suggestions == [{"id": "e", "question": "q", "score": 0.25}]
    assert q.score == 0.5 and type(q.score) is float


def test_unknown_reason_is_refused(store: Store) -> None:
    assert set(REVIEW_REASONS) == {"unanswered", "not_helpful", "seed", "demo_question"}
    with pytest.raises(ValueError, match="reason must be one of"):
        store.open_review_item(None, "x", reason="bored", suggestions=[])


def test_feedback_not_helpful_opens_a_review_item(store: Store) -> None:
    assert store.record_feedback("why relu", "why-nonlinearities", True, client="c") is None
    rid = store.record_feedback("why relu", "why-nonlinearities", False, client="c",
                                embedding=b"\x02" * 8, suggestions=SUGGESTIONS)
    assert rid is not None
    item = store.review_item(rid)
    assert (item.reason, item.entry_id, item.text) == ("not_helpful", "why-nonlinearities",
                                                       "why relu")
    assert item.embedding == b"\x02" * 8 and item.suggestions == SUGGESTIONS
    rates = store.feedback_by_entry()
    assert rates == [{"entry_id": "why-nonlinearities", "feedback": 2, "not_helpful": 1,
                      "not_helpful_rate": 0.5}]


def test_missing_review_item(store: Store) -> None:
    with pytest.raises(ReviewItemNotFound, match="nope"):
        store.review_item("nope")


def test_resolve_closes_only_open_items_and_audits(store: Store) -> None:
    a = store.open_review_item(None, "a", reason="unanswered", suggestions=[])
    b = store.open_review_item(None, "b", reason="unanswered", suggestions=[])
    done = store.resolve([a, b], status="linked", by="tara",
                         resolution={"entry_id": "why-nonlinearities"}, action="link")
    assert sorted(done) == sorted([a, b])
    again = store.resolve([a], status="dismissed", by="tom", resolution={"reason": "duplicate"})
    assert again == []
    item = store.review_item(a)
    assert (item.status, item.resolved_by) == ("linked", "tara")
    assert item.resolution == {"entry_id": "why-nonlinearities"}
    events = audit_log(store)
    assert [e.action for e in events] == ["dismissed", "link"]
    assert events[1].actor == "tara" and events[1].details["resolved"] == done
    with pytest.raises(ValueError):
        store.resolve([a], status="open", by="x", resolution={})


def test_grouping_is_saved(store: Store) -> None:
    a = store.open_review_item(None, "a", reason="unanswered", suggestions=[])
    b = store.open_review_item(None, "b", reason="unanswered", suggestions=[])
    store.update_review_items({a: {"group_key": a, "embedding": b"\x01"},
                               b: {"group_key": a, "suggestions": SUGGESTIONS}})
    assert [i.group_key for i in store.review_items()] == [a, a]
    assert store.review_item(a).embedding == b"\x01"
    assert store.review_item(b).suggestions == SUGGESTIONS
    with pytest.raises(ValueError):
        store.update_review_items({a: {"status": "linked"}})


def test_seed_items(store: Store) -> None:
    assert not store.has_seed_item("sgd-limitations")
    store.open_review_item(None, "Q", reason="seed", suggestions=[], entry_id="sgd-limitations")
    assert store.has_seed_item("sgd-limitations")


def test_users(store: Store) -> None:
    store.add_user("tara", "ta", "hash1")
    store.add_user("ian", "instructor", None)
    with pytest.raises(StoreError, match="already exists"):
        store.add_user("tara", "ta", None)
    with pytest.raises(StoreError, match="role must be"):
        store.add_user("x", "student", None)
    store.update_user("tara", token_hash="t" * 64)
    assert store.user_by_token_hash("t" * 64).name == "tara"  # type: ignore[union-attr]
    assert store.user_by_token_hash("u" * 64) is None
    assert [u.name for u in store.users()] == ["ian", "tara"]
    assert store.user("nobody") is None
    with pytest.raises(UnknownUser):
        store.update_user("nobody", role="ta")


def test_upgrade_to_0004_keeps_demo_runs_as_runs_of_the_demo(db_url: str) -> None:
    old = Store(db_url)
    old.migrate("0003")
    with old.engine.begin() as conn:
        conn.execute(text("INSERT INTO demo_runs (entry_id, status, device, duration_ms, at)"
                          " VALUES ('why-relu', 'ok', 'cpu', 12, '2026-11-01 10:00:00')"))
    old.close()
    new = Store(db_url)
    new.migrate()
    try:
        new.record_demo_run("why-relu", "error", kind="edit", code_hash="ab" * 32,
                            failure="NameError: name 'x' is not defined")
        new.record_demo_run("why-relu", "ok", kind="params", params={"SEED": 3})
        assert new.tinkering_by_demo() == [{
            "entry_id": "why-relu", "demo": 1, "params": 1, "edit": 1, "edit_failed": 1,
            "failures": [{"failure": "NameError: name 'x' is not defined", "count": 1}]}]
    finally:
        new.close()


def test_upgrade_to_0003_keeps_users_and_dates_their_tokens(db_url: str) -> None:
    """Existing accounts stay enabled; a token issued before expiry dates existed gets the
    default 90 days from the upgrade instead of living forever."""
    old = Store(db_url)
    old.migrate("0002")
    with old.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO users (name, role, password_hash, token_hash, created_at) VALUES"
            " ('tara', 'ta', 'h', :t, '2024-09-01 10:00:00'),"
            " ('ian', 'instructor', 'h', NULL, '2024-09-01 10:00:00')"), {"t": "t" * 64})
    old.close()

    new = Store(db_url)
    new.migrate()
    assert schema_revision(new) == "0004"
    tara, ian = new.user("tara"), new.user("ian")
    assert tara is not None and ian is not None
    assert (tara.session_version, tara.disabled) == (0, False)
    assert (ian.session_version, ian.disabled) == (0, False)
    assert ian.token_expires_at is None and tara.token_expires_at is not None
    assert abs(tara.token_expires_at - (datetime.now(UTC) + timedelta(days=90))) < \
        timedelta(minutes=5)
    new.close()


def test_sessions_end_with_a_version_bump(store: Store) -> None:
    store.add_user("tara", "ta", "hash1")
    user = store.user("tara")
    assert user is not None and user.session_version == 0 and not user.disabled
    store.update_user("tara", password_hash="hash2", end_sessions=True)
    store.end_sessions("tara")
    user = store.user("tara")
    assert user is not None and user.session_version == 2 and user.password_hash == "hash2"
    store.update_user("tara", disabled=True, end_sessions=True)
    user = store.user("tara")
    assert user is not None and user.disabled and user.session_version == 3
    with pytest.raises(ValueError, match="only"):
        store.update_user("tara", session_version=0)
    with pytest.raises(UnknownUser):
        store.end_sessions("nobody")


def test_concurrent_session_ends_all_count(db_url: str) -> None:
    a, b = Store(db_url), Store(db_url)
    a.migrate()
    a.add_user("tara", "ta", None)
    threads = [threading.Thread(target=lambda s=s: [s.end_sessions("tara") for _ in range(10)])
               for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.user("tara").session_version == 40  # type: ignore[union-attr]
    a.close()
    b.close()


def test_stats(store: Store) -> None:
    for answered, entry in [(True, "a"), (True, "a"), (True, "b"), (False, None)]:
        store.log_question("q", client="c", session_id=None, entry_id=entry, score=0.9,
                           answered=answered, suggestions=[])
    store.record_demo_run("a", "ok", device="cpu", duration_ms=30)
    store.record_demo_run("a", "error", device="cpu", duration_ms=30)
    summary = store.summary()
    assert summary["questions"] == 4 and summary["answered_share"] == 0.75
    assert summary["demo_failure_rate"] == 0.5
    assert store.top_entries() == [{"entry_id": "a", "count": 2}, {"entry_id": "b", "count": 1}]
    days = store.questions_per_day(7)
    assert len(days) == 7 and days[-1]["asked"] == 4 and days[-1]["answered"] == 3
    later = store.questions_per_day(3, now=datetime.now(UTC) + timedelta(days=5))
    assert sum(d["asked"] for d in later) == 0


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    """Many threads recording at once: every write lands (WAL + busy timeout on SQLite)."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                store.record_feedback(f"q{n}-{i}", "e", False, client=str(n))
                store.open_review_item(None, f"q{n}-{i}", reason="unanswered", suggestions=[])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.feedback_by_entry()[0]["feedback"] == 120
    assert len(store.review_items()) == 240


def test_two_stores_on_one_sqlite_file(tmp_path: Path) -> None:
    """Two servers (two engines) sharing one SQLite file both write safely."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = Store(url), Store(url)
    a.migrate()
    b.migrate()
    with a.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    def work(s: Store) -> None:
        for i in range(20):
            s.record_feedback(f"m{i}", "e", False, client="c")

    threads = [threading.Thread(target=work, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(a.review_items()) == 40
    a.close()
    b.close()


def test_logged_question_is_seen_by_the_next_read(store: Store) -> None:
    """log_question returns before the write; any read after it still sees it."""
    rid = store.log_question("why relu", client="10.0.0.1", session_id="s1", entry_id=None,
                             score=0.41, answered=False, suggestions=SUGGESTIONS,
                             review={"reason": "unanswered", "embedding": b"\x01" * 8})
    assert isinstance(rid, str) and rid
    item = store.review_item(rid)
    q = questions(store)[0]
    assert (q.text, q.client, q.session_id, q.answered) == ("why relu", "10.0.0.1", "s1", False)
    assert (item.question_id, item.reason, item.embedding) == (q.id, "unanswered", b"\x01" * 8)
    assert item.suggestions == SUGGESTIONS
    answered = store.log_question("what is a tensor", client="c", session_id=None,
                                  entry_id="tensors", score=0.9, answered=True, suggestions=[])
    assert answered is None
    assert [q.entry_id for q in questions(store)] == ["tensors", None]
    assert len(store.review_items()) == 1


def test_logged_questions_from_many_threads_all_land(store: Store) -> None:
    def work(n: int) -> None:
        for i in range(25):
            store.log_question(f"q{n}-{i}", client=str(n), session_id=None, entry_id=None,
                               score=0.1, answered=i % 2 == 0, suggestions=[],
                               review=None if i % 2 == 0 else {"reason": "unanswered"})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.summary()["questions"] == 200
    items = store.review_items()
    assert len(items) == 96 and all(item.question_id is not None for item in items)


def test_close_writes_what_is_still_queued(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    for i in range(50):
        store.log_question(f"q{i}", client="c", session_id=None, entry_id=None, score=0.1,
                           answered=True, suggestions=[])
    store.close()
    reopened = Store(db_url)
    assert reopened.summary()["questions"] == 50
    reopened.close()
    with pytest.raises(StoreError, match="closed"):
        store.log_question("late", client="c", session_id=None, entry_id=None, score=0.1,
                           answered=True, suggestions=[])


def test_a_failing_write_is_retried_then_logged_and_readers_go_on(
        store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = store._behind._write

    def flaky(batch: list) -> None:
        calls.append(len(batch))
        if len(calls) < 3:
            raise OSError("disk I/O error")
        real(batch)

    monkeypatch.setattr(store._behind, "_write", flaky)
    monkeypatch.setattr(store._behind, "RETRY_DELAY_S", 0.01)
    store.log_question("kept", client="c", session_id=None, entry_id=None, score=0.1,
                       answered=True, suggestions=[])
    assert [q.text for q in questions(store)] == ["kept"] and len(calls) == 3

    monkeypatch.setattr(store._behind, "_write", lambda batch: (_ for _ in ()).throw(
        OSError("disk full")))
    store.log_question("what is lost", client="c", session_id=None, entry_id=None, score=0.1,
                       answered=True, suggestions=[])
    assert [q.text for q in questions(store)] == ["kept"]  # the read does not hang
    assert "could not write 1 logged questions" in caplog.text
    assert "what is lost" in caplog.text


def test_a_question_logged_with_wait_is_committed_or_refused(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """wait=True (the chat path) returns only after the commit; a write that fails every
    attempt raises QuestionNotStored instead of acknowledging a question it lost."""
    written: list[str] = []
    real = store._behind._write

    def spy(batch: list) -> None:
        real(batch)
        written.extend(q["text"] for q, _ in batch)

    monkeypatch.setattr(store._behind, "_write", spy)
    store.log_question("kept at once", client="c", session_id=None, entry_id=None,
                       score=0.1, answered=True, suggestions=[], wait=True)
    assert written == ["kept at once"]  # committed before log_question returned

    monkeypatch.setattr(store._behind, "RETRY_DELAY_S", 0.001)
    monkeypatch.setattr(store._behind, "_write", lambda batch: (_ for _ in ()).throw(
        OSError("database is locked")))
    with pytest.raises(QuestionNotStored, match="could not be stored"):
        store.log_question("refused", client="c", session_id=None, entry_id=None,
                           score=0.1, answered=False, suggestions=[],
                           review={"reason": "unanswered"}, wait=True)
    monkeypatch.setattr(store._behind, "_write", spy)
    store.log_question("and the next one is kept", client="c", session_id=None,
                       entry_id=None, score=0.1, answered=True, suggestions=[], wait=True)
    assert [q.text for q in questions(store)] == ["and the next one is kept", "kept at once"]
