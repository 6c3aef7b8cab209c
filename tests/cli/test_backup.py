"""`askta backup` and `askta restore`: a server's whole state round-trips, table by table,
SQLite to SQLite, and SQLite to PostgreSQL and back when ASKTA_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select, text

from indexer.embedders import HashingEmbedder
from indexer.kb import KnowledgeBase
from server.accounts import Accounts
from server.backup import MANIFEST
from server.cli.backup import backup_command, restore_command
from server.cli.exit_codes import ExitCode
from server.cli.main import cli
from server.config import Settings
from server.services import Services
from server.store import AuditEvent, Base, Question, Store
from tests.store.readback import schema_revision

POSTGRES_URL = os.environ.get("ASKTA_TEST_POSTGRES_URL", "")
PASSWORD = "correct horse battery"
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
ROUND_TRIPS = [("sqlite", "sqlite")] + ([("sqlite", "postgresql"), ("postgresql", "sqlite")]
                                        if POSTGRES_URL else [])


@pytest.fixture
def postgres_urls() -> Iterator[list[str]]:
    """Hands out new, empty databases on the test server; drops them afterwards."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT") if POSTGRES_URL else None
    made: list[str] = []
    yield made
    if admin is None:
        return
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def new_postgres_url(made: list[str]) -> str:
    name = f"askta_backup_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    made.append(name)
    return f"{POSTGRES_URL.rpartition('/')[0]}/{name}"


def place(tmp_path: Path, name: str, backend: str, made: list[str]) -> Settings:
    """Settings for a server in tmp_path/name: its own kb/, data dir and database."""
    url = new_postgres_url(made) if backend == "postgresql" else ""
    return Settings(kb_dir=tmp_path / name / "kb", data_dir=tmp_path / name / "data",
                    database_url=url, model="hashing", sandbox_enabled=False,
                    secret_key="test-secret-key-of-at-least-32-characters")


def run(command: Any, settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(command, list(args), obj={"settings": settings})


def git(kb: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(kb), *args], check=True, capture_output=True,
                          text=True).stdout


def commit_all(kb: Path, message: str) -> None:
    """Commit what the server's own history has not committed already (if anything)."""
    git(kb, "add", "-A")
    if not git(kb, "status", "--porcelain").strip():
        return
    git(kb, "-c", "user.name=askta", "-c", "user.email=askta@example.org", "commit", "-qm",
        message)


