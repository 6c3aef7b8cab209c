"""Fault tests: `kill -9` a real `askta serve` process at bad moments, restart it on the
same kb/ and data dir, and check that every change that got a 2xx survived everywhere
(the YAML file, the search index, the kb/ git history, the database), that nothing is
half-written, and that the server starts cleanly. Also: a full disk during a KB write
is a 507 and leaves the old YAML intact.

The question log is written by a background thread (server/store/write_behind.py) in
group commits, and a chat reply waits for its question's commit: a SIGKILL loses no
question that got a reply, only those still in flight.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from indexer.kb import KnowledgeBase
from server.accounts import Accounts
from server.services import Services
from server.store import Store
from tests.live import copy_project
from tests.store.readback import questions
from tests.web.test_shutdown import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 120
PASSWORD = "fault-tests-password"


# --- a real server, killed and restarted ----------------------------------------------------
class Site:
    """A private kb/ copy and data dir, with a TA and an instructor token."""

    def __init__(self, tmp_path: Path):
        self.kb = copy_project(tmp_path)
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.env = {**os.environ, "ASKTA_KB_DIR": str(self.kb), "ASKTA_DATA_DIR": str(self.data),
                    "ASKTA_MODEL": "hashing",
                    "ASKTA_SECRET_KEY": "fault-test-key-of-32-characters-long!",
                    "ASKTA_CHAT_RATE_LIMIT": "off", "ASKTA_DEMO_RATE_LIMIT": "off",
                    "ASKTA_SANDBOX_ENABLED": "false", "ASKTA_LOG_FORMAT": "json",
                    "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""
        self.ta: dict[str, str] = {}
        self.instructor: dict[str, str] = {}

    def add_staff(self) -> None:
        """A TA and an instructor token, made in the database the server created."""
        store = self.store()
        try:
            accounts = Accounts(store)
            accounts.add("tess", "ta", PASSWORD)
            accounts.add("ian", "instructor", PASSWORD)
            self.ta = {"Authorization": f"Bearer {accounts.issue_token('tess')}"}
            self.instructor = {"Authorization": f"Bearer {accounts.issue_token('ian')}"}
        finally:
            store.close()

    def store(self) -> Store:
        return Store(f"sqlite:///{(self.data / 'askta.db').resolve()}")

    def start(self) -> float:
        """Start the server and wait for /readyz 200; returns the seconds that took."""
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from server.cli.main import main; main()",
             "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_until(self._ready, STARTUP_S, self.proc)
        return time.monotonic() - began

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    s.start()
    s.add_staff()
    try:
        yield s
    finally:
        s.close()


def answered(c: httpx.Client, question: str) -> str | None:
    reply = c.post("/api/chat", json={"message": question})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["entry"]["id"] if body["answered"] else None


def git_head_text(kb: Path, entry_id: str) -> str | None:
    r = subprocess.run(["git", "-C", str(kb), "show", f"HEAD:./{entry_id}.yaml"],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def distinct_question() -> str:
    """A question of random words: the hashing embedder tells such questions apart."""
    return "why does " + " ".join(uuid.uuid4().hex[:8] for _ in range(5))


def entry_body(question: str, answer: str) -> dict[str, Any]:
    return {"question": question, "alternate_questions": [], "answer": answer,
            "tags": ["faults"], "demo": None, "status": "published"}


def restart_and_check(site: Site, entries: dict[str, str], linked: dict[str, str],
                      resolved: list[str]) -> float:
    """Restart on the same dirs and check everything acknowledged survived: `entries`
    (id -> its question), `linked` (question -> entry id), `resolved` review item ids."""
    took = site.start()
    kb = KnowledgeBase.load(site.kb)  # raises on any file that does not parse
    assert not list(site.kb.rglob("*.tmp")), "a temporary file was left in kb/"
    check = subprocess.run([sys.executable, "-m", "server.cli.main", "check"], cwd=REPO,
                           env=site.env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with site.client() as c:
        for entry_id, question in entries.items():
            assert kb.get(entry_id).question == question
            assert c.get(f"/api/entries/{entry_id}").status_code == 200
            assert answered(c, question) == entry_id, question
        for question, entry_id in linked.items():
            assert question in kb.get(entry_id).alternate_questions
            assert answered(c, question) == entry_id, question
    # kb/ history: pending records are committed at start-up (or just after, in the
    # background): HEAD holds each acknowledged file as it is on disk.
    changed = set(entries) | set(linked.values())
    deadline = time.monotonic() + 30
    while True:
        stale = [i for i in changed
                 if git_head_text(site.kb, i) != (site.kb / f"{i}.yaml").read_text("utf-8")]
        if not stale:
            break
        assert time.monotonic() < deadline, f"not in kb/ history: {stale}"
        time.sleep(0.2)
    store = site.store()
    try:
        for review_id in resolved:
            assert store.review_item(review_id).status != "open", review_id
    finally:
        store.close()
    print(f"faults: restarted in {took:.1f} s; {len(entries)} saved entries, {len(linked)} "
          f"links and {len(resolved)} resolved items all kept")
    return took


def open_item(c: httpx.Client, site: Site, question: str) -> str:
    """Ask an unanswerable question; the id of the review item it opened."""
    assert answered(c, question) is None
    groups = c.get("/api/review", headers=site.ta).json()["groups"]
    for g in groups:
        for item in g["items"]:
            if item["text"] == question:
                return str(item["id"])
    raise AssertionError(f"no review item for {question!r}")


def an_entry(c: httpx.Client) -> str:
    return str(c.get("/api/entries").json()[0]["id"])


pytestmark = pytest.mark.slow


# (a) ----------------------------------------------------------------------------------------
def test_kill_right_after_a_ta_link(site: Site) -> None:
    question = "zqx fault case a: why do quokkas frobnicate gradients"
    with site.client() as c:
        target = an_entry(c)
        review_id = open_item(c, site, question)
        r = c.post(f"/api/review/{review_id}/link", json={"entry_id": target}, headers=site.ta)
        assert r.status_code == 200, r.text
        site.kill()
    restart_and_check(site, {}, {question: target}, [review_id])


# (b) and (c) --------------------------------------------------------------------------------
def put_in_threads(site: Site, prefix: str, n: int, kill_after_first: bool,
                   kill_at: float | None) -> dict[str, str]:
    """PUT n new entries from n threads; SIGKILL after the first 2xx or at `kill_at`
    seconds; returns the acknowledged entries (id -> question)."""
    acked: dict[str, str] = {}
    first = threading.Event()
    lock = threading.Lock()

    def put(i: int) -> None:
        entry_id, question = f"{prefix}-{i}", distinct_question()
        try:
            r = httpx.put(f"{site.base}/api/entries/{entry_id}", headers=site.instructor,
                          json=entry_body(question, f"Answer {i} of {prefix}."), timeout=60)
        except httpx.HTTPError:
            return  # killed in flight: no acknowledgement, no promise
        if r.status_code in (200, 201):
            with lock:
                acked[entry_id] = question
            first.set()
        else:
            assert r.status_code >= 500 or r.status_code == 409, r.text

    threads = [threading.Thread(target=put, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    if kill_after_first:
        assert first.wait(60)
    else:
        time.sleep(kill_at or 0)
    site.kill()
    for t in threads:
        t.join(60)
    with lock:
        return dict(acked)


def test_kill_during_instructor_saves(site: Site) -> None:
    """Eight instructors' PUTs at once, killed right after the first 2xx: the others are
    mid-save (YAML written or not, history recorded or not, commit under way)."""
    entries = put_in_threads(site, "fault-save", 8, kill_after_first=True, kill_at=None)
    assert entries
    restart_and_check(site, entries, {}, [])


def test_kill_right_after_a_journal_append_and_during_a_burst(site: Site) -> None:
    # right after one acknowledged save (each save appends to the index journal)
    with site.client() as c:
        r = c.put("/api/entries/fault-journal", headers=site.instructor,
                  json=entry_body("zqx fault journal: why do pangolins batch norm",
                                  "Because."))
        assert r.status_code == 201, r.text
    site.kill()
    entries = {"fault-journal": "zqx fault journal: why do pangolins batch norm"}
    restart_and_check(site, entries, {}, [])
    # a burst, killed at a random moment
    delay = random.Random().uniform(0.05, 1.0)
    entries |= put_in_threads(site, "fault-burst", 16, kill_after_first=False, kill_at=delay)
    restart_and_check(site, entries, {}, [])


# (d) ----------------------------------------------------------------------------------------
def test_kill_with_questions_in_the_write_behind_batch(site: Site) -> None:
    """Questions asked from many threads, the server killed mid-burst: every question
    that got a reply is in the database (with its review item), none twice."""
    acked: list[tuple[str, str | None]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def ask(n: int) -> None:
        with site.client() as c:
            for i in range(1000):
                if stop.is_set():
                    return
                text = f"zqx fault question {n}-{i} about aardvarks"
                try:
                    r = c.post("/api/chat", json={"message": text})
                except httpx.HTTPError:
                    return  # killed in flight: no reply, no promise
                if r.status_code == 200:
                    with lock:
                        acked.append((text, r.json()["review_id"]))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(random.Random().uniform(0.5, 1.5))
    site.kill()
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acked) >= 20, "too few questions were answered before the kill"
    restart_and_check(site, {}, {}, [])
    store = site.store()
    try:
        logged = [q.text for q in questions(store, limit=100_000)]
        items = {i.id for i in store.review_items()}
    finally:
        store.close()
    lost = [text for text, _ in acked if text not in logged]
    assert not lost, f"{len(lost)} of {len(acked)} answered questions lost: {lost[:5]}"
    assert len(logged) == len(set(logged))
    assert {rid for _, rid in acked if rid} <= items
    print(f"write-behind: 0 of {len(acked)} answered questions lost to SIGKILL")


# --- a full disk, in process ------------------------------------------------------------------
def test_a_full_disk_during_a_kb_write_is_507_and_keeps_the_old_yaml(
        client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = Accounts(services.store)
    accounts.add("ian", "instructor", None)
    h = {"Authorization": f"Bearer {accounts.issue_token('ian')}"}
    entry = services.kb.published()[0]
    path = services.kb.path_of(entry.id)
    before = path.read_text(encoding="utf-8")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    r = client.put(f"/api/entries/{entry.id}", headers={**h, "If-Match": "*"},
                   json=entry_body(entry.question, "A new answer that never fits."))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["error"]["code"] == "insufficient_storage"
    assert "no space left" in body["error"]["message"]
    assert "/" + str(path).lstrip("/") not in body["error"]["message"]  # no absolute path
    assert path.read_text(encoding="utf-8") == before
    assert not list(path.parent.glob("*.tmp"))
    assert KnowledgeBase.load(services.kb.kb_dir).get(entry.id).answer == entry.answer
