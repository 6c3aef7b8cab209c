"""The git repository that holds kb/, written through dulwich's plumbing only.

kb/ is either a repository of its own (created on the first start when there is
none) or a folder inside a larger one, such as a project repository. Either way
a commit here touches entry files under kb/ and nothing else: its tree is HEAD's
tree with those blobs replaced, built with `commit_tree_changes` (no index is
used to make it), and HEAD moves by compare-and-swap. Afterwards the index
entries of exactly those paths are set to the committed blobs, so that `git
status` stays clean and a later `git commit` by a person cannot undo the change;
every other index entry, and so whatever a person has staged, is left as it was.

Only the entry files are tracked: kb/*.yaml and kb/*.yml, not hidden, at the top
of the folder (what indexer/kb.py loads).
"""

from __future__ import annotations

import difflib
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked, GitFile
from dulwich.ignore import IgnoreFilterManager
from dulwich.index import (
    EOIE_EXTENSION,
    IEOT_EXTENSION,
    SDIR_EXTENSION,
    TREE_EXTENSION,
    ConflictedIndexEntry,
    IndexChecksumReader,
    IndexChecksumWriter,
    IndexEntry,
    IndexExtension,
    commit_tree,
    index_entry_from_stat,
    read_index_dict_with_version,
    write_index_dict,
)
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import HEADREF
from dulwich.repo import Repo

ENTRY_SUFFIXES = (".yaml", ".yml")
FILE_MODE = 0o100644
# Index extensions that describe the old entries and would mislead git once they change:
# the cached trees (a stale one would make a person's next commit undo ours) and the
# offsets of entry blocks. git rebuilds them as needed.
_STALE_EXTENSIONS = {TREE_EXTENSION, EOIE_EXTENSION, IEOT_EXTENSION}
# An operation in progress, during which nothing but the person should move HEAD.
_BUSY_MARKERS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")


class HistoryError(Exception):
    """The repository cannot take a commit now (locked, mid-merge, unreadable)."""


