"""KbHistory: every staff change to kb/ becomes one git commit, made off the request path.

How a change travels:

1. A staff action runs inside `history.change(author, message)`. The knowledge base
   calls `_on_kb_change` (its change hook, under its writer lock) with each file it
   wrote; the change keeps the file's new text and a sequence number.
2. When the action ends, the change becomes a *record*: a small JSON file written
   durably (fsync, rename, fsync) under data_dir/kb-history/pending/, then queued.
   A write made outside any change (a code path nobody wired) becomes a record of
   its own, by "askta", so nothing goes uncommitted.
3. One background thread commits records in sequence order and deletes each record
   once its commit is on the branch. `flush()` waits for it.
4. At start-up, records left by a crash are committed first, with their author and
   message; then whatever still differs between kb/ and HEAD (a file written just
   before a crash, before its record; an edit made by hand while the server was
   down) is committed as `recovered: uncommitted changes to X at start-up`.
   A commit cut short by a kill leaves git's lock on the branch (or the index), which
   git never clears and which would refuse every later commit: a marker file, present
   only while a commit is being made, tells start-up that those locks are its own.

Commits are in order: a record whose file a later record has already committed
leaves that file out (the later commit holds the newer text).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.kb import KnowledgeBase, fsync_dir
from server.history.messages import entry_id_of, files_message, listing
from server.history.repo import (
    CommitInfo,
    DiffLine,
    HistoryError,
    Identity,
    KbRepo,
    blob_id,
    is_entry_file,
)

log = logging.getLogger("askta.history")

SYSTEM_NAME = "askta"
DEFAULT_EMAIL_DOMAIN = "askta.invalid"
MAX_RETRY_DELAY_S = 30.0
MARKER = "committing"  # data_dir/kb-history/committing-<pid>, while that process commits


@dataclass
class Change:
    """One staff action's changes to kb/: who, what it says, and the files it wrote
    ({file name: (new text or None when deleted, sequence number)})."""

    author: str
    message: str | None = None
    files: dict[str, tuple[str | None, int]] = field(default_factory=dict)


@dataclass(eq=False)
class Record:
    """A change waiting for its commit; `path` is its durable copy."""

    seq: int
    author: str
    message: str
    time: float
    files: dict[str, tuple[str | None, int]]
    path: Path | None = None
    replay: bool = False  # left by an earlier run of the server

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "author": self.author, "message": self.message,
                "time": self.time,
                "files": {n: {"text": t, "seq": s} for n, (t, s) in self.files.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> Record:
        files = {str(n): (f["text"], int(f["seq"])) for n, f in data["files"].items()}
        if not all(is_entry_file(n) and (t is None or isinstance(t, str))
                   for n, (t, _) in files.items()):
            raise ValueError("not a record of entry files")
        return cls(int(data["seq"]), str(data["author"]), str(data["message"]),
                   float(data["time"]), files, path, replay=True)


# The change the current thread (or task) is making, and the history it belongs to.
_current: ContextVar[tuple[History, Change] | None] = ContextVar("askta_kb_change",
                                                                  default=None)


class History:
    """Where staff changes to kb/ are attributed. This base records nothing: it is the
    history of a server with ASKTA_KB_GIT=off, or whose repository could not be opened
    (`error` says why)."""

    enabled = False

    def __init__(self, error: str | None = None):
        self.error = error

    @contextlib.contextmanager
    def change(self, author: str, message: str | None = None) -> Iterator[Change]:
        """Attribute the kb/ writes made inside the block to `author`, as one commit.

        Set `.message` on the yielded change to describe it (before the block ends); a
        block that writes nothing commits nothing. Inside another change of the same
        history, the block is part of the outer one.
        """
        yield Change(author, message)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every recorded change is committed; False on timeout."""
        return True

    def close(self) -> None:
        """Commit what is queued (briefly), stop the thread, let go of the repository."""


