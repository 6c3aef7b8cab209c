"""Load and validate the knowledge base in kb/, and write entries back atomically.

Every problem names the file, the line and the field, and says what to do.
Writes go to a temporary file in the same folder, then rename over the old one,
under a lock on the folder, so that a crash or two writers at once lose nothing.

In memory the entries are copy-on-write: `KnowledgeBase.entries` is an immutable
mapping that each write replaces whole, with one assignment under the writer lock.
A reader that takes `kb.entries` once sees one consistent knowledge base, however
long it iterates, while instructors save and TAs draft.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from indexer.schema import Entry, Status

FIELDS = list(Entry.model_fields)
_thread_lock = threading.Lock()

# Told of each file a write changed, under the writer lock: its path and new text (None when
# the file was deleted). server/history commits them to git.
ChangeHook = Callable[[Path, "str | None"], None]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f": line {self.line}"
        if self.field:
            return f"{where}: '{self.field}' {self.message}"
        return f"{where}: {self.message}"


class KnowledgeBaseError(Exception):
    """The knowledge base (or one entry of it) is invalid; `problems` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class EntryNotFound(KeyError):
    """No entry has this id."""

    def __init__(self, entry_id: str):
        self.entry_id = entry_id
        super().__init__(entry_id)

    def __str__(self) -> str:
        return f"no entry with id {self.entry_id!r}"


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 100
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def normalize_question(text: str) -> str:
    """Case, spacing and trailing punctuation do not make two questions different."""
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(" ?.!")