@dataclass(frozen=True)
class Identity:
    """Who a commit is by: a name and an e-mail address."""

    name: str
    email: str

    def raw(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class CommitInfo:
    """One commit as the history page and `askta kb log` show it."""

    sha: str
    author: str
    time: datetime
    message: str
    parent: str | None

    @property
    def sha7(self) -> str:
        return self.sha[:7]

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff: kind is 'hunk', 'add', 'del', 'ctx' or 'file'."""

    kind: str
    text: str


def is_entry_file(name: str) -> bool:
    """Whether a name at the top of kb/ is an entry file the history tracks."""
    return name.endswith(ENTRY_SUFFIXES) and not name.startswith(".") and "/" not in name


def blob_id(data: bytes) -> ObjectID:
    return Blob.from_string(data).id


class KbRepo:
    """The repository kb/ lives in, and the path of kb/ inside it."""

    def __init__(self, repo: Repo, kb_dir: Path):
        self.repo = repo
        self.kb_dir = kb_dir.resolve()
        rel = self.kb_dir.relative_to(Path(repo.path).resolve())
        self.prefix = "" if rel == Path(".") else rel.as_posix() + "/"

    # --- finding or creating ---------------------------------------------------------------
    @classmethod
    def find(cls, kb_dir: Path) -> KbRepo | None:
        """The repository kb/ is in, or None: none, or one that ignores kb/."""
        try:
            repo = Repo.discover(str(kb_dir.resolve()))
        except NotGitRepository:
            return None
        if repo.bare:
            return None
        found = cls(repo, kb_dir)
        if found.prefix and IgnoreFilterManager.from_repo(repo).is_ignored(found.prefix):
            repo.close()
            return None  # the outer repository leaves kb/ out: kb/ gets one of its own
        return found

    @classmethod
    def open_or_init(cls, kb_dir: Path) -> tuple[KbRepo, bool]:
        """The repository kb/ is in, creating one in kb/ when there is none; and whether
        it was created now."""
        found = cls.find(kb_dir)
        if found is not None:
            return found, False
        return cls(Repo.init(str(kb_dir.resolve()), default_branch=b"main"), kb_dir), True

    @property
    def outer(self) -> bool:
        """Whether kb/ is a folder inside a larger repository."""
        return bool(self.prefix)

    def close(self) -> None:
        self.repo.close()

    def path(self, name: str) -> str:
        """The repository path of a file of kb/ ('why-relu.yaml' -> 'kb/why-relu.yaml')."""
        return self.prefix + name

    # --- reading ---------------------------------------------------------------------------
    def head(self) -> ObjectID | None:
        """The commit HEAD points to; None in a repository without commits."""
        return self.repo.refs.follow(HEADREF)[1]

    def _lookup(self, tree: ObjectID | None, path: str) -> tuple[int, ObjectID] | None:
        if tree is None:
            return None
        try:
            mode, sha = tree_lookup_path(self.repo.object_store.__getitem__, tree, path.encode())
        except (KeyError, NotADirectoryError):
            return None
        except Exception as e:  # dulwich's NotTreeError: a file where a folder was expected
            if type(e).__name__ == "NotTreeError":
                return None
            raise
        return mode, sha

    def _tree(self, commit: ObjectID | None) -> ObjectID | None:
        if commit is None:
            return None
        obj = self.repo[commit]
        assert isinstance(obj, Commit)
        return obj.tree

    def blob_at(self, commit: ObjectID | str | None, name: str) -> bytes | None:
        """The contents of kb/<name> as of a commit; None where it did not exist."""
        if commit is None:
            return None
        found = self._lookup(self._tree(_oid(commit)), self.path(name))
        if found is None or not stat.S_ISREG(found[0]):
            return None
        obj = self.repo[found[1]]
        return obj.data if isinstance(obj, Blob) else None

    def head_files(self) -> dict[str, ObjectID]:
        """Entry files of kb/ at HEAD: {name: blob id}."""
        tree = self._tree(self.head())
        if tree is None:
            return {}
        if self.prefix:
            found = self._lookup(tree, self.prefix.rstrip("/"))
            if found is None or not stat.S_ISDIR(found[0]):
                return {}
            tree = found[1]
        obj = self.repo[tree]
        assert isinstance(obj, Tree)
        return {item.path.decode(): item.sha for item in obj.iteritems()
                if stat.S_ISREG(item.mode) and is_entry_file(item.path.decode())}

    def disk_files(self) -> dict[str, bytes]:
        """Entry files of kb/ on disk now: {name: contents}; untracked files that the
        repository ignores are left out."""
        ignore = IgnoreFilterManager.from_repo(self.repo) if self.prefix else None
        tracked = self.head_files()
        out: dict[str, bytes] = {}
        for path in sorted(self.kb_dir.iterdir()):
            name = path.name
            if not is_entry_file(name) or not path.is_file() or path.is_symlink():
                continue
            if ignore is not None and name not in tracked and ignore.is_ignored(self.path(name)):
                continue
            out[name] = path.read_bytes()
        return out

    def read_disk(self, name: str) -> bytes | None:
        try:
            return (self.kb_dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def log(self, name: str | None = None, limit: int = 100) -> list[CommitInfo]:
        """Commits that changed kb/<name> (or any entry file of kb/ when name is None),
        newest first, following first parents."""
        out: list[CommitInfo] = []
        sha = self.head()
        while sha is not None and len(out) < limit:
            commit = self.repo[sha]
            assert isinstance(commit, Commit)
            parent = commit.parents[0] if commit.parents else None
            if self._touches(commit.tree, self._tree(parent), name):
                out.append(_info(commit))
            sha = parent
        return out

    def _touches(self, tree: ObjectID, parent_tree: ObjectID | None, name: str | None) -> bool:
        if name is not None:
            return self._lookup(tree, self.path(name)) != self._lookup(parent_tree, self.path(name))
        if not self.prefix:
            return tree != parent_tree
        key = self.prefix.rstrip("/")
        return self._lookup(tree, key) != self._lookup(parent_tree, key)

    def commit_info(self, sha: str) -> CommitInfo | None:
        try:
            commit = self.repo[_oid(sha)]
        except (KeyError, ValueError):
            return None
        return _info(commit) if isinstance(commit, Commit) else None

    def diff(self, sha: str, name: str, max_lines: int = 400) -> list[DiffLine]:
        """What a commit changed in kb/<name>, against its first parent, line by line."""
        info = self.commit_info(sha)
        if info is None:
            return []
        before = self.blob_at(info.parent, name)
        after = self.blob_at(info.sha, name)
        old = _text(before).splitlines(keepends=True)
        new = _text(after).splitlines(keepends=True)
        label = self.path(name)
        lines: list[DiffLine] = []
        raw_lines = difflib.unified_diff(
            old, new, "a/" + label if before is not None else "/dev/null",
            "b/" + label if after is not None else "/dev/null", n=3)
        for i, raw in enumerate(raw_lines):
            if i < 2:
                kind = "file"
            elif raw.startswith("@@"):
                kind = "hunk"
            else:
                kind = {"+": "add", "-": "del"}.get(raw[:1], "ctx")
            lines.append(DiffLine(kind, raw.rstrip("\n")))
            if len(lines) >= max_lines:
                lines.append(DiffLine("hunk", "… (diff cut short)"))
                break
        return lines

    # --- writing ---------------------------------------------------------------------------
    def lock_files(self) -> list[Path]:
        """git's lock files of what a commit writes: the branch HEAD names (a commit
        locks the ref it moves, not HEAD) and the index."""
        names, _ = self.repo.refs.follow(HEADREF)
        ref = names[-1]
        base = self.repo.controldir() if ref == HEADREF else self.repo.commondir()
        return [Path(base) / (ref.decode("utf-8", "replace") + ".lock"),
                Path(self.repo.index_path() + ".lock")]

    def clear_locks_made_since(self, since: float, within_s: float = 5.0) -> list[Path]:
        """Remove the lock files created within `within_s` seconds of `since`: those a
        commit left when the process making it was killed. git never clears them
        itself, and a stale one refuses every later commit: the branch's and the
        index's (see lock_files), and those of objects being written (a replayed
        commit writes the same blob again, to the same locked path)."""
        objects = Path(self.repo.object_store.path)
        removed = []
        for path in [*self.lock_files(), *objects.glob("??/*.lock")]:
            try:
                made = path.lstat().st_mtime
            except FileNotFoundError:
                continue
            if since - 1.0 <= made <= since + within_s:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def repair_index(self) -> list[str]:
        """Point the index entries of files that are on disk as HEAD has them at HEAD
        (a commit killed after moving the branch, before updating the index, leaves
        them at the old version: `git status` would show a change undone); returns
        the names repaired."""
        head = self.head_files()
        try:
            index = self.repo.open_index()
        except (OSError, ValueError):
            return []
        stale: dict[str, ObjectID | None] = {}
        for name, sha in head.items():
            key = self.path(name).encode()
            entry = index[key] if key in index else None
            if getattr(entry, "sha", None) == sha:
                continue
            disk = self.read_disk(name)
            if disk is not None and blob_id(disk) == sha:
                stale[name] = sha
        if stale:
            self._update_index(stale)
        return sorted(stale)

    def busy(self) -> str | None:
        """What the repository is in the middle of (a merge, a rebase...), or None."""
        for marker in _BUSY_MARKERS:
            if os.path.exists(os.path.join(self.repo.controldir(), marker)):
                return marker
        return None

    def commit(self, files: Mapping[str, bytes | None], *, author: Identity,
               committer: Identity, message: str, author_time: float | None = None,
               skip_when_disk_at_head: bool = False) -> ObjectID | None:
        """Commit new contents (None: deleted) of entry files of kb/ onto HEAD; return the
        commit, or None when HEAD already has them all.

        `skip_when_disk_at_head` leaves out a file whose contents on disk HEAD already
        has: a change recorded before a crash that a later commit has since overtaken.
        """
        if (doing := self.busy()) is not None:
            raise HistoryError(f"the repository is in the middle of an operation ({doing}): "
                               "kb/ changes are committed once it is finished")
        try:
            return self._commit(files, author=author, committer=committer, message=message,
                                author_time=author_time,
                                skip_when_disk_at_head=skip_when_disk_at_head)
        except FileLocked as e:
            raise HistoryError(f"a file of the repository is locked by another git "
                               f"command ({e}); if none is running, remove the lock "
                               "file") from e

    def _commit(self, files: Mapping[str, bytes | None], *, author: Identity,
                committer: Identity, message: str, author_time: float | None,
                skip_when_disk_at_head: bool) -> ObjectID | None:
        store = self.repo.object_store
        tz = _local_offset()
        when = int(author_time if author_time is not None else time.time())
        for _ in range(20):  # HEAD moved (a person committing meanwhile): build on the new one
            head = self.head()
            tree = self._tree(head)
            changes: list[tuple[bytes, int | None, ObjectID | None]] = []
            committed: dict[str, ObjectID | None] = {}
            for name, content in files.items():
                path = self.path(name)
                at_head = self._lookup(tree, path)
                if skip_when_disk_at_head:
                    disk = self.read_disk(name)
                    if (at_head[1] if at_head else None) == (
                            blob_id(disk) if disk is not None else None):
                        continue
                if content is None:
                    if at_head is not None:
                        changes.append((path.encode(), None, None))
                        committed[name] = None
                    continue
                blob = Blob.from_string(content)
                if at_head is not None and at_head[1] == blob.id:
                    continue
                store.add_object(blob)
                mode = at_head[0] if at_head and stat.S_ISREG(at_head[0]) else FILE_MODE
                changes.append((path.encode(), mode, blob.id))
                committed[name] = blob.id
            if not changes:
                return None
            c = Commit()
            c.tree = (commit_tree_changes(store, tree, changes) if tree is not None else
                      commit_tree(store, [(p, sha, m) for p, m, sha in changes
                                          if sha is not None and m is not None]))
            c.parents = [head] if head is not None else []
            c.author, c.committer = author.raw(), committer.raw()
            c.author_time, c.commit_time = when, int(time.time())
            c.author_timezone = c.commit_timezone = tz
            c.encoding = b"UTF-8"
            c.message = message.rstrip("\n").encode() + b"\n"
            store.add_object(c)
            reflog = b"commit: " + message.split("\n", 1)[0].encode()
            try:
                moved = (self.repo.refs.set_if_equals(HEADREF, head, c.id, message=reflog)
                         if head is not None else
                         self.repo.refs.add_if_new(HEADREF, c.id, message=reflog))
            except FileLocked as e:
                raise HistoryError(f"the branch is locked by another git command ({e})") from e
            if moved:
                self._update_index(committed)
                return c.id
        raise HistoryError("HEAD kept moving while committing: try again")

    def _update_index(self, committed: Mapping[str, ObjectID | None]) -> None:
        """Set the index entries of the committed paths (and only those) to the new blobs.

        Under git's index.lock, so a concurrent git command either waits for us or fails.
        An entry gets the file's stat only when the file still holds the committed blob,
        so that git never mistakes a newer file for an unchanged one.
        """
        index_path = self.repo.index_path()
        fmt = self.repo.object_format
        try:
            lock = GitFile(index_path, "wb")
        except FileLocked as e:
            raise HistoryError(f"the git index is locked ({e}): its kb/ entries were not "
                               "updated; `git status` may show them changed") from e
        try:
            entries: dict[bytes, IndexEntry | ConflictedIndexEntry] = {}
            version: int | None = None
            extensions: list[IndexExtension] = []
            if os.path.exists(index_path):
                with open(index_path, "rb") as f:
                    entries, version, extensions = read_index_dict_with_version(
                        IndexChecksumReader(f, fmt), fmt)
            if any(e.signature in (SDIR_EXTENSION, b"link") for e in extensions):
                lock.abort()  # sparse or split index: leave it to git
                return
            for name, sha in committed.items():
                key = self.path(name).encode()
                if sha is None:
                    entries.pop(key, None)
                    continue
                entries[key] = self._index_entry(name, sha)
            writer = IndexChecksumWriter(lock, fmt)
            write_index_dict(writer, entries, version=version,
                             extensions=[e for e in extensions
                                         if e.signature not in _STALE_EXTENSIONS],
                             object_format=fmt)
            writer.close()  # the checksum, then the rename over the index
        except BaseException:
            lock.abort()
            raise

    def _index_entry(self, name: str, sha: ObjectID) -> IndexEntry:
        path = self.kb_dir / name
        try:
            st = path.lstat()
            same = stat.S_ISREG(st.st_mode) and blob_id(path.read_bytes()) == sha
        except FileNotFoundError:
            same = False
        if same:
            return index_entry_from_stat(st, sha, mode=FILE_MODE)
        return IndexEntry(ctime=0, mtime=0, dev=0, ino=0, mode=FILE_MODE, uid=0, gid=0, size=0,
                          sha=sha)


def _oid(sha: ObjectID | str) -> ObjectID:
    return ObjectID(sha.encode("ascii") if isinstance(sha, str) else sha)


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


def _local_offset() -> int:
    offset = datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds()) if offset else 0


def _info(commit: Commit) -> CommitInfo:
    tz = timezone(timedelta(seconds=commit.author_timezone))
    return CommitInfo(
        sha=commit.id.decode("ascii"),
        author=commit.author.decode("utf-8", "replace"),
        time=datetime.fromtimestamp(commit.author_time, UTC).astimezone(tz),
        message=commit.message.decode("utf-8", "replace").strip(),
        parent=commit.parents[0].decode("ascii") if commit.parents else None,
    )

