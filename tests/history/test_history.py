"""kb/ as a git working copy: a repository on the first start, one commit per staff change
(author, message), only kb/ committed inside a larger repository, recovery at start-up,
the history page with its Revert button, and `askta kb log`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from indexer.embedders import HashingEmbedder
from indexer.kb import KnowledgeBase
from server.cli.main import cli
from server.config import Settings
from server.history import History, HistoryError, KbHistory, KbRepo
from server.history.repo import Identity, blob_id
from server.services import Services
from server.web.app import create_app
from tests.web.test_auth import bearer, login

ENTRY = "why-nonlinearities"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with the history on whatever the environment says."""
    return settings.model_copy(update={"kb_git": "auto", "kb_git_email_domain": "askta.invalid"})


def git(cwd: Path, *args: str) -> str:
    """The git command, with a private identity and no user or system configuration."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.org",
           "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.org"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout


def commits(services: Services, entry_id: str | None = None) -> list[tuple[str, str]]:
    """(author, message summary) of the commits, newest first, once all are committed."""
    history = services.history
    assert isinstance(history, KbHistory) and history.flush()
    return [(c.author, c.summary) for c in history.log(entry_id)]


def start(settings: Settings) -> Services:
    return Services.start(settings, embedder=HashingEmbedder())


def edited(services: Services, entry_id: str = ENTRY, **changes: object) -> dict[str, object]:
    fields = services.kb.get(entry_id).to_yaml_dict()
    fields.update(changes)
    return fields


def crash(history: History) -> None:
    """Stop a history as a killed server would: the thread ends, nothing more is committed."""
    assert isinstance(history, KbHistory)
    with history._cond:
        history._stopping = True
        history._cond.notify_all()
    history._thread.join(timeout=5)
    history.kb.change_hooks.remove(history._on_kb_change)
    history.repo.close()


# --- the repository ----------------------------------------------------------------------
def test_first_start_creates_a_repository_of_the_existing_entries(services: Services) -> None:
    kb_dir = services.kb.kb_dir
    assert (kb_dir / ".git").is_dir()
    log = commits(services)
    assert len(log) == 1
    author, message = log[0]
    assert author == "askta <askta@askta.invalid>"
    assert message == f"init: the knowledge base as found at start-up ({len(services.kb)} entries)"
    repo = KbRepo.find(kb_dir)
    assert repo is not None and not repo.outer
    assert set(repo.head_files()) == {p.name for p in kb_dir.glob("*.yaml")}
    repo.close()
    assert git(kb_dir, "status", "--porcelain") == ""
    assert git(kb_dir, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    git(kb_dir, "fsck", "--strict")


def test_a_second_start_commits_nothing_new(settings: Settings) -> None:
    start(settings).close()
    services = start(settings)
    try:
        assert len(commits(services)) == 1
    finally:
        services.close()


def test_off_keeps_no_history(settings: Settings) -> None:
    services = start(settings.model_copy(update={"kb_git": "off"}))
    try:
        assert not services.history.enabled and not (settings.kb_dir / ".git").exists()
        services.editor.save(edited(services, answer="Changed."), by="ines", entry_id=ENTRY)
        assert services.history.flush()
    finally:
        services.close()


def test_the_email_domain_is_configurable(settings: Settings) -> None:
    services = start(settings.model_copy(update={"kb_git_email_domain": "cs.example.edu"}))
    try:
        services.editor.save(edited(services, answer="Changed."), by="Ines Ortega",
                             entry_id=ENTRY)
        assert commits(services, ENTRY)[0][0] == "Ines Ortega <ines-ortega@cs.example.edu>"
    finally:
        services.close()
    with pytest.raises(ValueError, match="domain"):
        Settings(kb_git_email_domain="not a domain>")


def test_inside_a_larger_repository_only_kb_is_committed(tmp_path: Path,
                                                         settings: Settings) -> None:
    project = tmp_path  # holds kb/, demos/ and data/, like this project's checkout
    git(project, "init", "-q", "-b", "trunk")
    (project / "README.md").write_text("project\n")
    (project / "notes.txt").write_text("notes\n")
    (project / ".gitignore").write_text("data/\n")
    git(project, "add", "README.md", "notes.txt", ".gitignore", "kb", "demos")
    git(project, "commit", "-q", "-m", "the project")
    # A person's work in progress: staged, unstaged and untracked.
    (project / "README.md").write_text("project, staged change\n")
    git(project, "add", "README.md")
    (project / "notes.txt").write_text("notes, unstaged change\n")
    (project / "scratch.txt").write_text("untracked\n")
    staged_before = git(project, "diff", "--cached")
    unstaged_before = git(project, "diff")
    status_before = git(project, "status", "--porcelain")

    services = start(settings)
    try:
        assert not (settings.kb_dir / ".git").exists()
        assert len(commits(services)) == 1  # kb/ was clean: nothing to recover
        services.editor.save(edited(services, answer="Changed by an instructor."), by="ines",
                             entry_id=ENTRY)
        log = commits(services)
    finally:
        services.close()

    assert log[0] == ("ines <ines@askta.invalid>", f"edit: {ENTRY} (published)")
    assert git(project, "show", "--name-only", "--format=", "HEAD").split() == [
        f"kb/{ENTRY}.yaml"]
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD").strip() == "trunk"
    # The person's index and work tree are as they were; kb/ is clean.
    assert git(project, "diff", "--cached") == staged_before
    assert git(project, "diff") == unstaged_before
    assert git(project, "status", "--porcelain") == status_before
    # Their next commit keeps the instructor's change (no stale index entry or cached tree).
    git(project, "commit", "-q", "-m", "the person's commit")
    assert git(project, "show", "--name-only", "--format=", "HEAD").split() == ["README.md"]
    assert "Changed by an instructor." in git(project, "show", f"HEAD:kb/{ENTRY}.yaml")
    git(project, "fsck", "--strict")


def test_a_larger_repository_that_ignores_kb_gets_kb_its_own(tmp_path: Path,
                                                             settings: Settings) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("kb/\ndata/\n")
    services = start(settings)
    try:
        assert (settings.kb_dir / ".git").is_dir() and len(commits(services)) == 1
    finally:
        services.close()
    assert git(tmp_path, "status", "--porcelain") == "?? .gitignore\n?? demos/\n"


def test_a_worktree_of_a_larger_repository_commits_on_its_own_branch(tmp_path: Path) -> None:
    main, tree = tmp_path / "main", tmp_path / "tree"
    main.mkdir()
    git(main, "init", "-q", "-b", "main")
    (main / "kb").mkdir()
    (main / "kb" / "a.yaml").write_text("a: 1\n")
    git(main, "add", ".")
    git(main, "commit", "-q", "-m", "init")
    git(main, "worktree", "add", "-q", str(tree), "-b", "feature")
    (tree / "kb" / "a.yaml").write_text("a: 2\n")
    repo = KbRepo.find(tree / "kb")
    assert repo is not None and repo.prefix == "kb/"
    me = Identity("ines", "ines@askta.invalid")
    repo.commit({"a.yaml": b"a: 2\n"}, author=me, committer=me, message="edit: a")
    repo.close()
    assert git(tree, "log", "--format=%s", "feature").split("\n")[:2] == ["edit: a", "init"]
    assert git(main, "log", "--format=%s", "main").strip() == "init"
    assert git(tree, "status", "--porcelain") == "" == git(main, "status", "--porcelain")


# --- one commit per staff change ---------------------------------------------------------
def test_each_staff_action_is_one_commit_by_its_author(services: Services) -> None:
    store, queue, editor = services.store, services.review_queue, services.editor
    n = len(commits(services))

    rid = store.open_review_item(None, "is relu just max(0,x)", reason="unanswered",
                                 suggestions=[])
    queue.link(rid, ENTRY, by="tara", group=False)
    assert commits(services)[0] == ("tara <tara@askta.invalid>",
                                    f'link: "is relu just max(0,x)" -> {ENTRY}')

    rid = store.open_review_item(None, "what does a tensor core do", reason="unanswered",
                                 suggestions=[])
    queue.draft(rid, {"id": "tensor-cores", "question": "What does a tensor core do?",
                      "answer": "It multiplies small matrices in one step.", "status": "draft"},
                by="tara", may_publish=False)
    assert commits(services)[0] == ("tara <tara@askta.invalid>", "draft: tensor-cores (draft)")

    rid = store.open_review_item(None, "buy cheap watches", reason="unanswered", suggestions=[])
    queue.dismiss(rid, "off-topic", by="tara")  # the KB does not change: no commit
    assert len(commits(services)) == n + 2

    editor.save(edited(services, "tensor-cores", status="published"), by="ines",
                entry_id="tensor-cores")
    editor.save(edited(services, "tensor-cores", answer="Small matrix products, fast."),
                by="ines", entry_id="tensor-cores")
    editor.save(edited(services, "tensor-cores"), by="ines", entry_id="tensor-cores")  # same
    editor.save({"id": "what-is-a-gpu", "question": "What is a GPU?", "answer": "A chip.",
                 "status": "draft"}, by="ines")
    with services.history.change("ines"):
        services.kb.delete_entry("what-is-a-gpu")
    services.kb.delete_entry("tensor-cores")  # a write nobody attributed: committed by askta

    log = commits(services)
    assert log[:5] == [
        ("askta <askta@askta.invalid>", "delete: tensor-cores"),
        ("ines <ines@askta.invalid>", "delete: what-is-a-gpu"),
        ("ines <ines@askta.invalid>", "create: what-is-a-gpu (draft)"),
        ("ines <ines@askta.invalid>", "edit: tensor-cores (published)"),
        ("ines <ines@askta.invalid>", "publish: tensor-cores"),
    ]
    assert len(log) == n + 7
    assert [m for _, m in commits(services, "tensor-cores")] == [
        "delete: tensor-cores", "edit: tensor-cores (published)", "publish: tensor-cores",
        "draft: tensor-cores (draft)"]
    assert not list(services.history.pending_dir.glob("*.json"))  # type: ignore[attr-defined]


def test_a_link_of_a_group_is_one_commit(services: Services) -> None:
    store = services.store
    first = store.open_review_item(None, "is relu just max(0,x)", reason="unanswered",
                                   suggestions=[])
    store.open_review_item(None, "is relu just max(0, x)?", reason="unanswered", suggestions=[])
    store.open_review_item(None, "relu = max(0, x)?", reason="unanswered", suggestions=[])
    items = store.review_items("open")
    store.update_review_items({i.id: {"group_key": first} for i in items
                               if i.reason == "unanswered"})
    n = len(commits(services))
    result = services.review_queue.link(first, ENTRY, by="tara")
    assert len(result.added) == 3
    assert len(commits(services)) == n + 1
    log = services.history.log(ENTRY)  # type: ignore[attr-defined]
    assert log[0].summary == f'link: "is relu just max(0,x)" -> {ENTRY} (+2 more)'
    assert '- "relu = max(0, x)?"' in log[0].message


def test_concurrent_saves_commit_in_order(services: Services) -> None:
    n = len(commits(services))
    ids = sorted(services.kb.entries)[:4]

    def save(entry_id: str, author: str) -> None:
        for i in range(5):
            services.editor.save(edited(services, entry_id, answer=f"{author} {i}"), by=author,
                                 entry_id=entry_id)

    threads = [threading.Thread(target=save, args=(e, f"user{k}")) for k, e in enumerate(ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(commits(services)) == n + 20
    repo = services.history.repo  # type: ignore[attr-defined]
    for entry_id in ids:
        assert repo.blob_at(repo.head(), f"{entry_id}.yaml") == \
            (services.kb.kb_dir / f"{entry_id}.yaml").read_bytes()
    assert git(services.kb.kb_dir, "status", "--porcelain") == ""


def test_saving_an_entry_unchanged_keeps_its_text(services: Services) -> None:
    """A backslash in a long line ($\\max) once came back as '$\\ max' after a save."""
    before = (services.kb.kb_dir / f"{ENTRY}.yaml").read_text()
    assert "$\\max(0" in before
    services.editor.save(edited(services), by="ines", entry_id=ENTRY)
    assert (services.kb.kb_dir / f"{ENTRY}.yaml").read_text() == before
    assert commits(services)[0][1].startswith("init:")  # nothing changed: nothing committed


# --- recovery at start-up ----------------------------------------------------------------
def test_a_change_written_but_not_committed_is_committed_at_start(settings: Settings) -> None:
    services = start(settings)
    services.close()
    # The YAML was written, then the server died before it recorded or committed the change.
    path = settings.kb_dir / f"{ENTRY}.yaml"
    path.write_text(path.read_text().replace("status: published", "status: draft"))
    (settings.kb_dir / "mse-vs-outliers.yaml").unlink()

    services = start(settings)
    try:
        log = services.history.log()  # type: ignore[attr-defined]
        assert [c.summary for c in log][:1] == [
            f"recovered: uncommitted changes to mse-vs-outliers, {ENTRY} at start-up"]
        assert log[0].author == "askta <askta@askta.invalid>"
        assert "kb/mse-vs-outliers.yaml: deleted" not in log[0].message  # kb/ is the root
        assert "mse-vs-outliers.yaml: deleted" in log[0].message
        assert f"{ENTRY}.yaml: modified" in log[0].message
        assert len(log) == 2
    finally:
        services.close()
    assert git(settings.kb_dir, "status", "--porcelain") == ""


def test_a_recorded_change_is_committed_at_start_with_its_author(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    services = start(settings)
    real_commit = KbRepo.commit

    def refuse(*args: object, **kwargs: object) -> None:
        raise HistoryError("simulated: the server dies before committing")

    monkeypatch.setattr(KbRepo, "commit", refuse)
    services.editor.save(edited(services, answer="Written, recorded, never committed."),
                         by="ines", entry_id=ENTRY)
    pending = list(settings.data_dir.glob("kb-history/pending/*.json"))
    assert len(pending) == 1
    assert json.loads(pending[0].read_text())["author"] == "ines"
    assert not services.history.flush(timeout=1.0)  # the thread keeps retrying
    assert "simulated" in (services.history.error or "")
    crash(services.history)
    services.store.close()
    monkeypatch.setattr(KbRepo, "commit", real_commit)

    services = start(settings)
    try:
        log = services.history.log()  # type: ignore[attr-defined]
        assert [(c.author, c.summary) for c in log] == [
            ("ines <ines@askta.invalid>", f"edit: {ENTRY} (published)"),
            ("askta <askta@askta.invalid>", log[1].summary)]  # init; no "recovered" commit
        assert "Committed at start-up" in log[0].message
        assert not list(settings.data_dir.glob("kb-history/pending/*.json"))
    finally:
        services.close()


def test_a_record_overtaken_by_a_hand_commit_is_not_replayed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    services = start(settings)
    def refuse(*args: object, **kwargs: object) -> None:
        raise HistoryError("simulated: the server dies before committing")

    monkeypatch.setattr(KbRepo, "commit", refuse)
    services.editor.save(edited(services, answer="Old."), by="ines", entry_id=ENTRY)
    crash(services.history)
    services.store.close()
    monkeypatch.undo()
    # Meanwhile someone edits and commits the file by hand: HEAD has what is on disk.
    path = settings.kb_dir / f"{ENTRY}.yaml"
    path.write_text(path.read_text().replace("Old.", "Newer, by hand."))
    repo = KbRepo.find(settings.kb_dir)
    assert repo is not None
    me = Identity("Dev", "dev@example.org")
    repo.commit({f"{ENTRY}.yaml": path.read_bytes()}, author=me, committer=me, message="hand")
    repo.close()

    services = start(settings)
    try:
        assert [c.summary for c in services.history.log()][0] == "hand"  # type: ignore[attr-defined]
        assert "Newer, by hand." in path.read_text()
    finally:
        services.close()


def test_a_commit_killed_holding_gits_locks_does_not_block_the_next_start(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill in the middle of a commit leaves the branch's lock and index.lock behind
    (git never clears them); the next start removes them and commits the change."""
    services = start(settings)
    repo = services.history.repo  # type: ignore[attr-defined]
    locks = repo.lock_files()
    assert {p.name for p in locks} == {"main.lock", "index.lock"}

    def die_holding_the_locks(*args: object, **kwargs: object) -> None:
        # killed while writing the new blob, the branch and the index (each a .lock file
        # made O_CREAT|O_EXCL, then renamed over the real one)
        sha = blob_id((settings.kb_dir / f"{ENTRY}.yaml").read_bytes()).decode()
        blob_lock = settings.kb_dir / ".git" / "objects" / sha[:2] / f"{sha[2:]}.lock"
        blob_lock.parent.mkdir(exist_ok=True)
        locks.append(blob_lock)
        for lock in locks:
            lock.write_bytes(b"")
        raise HistoryError("simulated: killed while the branch was locked")

    monkeypatch.setattr(KbRepo, "commit", die_holding_the_locks)
    services.editor.save(edited(services, answer="Saved, then killed mid-commit."),
                         by="ines", entry_id=ENTRY)
    assert not services.history.flush(timeout=1.0)
    crash(services.history)
    services.store.close()
    monkeypatch.undo()
    marker = settings.data_dir / "kb-history" / "committing"
    marker.write_text("4242\n")  # a killed commit's marker stays (the test's raise removed it)
    os.utime(marker, (locks[0].stat().st_mtime,) * 2)
    older = settings.kb_dir / ".git" / "refs" / "heads" / "other.lock"  # not ours: kept
    older.write_bytes(b"")

    services = start(settings)
    try:
        assert not any(p.exists() for p in locks)
        assert older.exists() and not marker.exists()
        assert commits(services, ENTRY)[0] == ("ines <ines@askta.invalid>",
                                               f"edit: {ENTRY} (published)")
    finally:
        services.close()
    assert git(settings.kb_dir, "status", "--porcelain") == ""


