"""Back up a whole askta server into one tar.gz, and restore it into an empty place.

The archive holds:

- `database/<table>.jsonl`: every row of every askta table as JSON, one per line
  (server/store/dump.py), so it restores into SQLite or PostgreSQL alike;
- `kb/`: the knowledge-base folder as it is, with its `.git` folder (the history) if
  there is one;
- `index/manifest.json`: the index manifest (model, and a hash per indexed entry); the
  index itself is rebuilt from kb/ at the next `askta index` or server start;
- `askta-backup.json` (last): the format, the schema revision, what each part holds.

The session key is not in it: after a restore staff log in again (API tokens, stored
hashed in the database, keep working). The archive does hold password and token hashes,
so it is written 0600.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from indexer.kb import KnowledgeBase, KnowledgeBaseError, entry_hash, folder_lock
from server.config import Settings
from server.datadir import private_files
from server.store import Store
from server.store import dump as db_dump

FORMAT = 1
MANIFEST = "askta-backup.json"
DATABASE = "database"
KB = "kb"
INDEX_MANIFEST = "index/manifest.json"


class BackupError(Exception):
    """The archive cannot be written or read, or is not an askta backup."""


class NotEmpty(Exception):
    """A restore's target (data dir, KB folder or database) already holds something."""


@dataclass
class Report:
    """What a backup wrote or a restore put back."""

    archive: Path
    revision: str | None = None
    tables: dict[str, int] = field(default_factory=dict)
    kb_files: int = 0
    kb_entries: int = 0
    kb_history: bool = False
    index: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"archive": str(self.archive), "schema_revision": self.revision,
                "tables": self.tables, "kb": {"files": self.kb_files,
                                              "entries": self.kb_entries,
                                              "history": self.kb_history},
                "index_manifest": self.index, "notes": self.notes}

    def lines(self) -> list[str]:
        rows = ", ".join(f"{name} {n}" for name, n in self.tables.items()) or "no tables"
        out = [f"database (schema {self.revision or 'none'}): {rows}",
               f"kb: {self.kb_entries} entries in {self.kb_files} files"
               + (", with its git history" if self.kb_history else ", no git history")]
        if self.index is not None:
            out.append(f"index manifest: {self.index.get('entries', 0)} entries, "
                       f"{self.index.get('vectors', 0)} vectors, model {self.index.get('model')}")
        else:
            out.append("index manifest: none (no index was built)")
        return out + self.notes


# --- backup --------------------------------------------------------------------------------
def backup(settings: Settings, archive: Path) -> Report:
    """Write the database, kb/ and the index manifest of `settings` into `archive`.

    The database is read in one snapshot transaction and kb/ under the lock every KB
    write takes, so a server may keep running. The archive appears whole or not at all
    (written beside it, then renamed); an existing file is never overwritten."""
    if archive.exists():
        raise BackupError(f"{archive} exists: pick a new name, or remove it first")
    if not archive.parent.is_dir():
        raise BackupError(f"{archive.parent} is not a folder")
    report = Report(archive)
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                columns = _backup_database(settings, tar, report)
                _backup_kb(settings.kb_dir, tar, report)
                _backup_index_manifest(settings, tar, report)
                manifest = {
                    "format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
                    "database": {"schema_revision": report.revision, "tables": {
                        name: {"rows": report.tables[name], "columns": columns[name]}
                        for name in report.tables}},
                    "kb": {"files": report.kb_files, "entries": report.kb_entries,
                           "history": report.kb_history},
                    "index_manifest": report.index is not None,
                }
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, archive)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return report


def _backup_database(settings: Settings, tar: tarfile.TarFile,
                     report: Report) -> dict[str, list[str]]:
    path = _sqlite_file(settings.db_url)
    if path is not None and not path.exists():
        report.notes.append(f"note: there is no database yet ({path}): none backed up")
        return {}
    store = Store(settings.db_url)
    try:
        with db_dump.snapshot(store) as conn:
            report.revision = db_dump.schema_revision(conn)
            columns = db_dump.present_columns(conn)
            for name, cols in columns.items():
                with tempfile.TemporaryFile() as f:
                    n = 0
                    for row in db_dump.dump_rows(conn, name, cols):
                        f.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                        n += 1
                    _add_file(tar, f"{DATABASE}/{name}.jsonl", f)
                report.tables[name] = n
    finally:
        store.close()
    return columns


