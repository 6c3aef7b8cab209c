"""Authoring in the browser (/admin), the preview and demo test, the statistics, and KB writes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from indexer.kb import KnowledgeBase
from server.services import Services
from server.web.auth import Accounts
from tests.store.readback import audit_log

REPO = Path(__file__).resolve().parents[2]


def instructor(services: Services, name: str = "ian", role: str = "instructor") -> dict[str, str]:
    accounts = Accounts(services.store)
    accounts.add(name, role, None)
    return {"Authorization": f"Bearer {accounts.issue_token(name)}"}


def form_values(**changes: Any) -> dict[str, str]:
    values = {"id": "tensor-broadcasting", "question": "How does broadcasting work in PyTorch?",
              "alternate_questions": "why can I add a vector to a matrix\nwhat is broadcasting",
              "answer": "Dimensions of size 1 are **stretched** to match.\n\n$a + b$",
              "tags": "chapter-4, tensors", "demo": "", "status": "published"}
    values.update(changes)
    return values


def test_admin_lists_every_entry(client: TestClient, services: Services) -> None:
    r = client.get("/admin", headers=instructor(services))
    assert r.status_code == 200
    for entry_id in services.kb.entries:
        assert f'href="/admin/entries/{entry_id}"' in r.text
    assert "unanswered" in r.text


def test_create_entry_is_answerable_at_once(client: TestClient, services: Services) -> None:
    h = instructor(services)
    r = client.get("/admin/entries/new", headers=h)
    assert r.status_code == 200 and 'action="/admin/entries/new"' in r.text
    r = client.post("/admin/entries/new", data=form_values(), headers=h, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/admin/entries/tensor-broadcasting?saved=1"
    entry = KnowledgeBase.load(services.kb.kb_dir).get("tensor-broadcasting")
    assert entry.tags == ["chapter-4", "tensors"]
    assert entry.alternate_questions == ["why can I add a vector to a matrix",
                                         "what is broadcasting"]
    reply = client.post("/api/chat", json={"message": "How does broadcasting work in PyTorch?"})
    assert reply.json()["answered"] and reply.json()["entry"]["id"] == "tensor-broadcasting"
    page = client.get(r.headers["location"], headers=h)
    assert "Saved" in page.text and "<strong>stretched</strong>" in page.text
    event = audit_log(services.store)[0]
    assert (event.actor, event.action, event.target) == ("ian", "entry_create",
                                                         "tensor-broadcasting")


def test_validation_errors_are_shown_next_to_the_field(client: TestClient,
                                                       services: Services) -> None:
    h = instructor(services)
    r = client.post("/admin/entries/new", data=form_values(id="Bad Id", tags="Not OK"), headers=h)
    assert r.status_code == 422
    id_error = re.search(r'<p id="id-error" class="field-error"[^>]*>([^<]*)</p>', r.text)
    assert id_error and "lowercase words joined by hyphens" in id_error.group(1)
    assert re.search(r'id="f-id"[^>]*aria-invalid="true"', r.text)
    assert 'value="How does broadcasting work in PyTorch?"' in r.text  # nothing typed is lost
    r = client.post("/admin/entries/new", data=form_values(answer="", status="published"),
                    headers=h)
    assert r.status_code == 422 and "a published entry needs an answer" in r.text
    r = client.post("/admin/entries/new", data=form_values(id="why-nonlinearities"), headers=h)
    assert r.status_code == 422 and "already exists" in r.text
    assert not (services.kb.kb_dir / "bad-id.yaml").exists()


def test_edit_keeps_comments_and_reindexes(client: TestClient, services: Services) -> None:
    path = services.kb.kb_dir / "why-not-deeper.yaml"
    path.write_text("# reviewed by the instructor\n" + path.read_text())
    services.kb.reload_entry("why-not-deeper")
    h = instructor(services)
    page = client.get("/admin/entries/why-not-deeper", headers=h)
    assert page.status_code == 200 and "readonly" in page.text
    e = services.kb.get("why-not-deeper")
    values = form_values(id="why-not-deeper", question=e.question,
                         alternate_questions="\n".join([*e.alternate_questions,
                                                        "is a million layers better"]),
                         answer=e.answer, tags=", ".join(e.tags), demo=e.demo or "")
    r = client.post("/admin/entries/why-not-deeper", data=values, headers=h,
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    assert path.read_text().startswith("# reviewed by the instructor\n")
    reply = client.post("/api/chat", json={"message": "is a million layers better"}).json()
    assert reply["entry"]["id"] == "why-not-deeper"
    r = client.post("/admin/entries/why-not-deeper", data={**values, "id": "renamed"}, headers=h,
                    follow_redirects=False)
    assert r.status_code == 303  # the id comes from the URL: ids are stable
    assert not (services.kb.kb_dir / "renamed.yaml").exists()


def test_answering_a_seed_entry_takes_it_off_the_queue(client: TestClient,
                                                       services: Services) -> None:
    h = instructor(services)
    e = services.kb.get("sgd-limitations")
    values = form_values(id=e.id, question=e.question, alternate_questions="",
                         answer="It can stall on plateaus.", tags="", status="published")
    assert client.post(f"/admin/entries/{e.id}", data=values, headers=h,
                       follow_redirects=False).status_code == 303
    seeds = [i for i in services.store.review_items(None) if i.entry_id == "sgd-limitations"
             and i.reason == "seed"]
    assert seeds and all(i.status == "drafted" for i in seeds)


def test_unknown_entry_page(client: TestClient, services: Services) -> None:
    r = client.get("/admin/entries/nope", headers=instructor(services))
    assert r.status_code == 404


def test_preview_is_sanitized(client: TestClient, services: Services) -> None:
    h = instructor(services, "tara", "ta")
    r = client.post("/api/admin/preview", json={"markdown": "**hi** <script>alert(1)</script>"},
                    headers=h)
    assert r.status_code == 200
    html = r.json()["html"]
    assert "<strong>hi</strong>" in html and "<script>" not in html


def test_demo_test_without_a_sandbox_says_why(client: TestClient, services: Services) -> None:
    h = instructor(services)
    r = client.post("/api/admin/demo/test", json={"demo": "demos/classifier_prototypes.py"},
                    headers=h)
    assert r.status_code == 503 and "disabled" in r.json()["error"]["message"]
    r = client.post("/api/admin/demo/test", json={"demo": "../etc/passwd.py"}, headers=h)
    assert r.status_code == 422


def test_demo_test_runs_in_the_sandbox(client: TestClient, services: Services) -> None:
    class FakeResult:
        def to_dict(self) -> dict[str, Any]:
            return {"status": "ok", "exit_code": 0, "stdout": "hello\n", "stderr": "",
                    "images": [], "device": "cpu", "duration_ms": 12}

    class FakeSandbox:
        def run(self, code: str, device: str = "auto") -> FakeResult:
            assert "import" in code and device == "cpu"
            return FakeResult()

        def close(self) -> None:
            pass

    services.sandbox = FakeSandbox()  # type: ignore[assignment]
    r = client.post("/api/admin/demo/test", json={"demo": "demos/classifier_prototypes.py",
                                                  "device": "cpu"},
                    headers=instructor(services))
    assert r.status_code == 200 and r.json()["stdout"] == "hello\n"
    assert services.store.summary()["demo_runs"] == 1


def test_stats(client: TestClient, services: Services) -> None:
    h = instructor(services, "tara", "ta")
    question = services.kb.get("why-nonlinearities").question
    client.post("/api/chat", json={"message": question})
    client.post("/api/chat", json={"message": "xylophone quartet rehearsal schedule"})
    client.post("/api/feedback", json={"message": question, "entry_id": "why-nonlinearities",
                                       "helpful": False})
    services.store.record_demo_run("why-nonlinearities", "error", device="cpu")
    data = client.get("/api/admin/stats", headers=h).json()
    assert data["summary"]["questions"] == 2 and data["summary"]["answered_share"] == 0.5
    assert data["summary"]["demo_failure_rate"] == 1.0
    assert data["top_entries"][0]["entry_id"] == "why-nonlinearities"
    assert data["not_helpful"][0]["not_helpful_rate"] == 1.0
    assert any(g["question"] == "xylophone quartet rehearsal schedule"
               for g in data["top_unanswered"])
    assert data["per_day"][-1]["asked"] == 2
    page = client.get("/admin/stats", headers=h)
    assert page.status_code == 200 and "<svg" in page.text and 'id="kpi-answered">50 %' in page.text


# --- writes to kb/ are atomic ------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from indexer.kb import KnowledgeBase
    kb = KnowledgeBase.load(sys.argv[1])
    real_fsync = os.fsync
    def stalled_fsync(fd):
        real_fsync(fd)
        print("WRITING", flush=True)   # the new text is in the temp file, not yet renamed
        time.sleep(60)
    os.fsync = stalled_fsync
    kb.add_alternate("why-nonlinearities", "a phrasing that must not half-land")
""")