def test_a_commit_killed_before_its_index_update_leaves_git_status_clean(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    services = start(settings)
    monkeypatch.setattr(KbRepo, "_update_index", lambda self, committed: None)
    services.editor.save(edited(services, answer="Committed; the index never knew."),
                         by="ines", entry_id=ENTRY)
    assert services.history.flush()
    crash(services.history)
    services.store.close()
    monkeypatch.undo()
    assert git(settings.kb_dir, "status", "--porcelain").strip() == f"MM {ENTRY}.yaml"
    (settings.data_dir / "kb-history" / "committing").write_text("4242\n")

    services = start(settings)
    services.close()
    assert git(settings.kb_dir, "status", "--porcelain") == ""


def test_a_lock_older_than_the_killed_commit_is_left_to_its_owner(settings: Settings) -> None:
    services = start(settings)
    services.close()
    lock = settings.kb_dir / ".git" / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"")
    os.utime(lock, (1_000_000_000, 1_000_000_000))  # made long before the marker
    (settings.data_dir / "kb-history" / "committing").write_text("4242\n")
    services = start(settings)
    try:
        assert lock.exists()  # a git command of someone else's: not removed
    finally:
        lock.unlink()
        services.close()


def test_the_locks_of_another_running_process_are_left_alone(settings: Settings) -> None:
    """Web processes share the data dir: one starting while another commits must not take
    that commit's git locks (or its marker) for a crash's."""
    services = start(settings)
    services.close()
    lock = settings.kb_dir / ".git" / "refs" / "heads" / "main.lock"
    other = subprocess.Popen(["sleep", "60"])  # a process that is running: the committer
    try:
        marker = settings.data_dir / "kb-history" / f"committing-{other.pid}"
        marker.write_text(f"{other.pid}\n")
        lock.write_bytes(b"")
        services = start(settings)
        services.close()
        assert lock.exists() and marker.exists()
        other.kill()
        other.wait()
        services = start(settings)  # now its owner is gone: a crash's leftovers, removed
        services.close()
        assert not lock.exists() and not marker.exists()
    finally:
        other.kill()
        lock.unlink(missing_ok=True)