def _backup_kb(kb_dir: Path, tar: tarfile.TarFile, report: Report) -> None:
    if not kb_dir.is_dir():
        raise BackupError(f"the knowledge-base folder {kb_dir} does not exist (set --kb or "
                          "ASKTA_KB_DIR)")

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = Path(info.name).name
        if name.startswith(".") and name.endswith(".tmp"):  # a write in progress
            return None
        if info.isfile():
            report.kb_files += 1
        return info

    with folder_lock(kb_dir):
        report.kb_entries = sum(1 for p in kb_dir.glob("*.y*ml")
                                if p.suffix in (".yaml", ".yml"))
        report.kb_history = (kb_dir / ".git").exists()
        tar.add(kb_dir, arcname=KB, recursive=True, filter=keep)


def _backup_index_manifest(settings: Settings, tar: tarfile.TarFile, report: Report) -> None:
    path = settings.index_dir / "manifest.json"
    if not path.is_file():
        return
    data = path.read_bytes()
    try:
        report.index = _index_summary(json.loads(data))
    except ValueError:
        report.notes.append(f"note: {path} is not JSON: left out")
        return
    _add_bytes(tar, INDEX_MANIFEST, data)


# --- restore -------------------------------------------------------------------------------
def restore(settings: Settings, archive: Path) -> Report:
    """Restore `archive` into the empty data dir, KB folder and database of `settings`.

    Refuses (NotEmpty, before writing anything) when one of them holds something. The
    database is migrated to the backup's schema, loaded, then upgraded to this askta's."""
    report = Report(archive)
    with _open_archive(archive) as tar:
        manifest = _read_manifest(tar)
        db = manifest.get("database") or {}
        report.revision = db.get("schema_revision")
        _check_empty(settings)
        store = Store(settings.db_url) if _sqlite_file(settings.db_url) is None else None
        try:
            if store is not None:  # PostgreSQL & co: the database must be empty too
                with store.engine.connect() as conn:
                    _check_database(conn, report.revision)
            with _undone_on_error(settings.data_dir, settings.kb_dir):
                with private_files(settings.data_dir):
                    store = store or Store(settings.db_url)
                    tables = dict(db.get("tables") or {})
                    if report.revision is None:
                        store.migrate()
                    else:
                        report.tables = db_dump.load(store, report.revision,
                                                     _rows_in(tar, tables))
                _restore_kb(tar, settings.kb_dir, report)
        except db_dump.DatabaseNotEmpty as e:
            raise NotEmpty(str(e)) from None
        except db_dump.DumpError as e:
            raise BackupError(str(e)) from None
        except (ValueError, KeyError, TypeError) as e:  # a row that is not JSON, or odd
            raise BackupError(f"the archive is damaged: {e.__class__.__name__}: {e}") from None
        finally:
            if store is not None:
                store.close()
        index = _member_bytes(tar, INDEX_MANIFEST)
    if index is not None:
        with contextlib.suppress(ValueError, AttributeError):
            manifest_of_index = json.loads(index)
            report.index = _index_summary(manifest_of_index)
            report.notes.extend(_compare_index(settings, manifest_of_index))
    report.notes.append("note: the index is rebuilt from kb/ by `askta index` or at the next "
                        "server start; staff log in again (the session key is not backed "
                        "up), API tokens keep working")
    return report


@contextlib.contextmanager
def _undone_on_error(*folders: Path) -> Iterator[None]:
    """If the restore fails, empty the folders it filled (they were empty or absent before,
    `_check_empty` made sure), so that it can simply be run again."""
    existed = {folder: folder.exists() for folder in folders}
    try:
        yield
    except BaseException:
        for folder, was_there in existed.items():
            if not folder.is_dir():
                continue
            if was_there:
                for child in folder.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
        raise


def _check_empty(settings: Settings) -> None:
    full = [f"{path} ({what})" for path, what in ((settings.data_dir, "data dir"),
                                                  (settings.kb_dir, "KB folder"))
            if path.exists() and (not path.is_dir() or any(path.iterdir()))]
    if full:
        raise NotEmpty(f"not empty: {'; '.join(full)}. Restore only into an empty or new "
                       "data dir and KB folder: point --data-dir and --kb elsewhere, or move "
                       "these away first")