def build_server_state(settings: Settings, kb_source: Path) -> dict[str, Any]:
    """A server that has been used: questions, feedback, review items (open and resolved,
    with embeddings), users with password hashes and tokens, audit rows, demo runs, an
    edited entry, the index, and kb/ with a git history of two commits."""
    shutil.copytree(kb_source / "kb", settings.kb_dir)
    shutil.copytree(kb_source / "demos", settings.kb_dir.parent / "demos")
    git(settings.kb_dir, "init", "-q")
    commit_all(settings.kb_dir, "the bundled knowledge base")
    svc = Services.start(settings, embedder=HashingEmbedder())
    try:
        store = svc.store
        accounts = Accounts(store)
        accounts.add("ian", "instructor", PASSWORD)
        accounts.add("tara", "ta", PASSWORD + "!")
        accounts.add("old", "ta", None)
        token = accounts.issue_token("ian")
        accounts.disable("old")
        vector = np.arange(8, dtype=np.float32).tobytes()
        store.log_question("why do we need relu", client="c1", session_id="s1",
                           entry_id="why-nonlinearities", score=0.83, answered=True,
                           suggestions=[{"id": "why-not-deeper", "score": 0.41}])
        review_id = store.log_question("what is a gradient in french?", client="c2",
                                       session_id=None, entry_id=None, score=0.2,
                                       answered=False, suggestions=[],
                                       review={"reason": "unanswered", "embedding": vector})
        store.record_feedback("why do we need relu", "why-nonlinearities", True, "c1")
        store.record_feedback("why is it slow", "why-not-deeper", False, "c3",
                              embedding=vector, suggestions=[{"id": "x", "score": 0.1}])
        store.record_demo_run("demos/linear_layers_collapse.py", "ok", device="cpu",
                              duration_ms=1234)
        assert review_id is not None
        svc.review_queue.dismiss(review_id, "off-topic", by="tara")
        entry = svc.kb.get("why-nonlinearities")
        svc.editor.save({**entry.model_dump(mode="json"), "tags": [*entry.tags, "restored"]},
                        by="ian", entry_id=entry.id)
        store.audit("ian", "backup_test", "target", {"nested": {"list": [1, 2.5, None]}})
    finally:
        svc.close()
    commit_all(settings.kb_dir, "ian tagged why-nonlinearities")
    return {"token": token}


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every askta table as SQLAlchemy returns it, in primary-key order."""
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(
                        select(t).order_by(*t.primary_key.columns))]
                    for t in Base.metadata.sorted_tables}
    finally:
        store.close()


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the round trip --------------------------------------------------------------------------
@pytest.mark.parametrize(("source_backend", "target_backend"), ROUND_TRIPS)
def test_backup_then_restore_gives_back_every_table_and_the_history(
        tmp_path: Path, postgres_urls: list[str], source_backend: str,
        target_backend: str) -> None:
    repo = Path(__file__).resolve().parents[2]
    source = place(tmp_path, "source", source_backend, postgres_urls)
    state = build_server_state(source, repo)
    archive = tmp_path / "askta.tar.gz"

    r = run(backup_command, source, str(archive))
    assert r.exit_code == 0, r.output
    assert archive.stat().st_mode & 0o777 == 0o600  # password and token hashes inside
    assert "database (schema 0004)" in r.output and "users 3" in r.output

    target = place(tmp_path, "target", target_backend, postgres_urls)
    # The demos belong to the project (the image), not to the backup.
    shutil.copytree(repo / "demos", target.kb_dir.parent / "demos")
    r = run(restore_command, target, str(archive), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["schema_revision"] == "0004"
    assert report["tables"]["users"] == 3 and report["tables"]["questions"] == 2
    assert report["kb"]["history"] is True
    assert any("matches the restored kb" in n for n in report["notes"]), report["notes"]

    # The database, table by table, row by row, as the application reads it.
    before, after = table_rows(source.db_url), table_rows(target.db_url)
    assert set(before) == set(after)
    for name in before:
        assert after[name] == before[name], name
    assert all(before[name] for name in ("questions", "feedback", "review_items", "users",
                                         "audit_log", "demo_runs"))

    # kb/, file for file, with the history.
    assert tree(target.kb_dir) == tree(source.kb_dir)
    assert git(target.kb_dir, "log", "--format=%H %s") == git(source.kb_dir, "log",
                                                               "--format=%H %s")
    git(target.kb_dir, "fsck", "--strict")
    assert git(target.kb_dir, "status", "--porcelain") == ""

    # The restored server works: logins, tokens, disabled users, the KB and its index.
    restored = Store(target.db_url)
    try:
        accounts = Accounts(restored)
        assert accounts.login("ian", PASSWORD) is not None
        assert accounts.login("tara", PASSWORD + "!") is not None
        user = accounts.from_token(state["token"])
        assert user is not None and user.name == "ian"
        assert accounts.login("old", PASSWORD) is None and restored.user("old").disabled  # type: ignore[union-attr]
        # New rows get new ids (PostgreSQL's sequences were moved past the restored ones).
        top = max(r[0] for r in after["audit_log"])
        restored.audit("ian", "after_restore")
        with restored.reading() as s:
            assert s.scalar(select(func.max(AuditEvent.id))) == top + 1
            assert s.scalar(select(func.count()).select_from(Question)) == 2
        assert schema_revision(restored) == "0004"
    finally:
        restored.close()
    backed_up = json.loads(tarfile.open(archive).extractfile("index/manifest.json").read())  # type: ignore[union-attr]
    svc = Services.start(target, embedder=HashingEmbedder())
    try:
        assert svc.kb.entries == KnowledgeBase.load(source.kb_dir).entries
        assert svc.searcher.index.entry_hashes == backed_up["entry_hashes"]
    finally:
        svc.close()


def test_the_askta_command_has_backup_and_restore(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    source = place(tmp_path, "source", "sqlite", [])
    build_server_state(source, repo)
    archive = tmp_path / "b.tar.gz"
    flags = ["--kb", str(source.kb_dir), "--data-dir", str(source.data_dir)]
    env = {"ASKTA_DATABASE_URL": ""}
    r = CliRunner().invoke(cli, [*flags, "backup", str(archive)], env=env)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"wrote {archive}:")
    target = ["--kb", str(tmp_path / "t" / "kb"), "--data-dir", str(tmp_path / "t" / "data")]
    r = CliRunner().invoke(cli, [*target, "restore", str(archive)], env=env)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"restored {archive}:")
    assert f"kb: {len(list(source.kb_dir.glob('*.yaml')))} entries" in r.output
    assert (tmp_path / "t" / "data" / "askta.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "t" / "data").stat().st_mode & 0o777 == 0o700


# --- refusals ----------------------------------------------------------------------------------
@pytest.fixture
def archive(tmp_path: Path) -> Path:
    repo = Path(__file__).resolve().parents[2]
    source = place(tmp_path, "source", "sqlite", [])
    build_server_state(source, repo)
    path = tmp_path / "askta.tar.gz"
    assert run(backup_command, source, str(path)).exit_code == 0
    return path


def test_restore_refuses_a_data_dir_or_kb_that_is_not_empty(tmp_path: Path,
                                                           archive: Path) -> None:
    target = place(tmp_path, "target", "sqlite", [])
    target.data_dir.mkdir(parents=True)
    (target.data_dir / "secret_key").write_text("x" * 40)
    r = run(restore_command, target, str(archive))
    assert r.exit_code == ExitCode.NOT_EMPTY == 5
    assert "not empty" in r.output and str(target.data_dir) in r.output
    assert not target.kb_dir.exists()  # nothing written
    (target.data_dir / "secret_key").unlink()
    target.kb_dir.mkdir(parents=True)
    (target.kb_dir / "mine.yaml").write_text("id: mine\n")
    r = run(restore_command, target, str(archive))
    assert r.exit_code == 5 and "KB folder" in r.output
    assert list(target.data_dir.iterdir()) == []
    (target.kb_dir / "mine.yaml").unlink()  # empty folders are fine
    assert run(restore_command, target, str(archive)).exit_code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_restore_refuses_a_database_that_is_not_empty(tmp_path: Path, archive: Path,
                                                      postgres_urls: list[str],
                                                      backend: str) -> None:
    target = place(tmp_path, "target", backend, postgres_urls)
    if backend == "sqlite":  # a database outside the (empty) data dir
        url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
        target = target.model_copy(update={"database_url": url})
    store = Store(target.db_url)
    store.migrate()
    store.audit("someone", "was_here")
    store.close()
    r = run(restore_command, target, str(archive))
    assert r.exit_code == 5 and "audit_log (1 rows)" in r.output
    assert not target.kb_dir.exists() and not target.data_dir.exists()


def test_backup_never_overwrites(tmp_path: Path, archive: Path) -> None:
    before = archive.read_bytes()
    source = place(tmp_path, "source", "sqlite", [])
    r = run(backup_command, source, str(archive))
    assert r.exit_code == ExitCode.USAGE and "exists" in r.output
    assert archive.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    target = place(tmp_path, "target", "sqlite", [])
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    r = run(restore_command, target, str(junk))
    assert r.exit_code == ExitCode.USAGE and "not a readable askta backup" in r.output
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    r = run(restore_command, target, str(other))
    assert r.exit_code == ExitCode.USAGE and MANIFEST in r.output
    assert not target.data_dir.exists() and not target.kb_dir.exists()


def test_a_damaged_backup_leaves_nothing_behind(tmp_path: Path, archive: Path) -> None:
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == "database/users.jsonl":
                data = b'{"id": 1, "name": "ian"\n'  # cut off
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    target = place(tmp_path, "target", "sqlite", [])
    target.kb_dir.mkdir(parents=True)  # an empty folder that existed stays, empty
    r = run(restore_command, target, str(damaged))
    assert r.exit_code == ExitCode.USAGE and "damaged" in r.output
    assert not target.data_dir.exists()
    assert target.kb_dir.is_dir() and list(target.kb_dir.iterdir()) == []
    assert run(restore_command, target, str(archive)).exit_code == 0


# --- schema revisions --------------------------------------------------------------------------
def test_a_backup_of_an_older_schema_is_loaded_there_then_migrated(tmp_path: Path) -> None:
    """Rows are loaded into the schema they were dumped from, then upgraded: 0003's data
    migration gives the old token an expiry, as it would have in place."""
    source = place(tmp_path, "source", "sqlite", [])
    source.kb_dir.mkdir(parents=True)
    store = Store(source.db_url)
    store.migrate("0002")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (name, role, password_hash, token_hash, created_at)"
                          " VALUES ('ian', 'instructor', 'h', 't', '2024-01-01 10:00:00')"))
    store.close()
    archive = tmp_path / "old.tar.gz"
    r = run(backup_command, source, str(archive))
    assert r.exit_code == 0 and "schema 0002" in r.output, r.output
    target = place(tmp_path, "target", "sqlite", [])
    r = run(restore_command, target, str(archive))
    assert r.exit_code == 0, r.output
    restored = Store(target.db_url)
    try:
        assert schema_revision(restored) == "0004"
        user = restored.user("ian")
        assert user is not None and user.token_hash == "t" and user.session_version == 0
        assert user.token_expires_at is not None and not user.disabled
    finally:
        restored.close()


def test_a_backup_from_a_newer_askta_is_refused(tmp_path: Path, archive: Path) -> None:
    newer = tmp_path / "newer.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(newer, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == MANIFEST:
                manifest = json.loads(data or b"")
                manifest["database"]["schema_revision"] = "9999"
                data = json.dumps(manifest).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    target = place(tmp_path, "target", "sqlite", [])
    r = run(restore_command, target, str(newer))
    assert r.exit_code == ExitCode.USAGE and "'9999'" in r.output
    assert not target.data_dir.exists() and not target.kb_dir.exists()
