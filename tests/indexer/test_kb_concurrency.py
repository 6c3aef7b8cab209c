"""indexer/kb.py under load: readers list, search and ask while writers create, edit and delete.

The knowledge base swaps in a new immutable mapping on every write, so a reader that
iterates `kb.entries` (or a searcher that ranks against it) never sees a half-changed
KB and never fails with "dictionary changed size during iteration".
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.embedders import HashingEmbedder
from indexer.kb import EntryNotFound, KnowledgeBase, entry_hash, parse_entry
from indexer.schema import Entry
from indexer.search import Searcher, _indexed
from server.config import Settings
from server.review.stats import collect_stats
from server.services import Services
from server.web.app import create_app
from tests.indexer.test_kb import write

SECONDS = 5.5  # every thread runs at least this long...
MIN_STEPS = 3  # ...and until each author has created, edited and deleted (steps 0..2)
WRITERS = ("author-1", "author-2", "ta")
QUESTIONS = [
    "Why do we need ReLUs or other nonlinearities?",
    "What are limitations of SGD?",
    "qwertyuiop zxcvbnm",
    "concurrency question zebra",
    "how do I pad sequences for an RNN?",
]


def small_kb(tmp_path: Path) -> KnowledgeBase:
    kb_dir = tmp_path / "kb"
    write(kb_dir, "relu", question="Why do we need ReLU nonlinearities?", alt="what is relu for")
    write(kb_dir, "calendar", question="Where is the course calendar?", alt="when is it due")
    return KnowledgeBase.load(kb_dir)


def _fields(writer: int, n: int, version: int) -> dict[str, object]:
    status = ("published", "draft", "unanswered")[n % 3]
    return {
        "id": f"conc-{writer}-{n}",
        "question": f"Concurrency question zebra {writer} {n}?",
        "alternate_questions": [f"zebra quokka {writer} {n} v{version}"],
        "answer": "" if status == "unanswered" else f"Answer {writer} {n}, version {version}.",
        "tags": ["concurrency"],
        "status": status,
    }


def test_readers_never_see_a_half_changed_kb(settings: Settings, services: Services) -> None:
    assert settings.chat_rate_limit == "off"
    kb, searcher, editor = services.kb, services.searcher, services.editor
    resyncing = Searcher.open(kb, HashingEmbedder())  # re-reads the whole KB on every sync
    deadline = time.monotonic() + SECONDS
    errors: list[str] = []
    ops: Counter[str] = Counter()  # steps done, per thread
    bundled = sorted(kb.entries)

    def running() -> bool:
        if errors:
            return False
        return time.monotonic() < deadline or any(ops[w] < MIN_STEPS for w in WRITERS)

    def looping(name: str, step: Callable[[int], None]) -> threading.Thread:
        def run() -> None:
            try:
                while running():
                    step(ops[name])
                    ops[name] += 1
            except BaseException:
                errors.append(f"{name} (step {ops[name]}):\n{traceback.format_exc()}")

        return threading.Thread(target=run, name=name)

    def list_entries(i: int) -> None:
        published = kb.published()
        assert all(e.answerable for e in published)
        kb.unanswered()
        entries = kb.entries  # one snapshot: every id in it resolves
        for entry_id, entry in entries.items():
            assert entry.id == entry_id and entries[entry_id] is entry and entry_id in entries
        assert len(list(entries.values())) == len(entries)
        for entry_id in list(entries)[:5]:
            assert entries.get(entry_id) is not None

    def search(i: int) -> None:
        searcher.search(QUESTIONS[i % len(QUESTIONS)])

    def resync_and_search(i: int) -> None:
        resyncing.sync()
        resyncing.search(QUESTIONS[i % len(QUESTIONS)])

    def review_and_stats(i: int) -> None:
        services.review_queue.groups()
        collect_stats(services.store, kb, services.review_queue)

    with TestClient(create_app(settings, services=services)) as client:

        def ask(i: int) -> None:
            r = client.post("/api/chat", json={"message": QUESTIONS[i % len(QUESTIONS)]})
            assert r.status_code == 200, r.text

        def list_over_http(i: int) -> None:
            r = client.get("/api/entries")
            assert r.status_code == 200, r.text
            assert client.get("/healthz").status_code == 200

        def author(writer: int) -> Callable[[int], None]:
            """Create an entry, edit it, and delete the one created two steps before."""

            def step(n: int) -> None:
                editor.save(_fields(writer, n, 0), by="instructor")
                editor.save(_fields(writer, n, 1), by="instructor", entry_id=f"conc-{writer}-{n}")
                if n >= 2:
                    gone = f"conc-{writer}-{n - 2}"
                    kb.delete_entry(gone)
                    searcher.remove(gone)

            return step

        def draft_alternates(n: int) -> None:
            """A TA links questions to bundled entries (add_alternate), and files get reloaded."""
            entry_id = bundled[n % len(bundled)]
            searcher.upsert(kb.add_alternate(entry_id, f"linked zebra phrasing {n}"))
            kb.reload_entry(bundled[(n + 1) % len(bundled)])

        threads = [
            looping("list-1", list_entries),
            looping("list-2", list_entries),
            looping("search", search),
            looping("resync-search", resync_and_search),
            looping("ask-1", ask),
            looping("ask-2", ask),
            looping("list-http", list_over_http),
            looping("review-stats", review_and_stats),
            looping("author-1", author(1)),
            looping("author-2", author(2)),
            looping("ta", draft_alternates),
        ]
        random.shuffle(threads)
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        took = time.monotonic() - started

    assert not errors, "\n".join(errors)
    assert took >= 5
    assert all(ops[t.name] > 0 for t in threads) and min(ops[w] for w in WRITERS) >= MIN_STEPS

    # Entries on disk == entries in memory, and no temporary file was left behind.
    on_disk = {
        p.stem: parse_entry(p.read_text(encoding="utf-8"), str(p), p.stem)[0]
        for p in kb.kb_dir.glob("*.yaml")
    }
    assert on_disk == dict(kb.entries)
    assert KnowledgeBase.load(kb.kb_dir).entries == kb.entries
    assert not list(kb.kb_dir.glob(".*.tmp"))
    assert any(e.startswith("conc-") for e in kb.entries)

    # Both searchers index exactly the indexable entries, each at its current version.
    wanted = {e.id: entry_hash(e) for e in kb.entries.values() if _indexed(e)}
    assert searcher.index.entry_hashes == wanted
    resyncing.sync()
    assert resyncing.index.entry_hashes == wanted


def test_entries_are_read_only_and_each_write_swaps_a_new_snapshot(tmp_path: Path) -> None:
    kb = small_kb(tmp_path)
    before = kb.entries
    with pytest.raises(TypeError):
        kb.entries["x"] = before["relu"]  # type: ignore[index]
    kb.add_alternate("relu", "what does relu do for us")
    assert kb.entries is not before and "what does relu do for us" not in before["relu"].phrasings
    assert kb.delete_entry("calendar") == before["calendar"]
    assert "calendar" in before and "calendar" not in kb.entries
    assert not kb.path_of("calendar").exists()
    with pytest.raises(EntryNotFound):
        kb.delete_entry("calendar")


def test_upsert_indexes_the_kb_version_of_the_entry(tmp_path: Path) -> None:
    """Two saves whose upserts arrive in the other order, and an upsert after a delete."""
    kb = small_kb(tmp_path)
    s = Searcher.open(kb, HashingEmbedder())
    old = kb.get("relu")
    new = kb.add_alternate("relu", "zyzzyva relu")
    s.upsert(new)
    s.upsert(old)  # late: the KB already has the newer version
    assert s.index.entry_hashes["relu"] == entry_hash(new)
    kb.delete_entry("relu")
    s.upsert(new)  # late: the entry was deleted meanwhile
    assert "relu" not in s.index.entry_ids and s.search("zyzzyva").top_id != "relu"


# --- two processes on one kb/ ------------------------------------------------------------
def test_a_stale_version_check_fails_against_another_process_write(tmp_path: Path) -> None:
    """Two KnowledgeBase objects on one folder, as two web processes that have not heard
    of each other's writes: the version check reads the file under the folder lock, so
    the second writer, whose memory is stale, gets the conflict and nothing is lost."""
    first, second = small_kb(tmp_path), KnowledgeBase.load(tmp_path / "kb")
    read = second.get("relu")  # both processes read this version

    def still(expected: Entry) -> Callable[[Entry | None], None]:
        def check(current: Entry | None) -> None:
            if current != expected:
                raise Stale(current)
        return check

    first.save_entry(read.model_copy(update={"answer": "First writer's answer.\n"}),
                     check=still(read))
    assert second.get("relu") == read  # second has not heard of it
    with pytest.raises(Stale) as conflict:
        second.save_entry(read.model_copy(update={"tags": ["second-writer"]}),
                          check=still(read))
    assert conflict.value.current is not None
    assert conflict.value.current.answer == "First writer's answer.\n"
    assert second.get("relu").answer == "First writer's answer.\n"  # refreshed meanwhile
    merged = conflict.value.current.model_copy(update={"tags": ["second-writer"]})
    second.save_entry(merged, check=still(conflict.value.current))
    on_disk = KnowledgeBase.load(tmp_path / "kb").get("relu")
    assert on_disk.answer == "First writer's answer.\n" and on_disk.tags == ["second-writer"]
    first.delete_entry("relu", check=still(on_disk))
    with pytest.raises(Stale):  # deleted by the other process: the check sees None
        second.delete_entry("relu", check=still(on_disk))


class Stale(Exception):
    def __init__(self, current: Entry | None):
        self.current = current