def _check_database(conn: Any, revision: str | None) -> None:
    """NotEmpty when the database already has askta rows (or another schema)."""
    try:
        if revision is not None:
            db_dump.check_loadable(conn, revision)
        elif any(db_dump.row_counts(conn).values()):
            raise db_dump.DatabaseNotEmpty("the database is not empty: restore into a new, "
                                           "empty database")
    except db_dump.DatabaseNotEmpty as e:
        raise NotEmpty(str(e)) from None


def _rows_in(tar: tarfile.TarFile, tables: dict[str, Any],
             ) -> Iterator[tuple[str, list[str], Iterable[dict[str, Any]]]]:
    """Each table of the backup, parents first: its columns and its rows, read lazily."""
    order = [t.name for t in db_dump.tables()]
    unknown = sorted(set(tables) - set(order))
    if unknown:
        raise BackupError(f"the backup has tables this version of askta does not know: "
                          f"{', '.join(unknown)}")
    for name in order:
        if name not in tables:
            continue
        f = _member(tar, f"{DATABASE}/{name}.jsonl")
        if f is None:
            raise BackupError(f"{DATABASE}/{name}.jsonl is missing from the archive")
        yield name, list(tables[name]["columns"]), (json.loads(line) for line in f if line.strip())


def _restore_kb(tar: tarfile.TarFile, kb_dir: Path, report: Report) -> None:
    prefix = KB + "/"
    members = []
    for m in tar.getmembers():
        if m.name.startswith(prefix):
            members.append(m.replace(name=m.name[len(prefix):], deep=False))
    kb_dir.mkdir(parents=True, exist_ok=True)
    try:
        tar.extractall(kb_dir, members=members, filter="data")
    except (tarfile.FilterError, OSError) as e:
        raise BackupError(f"cannot restore kb/ from the archive: {e}") from None
    report.kb_files = sum(1 for m in members if m.isfile())
    report.kb_entries = sum(1 for p in kb_dir.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    report.kb_history = (kb_dir / ".git").exists()


def _compare_index(settings: Settings, manifest: dict[str, Any]) -> list[str]:
    """Whether the restored kb/ is the one the backed-up index was built from."""
    try:
        kb = KnowledgeBase.load(settings.kb_dir)
    except KnowledgeBaseError as e:
        return [f"warning: the restored knowledge base has {len(e.problems)} problem(s) "
                "(`askta check` lists them), first: " + str(e.problems[0])]
    hashes = manifest.get("entry_hashes") or {}
    differ = sorted(i for i, h in hashes.items()
                    if i not in kb.entries or entry_hash(kb.entries[i]) != h)
    if differ:
        return [f"note: {len(differ)} entries changed after the index was last built "
                f"(first: {differ[0]}); the rebuild picks them up"]
    return [f"index manifest: matches the restored kb ({len(hashes)} indexed entries)"]


# --- archive helpers ----------------------------------------------------------------------
@contextlib.contextmanager
def _open_archive(archive: Path) -> Iterator[tarfile.TarFile]:
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist")
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            tar.getmembers()  # reads it all: a truncated archive fails here, not halfway
            yield tar
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BackupError(f"{archive} is not a readable askta backup (tar.gz): {e}") from None


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    data = _member_bytes(tar, MANIFEST)
    if data is None:
        raise BackupError(f"this archive has no {MANIFEST}: it is not an askta backup, or "
                          "it is incomplete")
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupError(f"{MANIFEST} is not JSON: the archive is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"this is not a backup this version of askta can read (format "
                          f"{FORMAT})")
    return dict(manifest)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes] | None:
    try:
        info = tar.getmember(name)
    except KeyError:
        return None
    return tar.extractfile(info) if info.isfile() else None


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes | None:
    f = _member(tar, name)
    return f.read() if f is not None else None


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    _add_file(tar, name, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, f: IO[bytes]) -> None:
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(datetime.now(UTC).timestamp())
    tar.addfile(info, f)


def _index_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in ("model", "dimension", "vectors", "entries", "kb_hash")}


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None