def _line_of(doc: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of a pydantic error location inside a ruamel document."""
    node, line = doc, None
    for key in loc:
        try:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
            else:
                break
            node = node[key]
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


def _explain(err: Mapping[str, Any]) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return (
            f"is not a field of an entry: the fields are {', '.join(FIELDS)} (check the spelling)"
        )
    if kind == "missing":
        return "is missing: add it"
    if kind == "string_pattern_mismatch":
        return "must be lowercase words joined by hyphens, like 'why-nonlinearities'"
    if kind == "enum":
        return "must be one of: published, draft, unanswered"
    if kind in ("string_type", "list_type"):
        want = "a list (one '- item' per line)" if kind == "list_type" else "text"
        return f"should be {want}, not {type(err.get('input')).__name__}"
    if kind == "string_too_short":
        return "is too short: write the full question"
    msg = msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else msg


def parse_entry(text: str, path: str, expected_id: str | None = None) -> tuple[Entry, Any]:
    """Parse and validate one entry's YAML text; raise KnowledgeBaseError naming the line."""
    try:
        doc = _yaml().load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        what = (e.problem or "invalid YAML").strip()
        raise KnowledgeBaseError(
            [
                Problem(
                    path,
                    line,
                    None,
                    f"is not valid YAML ({what}): check indentation, and "
                    "quote text that contains ': ' or starts with a special character",
                )
            ]
        ) from None
    except YAMLError as e:
        raise KnowledgeBaseError([Problem(path, None, None, f"is not valid YAML ({e})")]) from None
    if not isinstance(doc, CommentedMap):
        raise KnowledgeBaseError(
            [
                Problem(
                    path,
                    1,
                    None,
                    "should be a mapping of fields (id: ..., question: ...), "
                    "not " + type(doc).__name__,
                )
            ]
        )
    try:
        entry = Entry.model_validate(dict(doc))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            name = str(loc[0]) if loc else ("answer" if "answer" in err["msg"] else None)
            if name and len(loc) > 1:
                name += f"[{loc[1] + 1 if isinstance(loc[1], int) else loc[1]}]"
            line = _line_of(doc, loc or ("answer",) if name == "answer" else loc)
            if err["type"] == "missing":
                line = 1
            problems.append(Problem(path, line, name, _explain(err)))
        raise KnowledgeBaseError(problems) from None
    if expected_id is not None and entry.id != expected_id:
        raise KnowledgeBaseError(
            [
                Problem(
                    path,
                    _line_of(doc, ("id",)),
                    "id",
                    f"is {entry.id!r} but the file is named {expected_id}.yaml: "
                    "make them the same (ids are stable, so usually fix the id)",
                )
            ]
        )
    return entry, doc


@dataclass(frozen=True, eq=False)
class KnowledgeBase:
    """All entries of a kb/ folder, validated together.

    `entries` is read-only and never changes in place: every write builds a new mapping
    and swaps it in (`_swap`), so take `entries = kb.entries` once per operation and
    that snapshot stays whole. Change entries through the methods below only.
    """

    kb_dir: Path
    project_dir: Path
    entries: Mapping[str, Entry] = field(default_factory=lambda: MappingProxyType({}))
    change_hooks: list[ChangeHook] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._swap(dict(self.entries))  # a private copy, whatever the caller passed

    def _swap(self, entries: dict[str, Entry]) -> None:
        """Publish a new set of entries: one attribute assignment, atomic for readers.

        Callers hold the writer lock (or own a KB nobody else sees yet), and hand over a
        fresh dict that nobody keeps a reference to.
        """
        object.__setattr__(self, "entries", MappingProxyType(entries))

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, kb_dir: Path | str, project_dir: Path | str | None = None) -> KnowledgeBase:
        """Load every kb/*.yaml; raise KnowledgeBaseError listing every problem found."""
        kb_dir = Path(kb_dir)
        if not kb_dir.is_dir():
            raise KnowledgeBaseError(
                [
                    Problem(
                        str(kb_dir), None, None, "is not a folder: create it, or set ASKTA_KB_DIR"
                    )
                ]
            )
        kb = cls(kb_dir, Path(project_dir) if project_dir else kb_dir.resolve().parent)
        problems: list[Problem] = []
        seen_questions: dict[str, str] = {}
        found: dict[str, Entry] = {}
        for path in sorted(kb_dir.glob("*.y*ml")):
            if path.suffix not in (".yaml", ".yml"):
                continue
            rel = kb.display(path)
            try:
                entry, doc = parse_entry(path.read_text(encoding="utf-8"), rel, path.stem)
            except KnowledgeBaseError as e:
                problems.extend(e.problems)
                continue
            except UnicodeDecodeError:
                problems.append(Problem(rel, None, None, "is not UTF-8 text: save it as UTF-8"))
                continue
            if entry.id in found:
                problems.append(
                    Problem(
                        rel,
                        _line_of(doc, ("id",)),
                        "id",
                        f"{entry.id!r} is already used by another file: pick a new id",
                    )
                )
                continue
            problems.extend(kb._check_demo(entry, rel, doc))
            for i, q in enumerate(entry.phrasings):
                key = normalize_question(q)
                other = seen_questions.get(key)
                if other and other != entry.id:
                    loc = ("question",) if i == 0 else ("alternate_questions", i - 1)
                    name = "question" if i == 0 else f"alternate_questions[{i}]"
                    problems.append(
                        Problem(
                            rel,
                            _line_of(doc, loc),
                            name,
                            f"{q!r} is also a question of {other}: keep it in one entry only",
                        )
                    )
                seen_questions.setdefault(key, entry.id)
            found[entry.id] = entry
        if problems:
            raise KnowledgeBaseError(problems)
        kb._swap(found)  # nobody else holds this KB yet
        return kb

    def _check_demo(self, entry: Entry, rel: str, doc: Any) -> list[Problem]:
        if entry.demo and not _is_file(self.project_dir / entry.demo):
            return [
                Problem(
                    rel,
                    _line_of(doc, ("demo",)),
                    "demo",
                    f"points to {entry.demo}, which does not exist: "
                    "create it or fix the path (relative to the project folder)",
                )
            ]
        return []

    def display(self, path: Path) -> str:
        """A path as a person would type it: relative to the project when possible."""
        try:
            return str(path.resolve().relative_to(self.project_dir.resolve()))
        except ValueError:
            return str(path)

    # --- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> Entry:
        """The entry with this id, or EntryNotFound."""
        try:
            return self.entries[entry_id]
        except KeyError:
            raise EntryNotFound(entry_id) from None

    def published(self) -> list[Entry]:
        """Entries that may be served as answers, in id order."""
        return [e for e in self.entries.values() if e.answerable]

    def unanswered(self) -> list[Entry]:
        """Entries waiting for a TA to write the answer."""
        return [e for e in self.entries.values() if e.status == Status.unanswered]

    def path_of(self, entry_id: str) -> Path:
        return self.kb_dir / f"{entry_id}.yaml"

    def demo_path(self, entry: Entry) -> Path | None:
        return self.project_dir / entry.demo if entry.demo else None

    # --- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across threads and processes."""
        with _thread_lock:
            fd = os.open(self.kb_dir, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _write_atomic(self, path: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _changed(self, path: Path, text: str | None) -> None:
        for hook in self.change_hooks:
            hook(path, text)

    def add_alternate(self, entry_id: str, question: str) -> Entry:
        """Append a phrasing to an entry's file (comments and layout kept); return the new entry."""
        question = question.strip()
        with self._locked():
            path = self.path_of(entry_id)
            if not path.is_file():
                raise EntryNotFound(entry_id)
            doc = _yaml().load(path.read_text(encoding="utf-8"))
            current = parse_entry(_dump(doc), self.display(path), entry_id)[0]
            if normalize_question(question) in {normalize_question(q) for q in current.phrasings}:
                self._swap({**self.entries, entry_id: current})
                return current
            for other in self.entries.values():
                if other.id != entry_id and normalize_question(question) in {
                    normalize_question(q) for q in other.phrasings
                }:
                    raise KnowledgeBaseError(
                        [
                            Problem(
                                self.display(path),
                                None,
                                "alternate_questions",
                                f"{question!r} is already a question of {other.id}",
                            )
                        ]
                    )
            alts = doc.get("alternate_questions")
            if not isinstance(alts, CommentedSeq):
                alts = CommentedSeq(alts or [])
                doc["alternate_questions"] = alts
            alts.append(question)
            text = _dump(doc)
            entry = parse_entry(text, self.display(path), entry_id)[0]
            self._write_atomic(path, text)
            self._changed(path, text)
            self._swap({**self.entries, entry_id: entry})
            return entry

    def save_entry(self, entry: Entry, *, create: bool = False,
                   check: Callable[[Entry | None], None] | None = None) -> Entry:
        """Write an entry to kb/<id>.yaml, keeping the comments of an existing file.

        `check`, if given, is called under the writer lock with the entry as it is now
        (None when there is none) before anything is written; what it raises aborts the
        save (optimistic concurrency: "only if it is still the version I read").
        """
        with self._locked():
            if check is not None:
                check(self.entries.get(entry.id))
            path = self.path_of(entry.id)
            rel = self.display(path)
            if create and path.exists():
                raise KnowledgeBaseError(
                    [Problem(rel, None, "id", f"{entry.id!r} already exists: pick another id")]
                )
            problems = self._check_demo(entry, rel, None)
            for other in self.entries.values():
                if other.id == entry.id:
                    continue
                clash = {normalize_question(q) for q in other.phrasings} & {
                    normalize_question(q) for q in entry.phrasings
                }
                if clash:
                    problems.append(
                        Problem(
                            rel,
                            None,
                            "alternate_questions",
                            f"{sorted(clash)[0]!r} is already a question of {other.id}",
                        )
                    )
            if problems:
                raise KnowledgeBaseError(problems)
            doc = (
                _yaml().load(path.read_text(encoding="utf-8")) if path.exists() else CommentedMap()
            )
            new = entry.to_yaml_dict()
            for key in list(doc):
                if key not in new:
                    del doc[key]
            for key, value in new.items():
                if key == "answer":
                    value = LiteralScalarString(
                        value if value.endswith("\n") or not value else value + "\n"
                    )
                if key in ("alternate_questions", "tags") and isinstance(
                    doc.get(key), CommentedSeq
                ):
                    seq = doc[key]
                    del seq[:]
                    seq.extend(value)
                    continue
                if key == "tags":
                    value = CommentedSeq(value)
                    value.fa.set_flow_style()
                doc[key] = value
            text = _dump(doc)
            saved = parse_entry(text, rel, entry.id)[0]
            self._write_atomic(path, text)
            self._changed(path, text)
            self._swap({**self.entries, entry.id: saved})
            return saved

    def reload_entry(self, entry_id: str) -> Entry | None:
        """Re-read one file after an outside change; None when it was deleted."""
        with self._locked():
            path = self.path_of(entry_id)
            if not path.exists():
                self._swap(_without(self.entries, entry_id))
                return None
            text = path.read_text(encoding="utf-8")
            entry = parse_entry(text, self.display(path), entry_id)[0]
            self._swap({**self.entries, entry_id: entry})
            return entry

    def delete_entry(self, entry_id: str, *,
                     check: Callable[[Entry | None], None] | None = None) -> Entry | None:
        """Delete kb/<id>.yaml and forget the entry; return what was in memory.

        The file goes with one unlink (atomic: readers of the folder see it or not), and
        the entry leaves memory in the same locked step. EntryNotFound if neither exists.
        `check` as in save_entry.
        """
        with self._locked():
            if check is not None:
                check(self.entries.get(entry_id))
            path = self.path_of(entry_id)
            if not path.exists() and entry_id not in self.entries:
                raise EntryNotFound(entry_id)
            path.unlink(missing_ok=True)
            _fsync_dir(self.kb_dir)
            self._changed(path, None)
            old = self.entries.get(entry_id)
            self._swap(_without(self.entries, entry_id))
            return old

    def remember(self, entries: Iterable[Entry]) -> None:
        """Add or replace entries in memory only, writing no file.

        For knowledge bases that live in memory: evaluation's held-out copies and the
        benchmarks' synthetic entries. One swap for the whole batch.
        """
        with _thread_lock:
            self._swap({**self.entries, **{e.id: e for e in entries}})


def _without(entries: Mapping[str, Entry], entry_id: str) -> dict[str, Entry]:
    return {k: v for k, v in entries.items() if k != entry_id}


def _is_file(path: Path) -> bool:
    """Path.is_file, False for a path no file can have (too long a name, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in this folder durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(doc: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def entry_hash(entry: Entry) -> str:
    """Hash of what an entry contributes to the index (its texts), and its status."""
    h = hashlib.sha256()
    for part in (entry.status.value, *entry.phrasings, "\x00", entry.answer):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()[:16]