# --- the history page --------------------------------------------------------------------
@pytest.fixture
def instructor(client: TestClient, services: Services) -> str:
    """A logged-in instructor's CSRF token."""
    return login(client, services, "ines", "instructor", "a long enough password")


def test_history_page_shows_commits_with_escaped_diffs(client: TestClient, services: Services,
                                                       instructor: str) -> None:
    services.editor.save(edited(services, answer="Use <script>alert(1)</script> & relu."),
                         by="ines", entry_id=ENTRY)
    r = client.get(f"/admin/entries/{ENTRY}/history")
    assert r.status_code == 200
    assert f"edit: {ENTRY} (published)" in r.text and "ines &lt;ines@askta.invalid&gt;" in r.text
    assert "init: the knowledge base" in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; relu." in r.text
    assert "<script>alert(1)" not in r.text
    assert re.search(r'<span class="diff-add">\+  Use &lt;script&gt;', r.text)
    assert re.search(r'<span class="diff-del">-  Without a nonlinearity', r.text)
    assert r.text.count("Revert to ") == 1  # the current version has no button
    page = client.get(f"/admin/entries/{ENTRY}")
    assert f'href="/admin/entries/{ENTRY}/history"' in page.text


def test_revert_saves_the_old_version_as_a_commit(client: TestClient, services: Services,
                                                  instructor: str) -> None:
    original = services.kb.get(ENTRY)
    services.editor.save(edited(services, answer="A worse answer.", tags=["x"]), by="tara",
                         entry_id=ENTRY)
    init = services.history.log(ENTRY)[-1]  # type: ignore[attr-defined]
    url = f"/admin/entries/{ENTRY}/history/{init.sha}/revert"
    assert client.post(url, data={}).status_code == 403  # no CSRF token
    r = client.post(url, data={"csrf_token": instructor}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/admin/entries/{ENTRY}/history?reverted={init.sha7}"
    assert services.kb.get(ENTRY) == original
    assert KnowledgeBase.load(services.kb.kb_dir).get(ENTRY) == original
    assert services.searcher.search(original.question).entry.id == ENTRY  # type: ignore[union-attr]
    assert commits(services, ENTRY)[0] == ("ines <ines@askta.invalid>",
                                           f"revert: {ENTRY} to {init.sha7}")
    page = client.get(r.headers["location"])
    assert f"Reverted to {init.sha7}" in page.text


def test_revert_brings_back_a_deleted_entry(client: TestClient, services: Services,
                                            instructor: str) -> None:
    original = services.kb.get(ENTRY)
    with services.history.change("ines"):
        services.kb.delete_entry(ENTRY)
    assert services.history.flush()
    versions = services.history.log(ENTRY)  # type: ignore[attr-defined]
    assert [c.summary for c in versions][0] == f"delete: {ENTRY}"
    page = client.get(f"/admin/entries/{ENTRY}/history")
    assert page.status_code == 200 and "This commit deleted the entry" in page.text
    r = client.post(f"/admin/entries/{ENTRY}/history/{versions[1].sha}/revert",
                    data={"csrf_token": instructor}, follow_redirects=False)
    assert r.status_code == 303
    assert services.kb.get(ENTRY) == original


def test_revert_refuses_unknown_versions(client: TestClient, services: Services,
                                         instructor: str) -> None:
    token = {"csrf_token": instructor}
    assert client.post(f"/admin/entries/{ENTRY}/history/{'a' * 40}/revert",
                       data=token).status_code == 404
    assert client.post(f"/admin/entries/{ENTRY}/history/nothex/revert",
                       data=token).status_code == 404
    services.editor.save(edited(services, "mse-vs-outliers", answer="x y z"), by="ines",
                         entry_id="mse-vs-outliers")
    assert services.history.flush()
    edit = services.history.log("mse-vs-outliers")[0].sha  # type: ignore[attr-defined]
    assert client.post(f"/admin/entries/{ENTRY}/history/{edit}/revert",
                       data=token).status_code == 404  # not a commit of this entry
    assert client.get("/admin/entries/no-such-entry/history").status_code == 404


def test_a_revert_that_no_longer_validates_says_why(client: TestClient, services: Services,
                                                    instructor: str) -> None:
    init = services.history.log(ENTRY)[-1]  # type: ignore[attr-defined]
    services.editor.save(edited(services, answer="Changed."), by="ines", entry_id=ENTRY)
    (services.kb.project_dir / "demos" / "linear_layers_collapse.py").unlink()
    r = client.post(f"/admin/entries/{ENTRY}/history/{init.sha}/revert",
                    data={"csrf_token": instructor})
    assert r.status_code == 422
    assert "The entry was not reverted" in r.text and "does not exist" in r.text
    assert services.kb.get(ENTRY).answer.strip() == "Changed."


def test_a_ta_may_not_see_or_revert_history(client: TestClient, services: Services) -> None:
    ta = bearer(services, "tara", "ta")
    sha = services.history.log(ENTRY)[0].sha  # type: ignore[attr-defined]
    assert client.get(f"/admin/entries/{ENTRY}/history", headers=ta).status_code == 403
    assert client.post(f"/admin/entries/{ENTRY}/history/{sha}/revert",
                       headers=ta).status_code == 403


def test_the_page_says_when_history_is_off(settings: Settings) -> None:
    services = start(settings.model_copy(update={"kb_git": "off"}))
    try:
        with TestClient(create_app(settings, services=services)) as client:
            r = client.get(f"/admin/entries/{ENTRY}/history",
                           headers=bearer(services, "ines", "instructor"))
            assert r.status_code == 200 and "keeps no history" in r.text
    finally:
        services.close()


# --- askta kb log ------------------------------------------------------------------------
@pytest.fixture
def run(settings: Settings) -> Iterator[object]:
    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, ["--kb", str(settings.kb_dir), "--data-dir",
                                        str(settings.data_dir), *args])

    yield invoke


def test_kb_log_prints_sha_date_author_message(services: Services, run) -> None:  # type: ignore[no-untyped-def]
    services.editor.save(edited(services, answer="Changed."), by="ines", entry_id=ENTRY)
    assert services.history.flush()
    r = run("kb", "log", ENTRY)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"[0-9a-f]{7}  \d{4}-\d\d-\d\d \d\d:\d\d  ines <ines@askta.invalid>  "
                        rf"edit: {ENTRY} \(published\)", lines[0])
    assert lines[1].endswith(f"init: the knowledge base as found at start-up "
                             f"({len(services.kb)} entries)")
    r = run("kb", "log", "mse-vs-outliers")
    assert r.exit_code == 0 and len(r.output.splitlines()) == 1
    r = run("kb", "log", "--json", "-n", "1")
    assert r.exit_code == 0 and json.loads(r.output)[0]["author"] == "ines <ines@askta.invalid>"
    assert run("kb", "log", "no-such-entry").exit_code == 3
    assert run("kb", "log", "Not An Id").exit_code == 2


def test_kb_log_without_a_repository_says_so(settings: Settings, run) -> None:  # type: ignore[no-untyped-def]
    r = run("kb", "log")
    assert r.exit_code == 1 and "no history yet" in r.output