class KbHistory(History):
    """kb/ as a git working copy: records, commits and reads its history."""

    enabled = True

    def __init__(self, kb: KnowledgeBase, repo: KbRepo, state_dir: Path,
                 email_domain: str = DEFAULT_EMAIL_DOMAIN):
        super().__init__()
        self.kb, self.repo = kb, repo
        self.pending_dir = state_dir / "pending"
        # One marker per process: web processes sharing the data dir commit side by side.
        self._state_dir = state_dir
        self._marker = state_dir / f"{MARKER}-{os.getpid()}"
        self.email_domain = email_domain
        self.committer = Identity(SYSTEM_NAME, f"{SYSTEM_NAME}@{email_domain}")
        self._kb_dir = kb.kb_dir.resolve()
        self._cond = threading.Condition()
        self._queue: list[Record] = []  # by sequence number
        self._committing = False
        self._stopping = False
        self._committed_seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._last_seq = 0
        self._repo_lock = threading.RLock()  # dulwich objects are not shared between threads
        self._thread = threading.Thread(target=self._run, name="askta-kb-history", daemon=True)

    # --- starting and stopping -------------------------------------------------------------
    @classmethod
    def start(cls, kb: KnowledgeBase, state_dir: Path,
              email_domain: str = DEFAULT_EMAIL_DOMAIN) -> KbHistory:
        """Open (or create) the repository of kb/, commit what a crash or a hand edit left
        uncommitted, hook into the knowledge base's writes and start committing."""
        repo, created = KbRepo.open_or_init(kb.kb_dir)
        history = cls(kb, repo, state_dir, email_domain)
        history.pending_dir.mkdir(parents=True, exist_ok=True)
        crashed = history._clear_own_locks()
        history._recover(created)
        if crashed:
            with contextlib.suppress(HistoryError):
                history.repo.repair_index()
        kb.change_hooks.append(history._on_kb_change)
        history._thread.start()
        where = (f"the repository at {repo.repo.path} (only {repo.prefix} is committed)"
                 if repo.outer else f"{'a new' if created else 'the'} repository in kb/")
        log.info("kb history: committing staff changes to %s", where)
        return history

    def flush(self, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._committing,
                                       timeout)

    def close(self) -> None:
        if not self.flush(timeout=5.0):
            log.warning("kb history: %d change(s) not committed yet; they will be at the "
                        "next start", len(self._queue))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        with contextlib.suppress(ValueError):
            self.kb.change_hooks.remove(self._on_kb_change)
        with self._repo_lock:
            self.repo.close()

    # --- recording -------------------------------------------------------------------------
    @contextlib.contextmanager
    def change(self, author: str, message: str | None = None) -> Iterator[Change]:
        current = _current.get()
        if current is not None and current[0] is self:
            yield current[1]
            return
        change = Change(author, message)
        token = _current.set((self, change))
        try:
            yield change
        finally:
            _current.reset(token)
            if change.files:  # even when the action failed half-way: the files did change
                self._submit(Record(max(s for _, s in change.files.values()), change.author,
                                    change.message or files_message(_texts(change.files)),
                                    time.time(), dict(change.files)))

    def _on_kb_change(self, path: Path, text: str | None) -> None:
        """The knowledge base's change hook: runs under its writer lock, never raises."""
        try:
            if path.parent.resolve() != self._kb_dir or not is_entry_file(path.name):
                return
            with self._seq_lock:
                seq = self._last_seq = max(time.time_ns(), self._last_seq + 1)
            current = _current.get()
            if current is not None and current[0] is self:
                current[1].files[path.name] = (text, seq)
            else:
                files = {path.name: (text, seq)}
                self._submit(Record(seq, SYSTEM_NAME, files_message(_texts(files)),
                                    time.time(), files))
        except Exception:
            log.exception("kb history: could not record the change to %s", path)

    def _submit(self, record: Record) -> None:
        try:
            self._persist(record)
        except OSError as e:  # still committed from memory, only not crash-proof
            log.error("kb history: could not write the pending commit of %s (%s)",
                      record.message, e)
        with self._cond:
            self._queue.append(record)
            self._queue.sort(key=lambda r: r.seq)
            self._cond.notify_all()

    def _persist(self, record: Record) -> None:
        name = f"{record.seq:020d}-{uuid.uuid4().hex[:8]}.json"
        final = self.pending_dir / name
        tmp = self.pending_dir / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record.to_json(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(self.pending_dir)
        record.path = final

    def _forget(self, record: Record) -> None:
        # No fsync: a record that comes back after a crash finds its change in HEAD already.
        if record.path is not None:
            record.path.unlink(missing_ok=True)

    # --- committing ------------------------------------------------------------------------
    def _run(self) -> None:
        delay = 0.5
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                record = self._queue[0]
                self._committing = True
            try:
                self._commit(record)
            except Exception as e:
                self.error = f"could not commit {record.message!r}: {e}"
                log.error("kb history: %s (retrying in %.0f s)", self.error, delay,
                          exc_info=not isinstance(e, HistoryError))
                with self._cond:
                    self._committing = False
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._stopping, delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
                continue
            delay = 0.5
            self.error = None
            self._forget(record)
            with self._cond:
                self._queue = [r for r in self._queue if r is not record]
                self._committing = False
                self._cond.notify_all()

    def _commit(self, record: Record) -> None:
        files: dict[str, bytes | None] = {}
        for name, (text, seq) in record.files.items():
            if seq >= self._committed_seq.get(name, 0):  # else a later change is committed
                files[name] = text.encode("utf-8") if text is not None else None
        message = record.message
        if record.replay:
            message += ("\n\nCommitted at start-up: the server stopped before it could "
                        "commit this change.")
        if files:
            with self._repo_lock, self._committing_marker():
                self.repo.commit(files, author=self.identity(record.author),
                                 committer=self.committer, message=message,
                                 author_time=record.time,
                                 skip_when_disk_at_head=record.replay)
        for name, (_, seq) in record.files.items():
            self._committed_seq[name] = max(seq, self._committed_seq.get(name, 0))

    def identity(self, author: str) -> Identity:
        """`alice` -> `alice <alice@askta.invalid>` (the domain is configurable)."""
        name = re.sub(r"[<>\x00-\x1f\x7f]+", "", author).strip() or SYSTEM_NAME
        local = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip(".-") or "staff"
        return Identity(name, f"{local}@{self.email_domain}")

    @contextlib.contextmanager
    def _committing_marker(self) -> Iterator[None]:
        """The marker file, for the time a commit takes (no fsync: it guards against a
        killed process, whose writes the kernel keeps, not against a power cut)."""
        self._marker.write_text(f"{os.getpid()}\n", encoding="utf-8")
        try:
            yield
        finally:
            self._marker.unlink(missing_ok=True)

    # --- start-up --------------------------------------------------------------------------
    def _clear_own_locks(self) -> bool:
        """Remove the git locks a commit left when a server was killed making it; whether
        one was. The marker of a process still running (another web process on this data
        dir, committing now) is left alone, and so are its locks."""
        crashed = False
        for marker in sorted(self._state_dir.glob(f"{MARKER}*")):
            try:
                since = marker.stat().st_mtime
                owner = marker.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue  # its commit just ended
            # `committing` alone was written before markers were per process: a crash's.
            if marker.name != MARKER and (_running_elsewhere(owner)
                                          or (not owner and time.time() - since < 5)):
                continue  # committing now (or just writing its marker)
            for path in self.repo.clear_locks_made_since(since):
                log.warning("kb history: removed %s, left by a commit the server was stopped "
                            "in the middle of", path)
            marker.unlink(missing_ok=True)
            crashed = True
        return crashed

    def _recover(self, created: bool) -> None:
        records = self._load_pending()
        try:
            while records:
                self._commit(records[0])
                self._forget(records.pop(0))
            self._commit_differences(created)
        except HistoryError as e:
            self.error = f"start-up commit failed: {e}"
            log.error("kb history: %s", self.error)
        self._queue = records  # what could not be committed now: the thread retries

    def _load_pending(self) -> list[Record]:
        records = []
        for path in sorted(self.pending_dir.glob("*.json")):
            try:
                records.append(Record.from_json(json.loads(path.read_text("utf-8")), path))
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error("kb history: %s is not a pending commit (%s): set aside as .bad",
                          path, e)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
        records.sort(key=lambda r: r.seq)
        return records

    def _commit_differences(self, created: bool) -> None:
        """Commit what differs between kb/ and HEAD: everything in a new repository, else
        what was written without being committed."""
        with self._repo_lock:
            head = self.repo.head_files()
            disk = self.repo.disk_files()
            changes: dict[str, bytes | None] = {
                name: data for name, data in disk.items() if head.get(name) != blob_id(data)}
            changes.update({name: None for name in head if name not in disk})
            if not changes:
                return
            ids = sorted(entry_id_of(n) for n in changes)
            if created:
                message = (f"init: the knowledge base as found at start-up "
                           f"({len(changes)} entries)")
            else:
                message = f"recovered: uncommitted changes to {listing(ids)} at start-up"
                body = [f"- {self.repo.path(n)}: "
                        + ("deleted" if changes[n] is None else
                           "modified" if n in head else "added") for n in sorted(changes)]
                message += ("\n\nkb/ differed from the last commit when the server started "
                            "(a crash before the commit, or an edit by hand):\n"
                            + "\n".join(body))
            with self._committing_marker():
                self.repo.commit(changes, author=self.committer, committer=self.committer,
                                 message=message)
            log.log(logging.INFO if created else logging.WARNING, "kb history: %s",
                    message.split("\n", 1)[0])

    # --- reading ---------------------------------------------------------------------------
    def log(self, entry_id: str | None = None, limit: int = 100) -> list[CommitInfo]:
        """Commits that changed an entry's file (or any entry), newest first."""
        with self._repo_lock:
            return self.repo.log(file_name(entry_id) if entry_id else None, limit)

    def diff(self, sha: str, entry_id: str) -> list[DiffLine]:
        with self._repo_lock:
            return self.repo.diff(sha, file_name(entry_id))

    def version(self, entry_id: str, sha: str) -> str | None:
        """An entry's YAML as of a commit; None where the file did not exist."""
        with self._repo_lock:
            data = self.repo.blob_at(sha, file_name(entry_id))
        return data.decode("utf-8", "replace") if data is not None else None

    def current(self, entry_id: str) -> str | None:
        """An entry's YAML on disk now."""
        data = self.repo.read_disk(file_name(entry_id))
        return data.decode("utf-8", "replace") if data is not None else None

    @property
    def pending(self) -> int:
        """Changes recorded but not committed yet."""
        with self._cond:
            return len(self._queue)


def _running_elsewhere(pid: str) -> bool:
    """Whether `pid` (a marker's content) is a process of this machine other than this one."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_name(entry_id: str) -> str:
    return f"{entry_id}.yaml"


def _texts(files: dict[str, tuple[str | None, int]]) -> dict[str, str | None]:
    return {n: t for n, (t, _) in files.items()}