@pytest.mark.slow
def test_killed_mid_write_leaves_the_old_file(kb_dir: Path) -> None:
    """A process killed in the middle of a KB write leaves the old file intact and loadable."""
    path = kb_dir / "why-nonlinearities.yaml"
    before = path.read_text()
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(kb_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "WRITING"
        temps = list(kb_dir.glob(".why-nonlinearities.*.tmp"))
        assert temps and "a phrasing that must not half-land" in temps[0].read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert path.read_text() == before
    kb = KnowledgeBase.load(kb_dir)  # the leftover temp file is not an entry
    assert "a phrasing that must not half-land" not in kb.get("why-nonlinearities").phrasings
    # and the lock died with the process: the next writer is not blocked
    start = time.monotonic()
    kb.add_alternate("why-nonlinearities", "the next write goes through")
    assert time.monotonic() - start < 5
    assert "the next write goes through" in path.read_text()


def test_stats_lists_confusable_entries(client: TestClient, services: Services) -> None:
    h = instructor(services, "tara", "ta")
    shared = "what's the difference between a pytorch tensor and a numpy array"
    services.kb.add_alternate("why-nonlinearities", shared)
    services.searcher.upsert(services.kb.get("why-nonlinearities"))
    data = client.get("/api/admin/stats", headers=h).json()
    pair = next(o for o in data["overlaps"]
                if (o["a"]["id"], o["b"]["id"]) == ("pytorch-vs-numpy", "why-nonlinearities"))
    assert any(f["phrasing"] == shared and f["nearest"] == "pytorch-vs-numpy"
               for f in pair["flips"])
    page = client.get("/admin/stats", headers=h).text
    panel = page[page.index('id="overlaps"'):]
    assert "Entries that could be confused" in panel
    assert '<a href="/entries/why-nonlinearities">' in panel
    assert f"“{shared.replace(chr(39), '&#39;')}” <span class=\"muted\">of why-nonlinearities, " \
           "lands on pytorch-vs-numpy: 0.9" in panel


def test_stats_skips_overlaps_on_a_large_index(client: TestClient, services: Services,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from server.review import stats

    monkeypatch.setattr(stats, "OVERLAP_PAGE_VECTORS", 10)
    h = instructor(services, "tara", "ta")
    assert client.get("/api/admin/stats", headers=h).json()["overlaps"] is None
    page = client.get("/admin/stats", headers=h).text
    assert "too large to compare on every visit" in page and 'class="overlap"' not in page
