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
import errno
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

from indexer.demos import DemoPathError, resolve_demo
from indexer.schema import Entry, Status, normalize_line

FIELDS = list(Entry.model_fields)

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


class StorageFull(OSError):
    """A KB file could not be written: the disk (or the quota) is full. Nothing was
    renamed, so the old file is intact."""

    def __init__(self, path: str):
        super().__init__(errno.ENOSPC, f"no space left to write {path}: the old file is "
                                       "unchanged; free some disk space and try again")
        self.path = path


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


def _load_yaml(text: str, path: str) -> Any:
    """The round-trip document of a file's text; any failure is a KnowledgeBaseError."""
    try:
        return _yaml().load(text)
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
    except Exception as e:  # hostile input can fail deeper in ruamel (recursion, odd tags)
        raise KnowledgeBaseError(
            [Problem(path, None, None, f"is not valid YAML ({type(e).__name__}: {e})")]
        ) from None


def validate_fields(fields: Mapping[Any, Any], path: str) -> Entry:
    """An Entry from a file's document (problems name its lines) or from a form's fields
    (no lines); every failure is a KnowledgeBaseError naming the field."""
    doc = fields if isinstance(fields, CommentedMap) else None
    try:
        return Entry.model_validate(dict(fields))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            name = str(loc[0]) if loc else ("answer" if "answer" in err["msg"] else None)
            if name and len(loc) > 1:
                name += f"[{loc[1] + 1 if isinstance(loc[1], int) else loc[1]}]"
            line = _line_of(doc, loc or ("answer",) if name == "answer" else loc)
            if err["type"] == "missing" and doc is not None:
                line = 1
            problems.append(Problem(path, line, name, _explain(err)))
        raise KnowledgeBaseError(problems) from None
    except (TypeError, ValueError, RecursionError) as e:  # keys or values pydantic chokes on
        raise KnowledgeBaseError(
            [Problem(path, None, None, f"cannot be read as an entry ({type(e).__name__}: {e})")]
        ) from None


def parse_entry(text: str, path: str, expected_id: str | None = None) -> tuple[Entry, Any]:
    """Parse and validate one entry's YAML text; raise KnowledgeBaseError naming the line.

    Every failure is a KnowledgeBaseError, whatever the text holds.
    """
    doc = _load_yaml(text, path)
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
    entry = validate_fields(doc, path)
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

    `problems` lists what was wrong with the files `load(..., skip_broken=True)` left
    out (empty after a strict load, which raises instead).
    """

    kb_dir: Path
    project_dir: Path
    entries: Mapping[str, Entry] = field(default_factory=lambda: MappingProxyType({}))
    change_hooks: list[ChangeHook] = field(default_factory=list, repr=False)
    problems: tuple[Problem, ...] = ()
    # This KB's writers, one at a time (with folder_lock: other processes and other KB
    # objects on the same folder). Per object: two apps in one process share no lock.
    _write_lock: threading.Lock = field(default_factory=threading.Lock, init=False,
                                        repr=False, compare=False)

    def __post_init__(self) -> None:
        self._swap(dict(self.entries))  # a private copy, whatever the caller passed

    def _swap(self, entries: dict[str, Entry]) -> None:
        """Publish a new set of entries: one attribute assignment, atomic for readers.

        Callers hold the writer lock (or own a KB nobody else sees yet), and hand over a
        fresh dict that nobody keeps a reference to.
        """
        object.__setattr__(self, "entries", MappingProxyType(entries))

    def _forget_problems(self, rel: str) -> None:
        """The file `rel` was written, reloaded or deleted: its old problems are gone."""
        object.__setattr__(self, "problems", tuple(p for p in self.problems if p.path != rel))

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        kb_dir: Path | str,
        project_dir: Path | str | None = None,
        *,
        skip_broken: bool = False,
    ) -> KnowledgeBase:
        """Load every kb/*.yaml; raise KnowledgeBaseError listing every problem found.

        With `skip_broken`, a file with a problem is left out instead, and its problems
        are kept in `problems` (a server starts with the rest; `askta check` stays
        strict). A missing kb folder is an error either way.
        """
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
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(rel, None, None, "is not UTF-8 text: save it as UTF-8"))
                continue
            except OSError as e:  # a folder named x.yaml, a dangling link, no permission
                problems.append(
                    Problem(rel, None, None, f"cannot be read ({e.strerror or type(e).__name__})"
                            ": make it a readable entry file, or remove it")
                )
                continue
            try:
                entry, doc = parse_entry(text, rel, path.stem)
            except KnowledgeBaseError as e:
                problems.extend(e.problems)
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
            file_problems = kb._check_demo(entry, rel, doc)
            for i, q in enumerate(entry.phrasings):
                other = seen_questions.get(normalize_question(q))
                if other and other != entry.id:
                    loc = ("question",) if i == 0 else ("alternate_questions", i - 1)
                    name = "question" if i == 0 else f"alternate_questions[{i}]"
                    file_problems.append(
                        Problem(
                            rel,
                            _line_of(doc, loc),
                            name,
                            f"{q!r} is also a question of {other}: keep it in one entry only",
                        )
                    )
            problems.extend(file_problems)
            if file_problems:
                continue  # neither its id nor its questions count against the files after it
            for q in entry.phrasings:
                seen_questions.setdefault(normalize_question(q), entry.id)
            found[entry.id] = entry
        if problems and not skip_broken:
            raise KnowledgeBaseError(problems)
        kb._swap(found)  # nobody else holds this KB yet
        object.__setattr__(kb, "problems", tuple(problems))
        return kb

    def skipped_files(self) -> list[str]:
        """The files a lenient load left out, as `problems` names them, in order."""
        return sorted({p.path for p in self.problems})

    def _check_demo(self, entry: Entry, rel: str, doc: Any) -> list[Problem]:
        """The entry's demo is a .py file under demos/ (see indexer.demos), or a problem."""
        if not entry.demo:
            return []
        try:
            resolve_demo(self.project_dir, entry.demo)
        except DemoPathError as e:
            return [Problem(rel, _line_of(doc, ("demo",)), "demo", str(e))]
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
        """The entry's demo file, checked now (DemoPathError if it may not be shown or run:
        outside demos/, a link out of it, missing); None when the entry has no demo."""
        return resolve_demo(self.project_dir, entry.demo) if entry.demo else None

    # --- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across threads and processes."""
        with self._write_lock, folder_lock(self.kb_dir):
            yield

    def _write_atomic(self, path: Path, text: str, expected: Entry | None = None) -> None:
        """Write `text` to a temporary file and rename it over `path`.

        With `expected`, the temporary file is read back and parsed first: unless it is
        exactly that entry, nothing is renamed (KnowledgeBaseError) and the old file stays.
        """
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if expected is not None:
                written = Path(tmp).read_text(encoding="utf-8")
                self._same_entry(parse_entry(written, self.display(path), expected.id)[0],
                                 expected, self.display(path))
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(self.display(path)) from e
            raise

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temporary files a killed writer left (`_write_atomic`'s
        `.<name>.*.tmp`, never renamed, so never an entry); return them. Start-up only."""
        removed = []
        with self._locked():
            for tmp in self.kb_dir.rglob(".*.tmp"):
                if _is_file(tmp):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                    removed.append(tmp)
        return removed

    def _changed(self, path: Path, text: str | None) -> None:
        for hook in self.change_hooks:
            hook(path, text)

    @staticmethod
    def _same_entry(saved: Entry, expected: Entry, rel: str) -> Entry:
        """`saved` if it is `expected`; else KnowledgeBaseError naming the fields that the
        YAML would change (the write is refused, so no staff action leaves a file that
        loads as something else, or not at all)."""
        if saved == expected:
            return saved
        changed = [name for name in Entry.model_fields
                   if getattr(saved, name) != getattr(expected, name)] or ["entry"]
        raise KnowledgeBaseError(
            [
                Problem(
                    rel,
                    None,
                    changed[0],
                    "would not read back as written (the YAML file would change "
                    f"{', '.join(changed)}): not saved, the file is unchanged; "
                    "remove unusual characters and try again",
                )
            ]
        )

    def _read_doc(self, path: Path, rel: str) -> tuple[str, CommentedMap]:
        """An existing file's text and round-trip document (comments kept); a file that
        is not a YAML mapping is a KnowledgeBaseError, never overwritten blindly."""
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise KnowledgeBaseError(
                [Problem(rel, None, None, "is not UTF-8 text: save it as UTF-8")]
            ) from None
        except OSError as e:
            raise KnowledgeBaseError(
                [Problem(rel, None, None, f"cannot be read ({e.strerror or type(e).__name__})")]
            ) from None
        doc = _load_yaml(text, rel)
        if not isinstance(doc, CommentedMap):
            raise KnowledgeBaseError(
                [Problem(rel, 1, None, "should be a mapping of fields (id: ..., question: ...), "
                         f"not {type(doc).__name__}: fix the file first")]
            )
        return text, doc

    def _write_entry(self, path: Path, doc: Any, expected: Entry) -> Entry:
        """Dump `doc`, check it parses back to `expected`, write it atomically and check
        the written file again; return the entry as saved."""
        rel = self.display(path)
        try:
            text = _dump(doc)
        except Exception as e:  # a value the YAML writer cannot represent
            raise KnowledgeBaseError(
                [Problem(rel, None, None, f"cannot be written as YAML ({type(e).__name__})")]
            ) from None
        saved = self._same_entry(parse_entry(text, rel, expected.id)[0], expected, rel)
        try:
            self._write_atomic(path, text, expected)
        except UnicodeEncodeError:
            raise KnowledgeBaseError(
                [Problem(rel, None, None, "holds text that cannot be saved as UTF-8")]
            ) from None
        self._changed(path, text)
        self._forget_problems(rel)
        return saved

    def add_alternate(self, entry_id: str, question: str) -> Entry:
        """Append a phrasing to an entry's file (comments and layout kept); return the new entry."""
        with self._locked():
            path = self.path_of(entry_id)
            if not path.is_file():
                raise EntryNotFound(entry_id)
            rel = self.display(path)
            try:
                question = normalize_line(question).strip()
            except ValueError as e:
                raise KnowledgeBaseError(
                    [Problem(rel, None, "alternate_questions", f"{question!r} {e}")]
                ) from None
            text, doc = self._read_doc(path, rel)
            current = parse_entry(text, rel, entry_id)[0]
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
                                rel,
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
            expected = current.model_copy(
                update={"alternate_questions": [*current.alternate_questions, question]}
            )
            entry = self._write_entry(path, doc, expected)
            self._swap({**self.entries, entry_id: entry})
            return entry

    def save_entry(self, entry: Entry, *, create: bool = False,
                   check: Callable[[Entry | None], None] | None = None) -> Entry:
        """Write an entry to kb/<id>.yaml, keeping the comments of an existing file.

        `check`, if given, is called under the writer lock with the entry as it is now
        (None when there is none) before anything is written; what it raises aborts the
        save (optimistic concurrency: "only if it is still the version I read").

        The file is read back before it replaces the old one: it must load as exactly
        this entry (its answer ending in one newline, as a YAML block keeps it), else
        KnowledgeBaseError and the old file stays.
        """
        with self._locked():
            current = self._fresh(entry.id)
            if check is not None:
                check(current)
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
            doc = self._read_doc(path, rel)[1] if path.exists() else CommentedMap()
            answer = _block_text(entry.answer)
            new = entry.to_yaml_dict()
            for key in list(doc):
                if key not in new:
                    del doc[key]
            for key, value in new.items():
                if key == "answer":
                    value = LiteralScalarString(answer) if answer else ""
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
            saved = self._write_entry(path, doc, entry.model_copy(update={"answer": answer}))
            self._swap({**self.entries, entry.id: saved})
            return saved

    def _fresh(self, entry_id: str) -> Entry | None:
        """The entry as its file holds it now, put in memory too; called under the writer
        lock. Another process sharing kb/ may have written the file since this one last
        read it, so a version check against memory alone could let a stale edit through.
        A file that does not parse is left to the write (memory's version is returned)."""
        path = self.path_of(entry_id)
        if not path.exists():
            if entry_id in self.entries:
                self._swap(_without(self.entries, entry_id))
            return None
        rel = self.display(path)
        try:
            entry = parse_entry(self._read_doc(path, rel)[0], rel, entry_id)[0]
        except KnowledgeBaseError:
            return self.entries.get(entry_id)
        if self.entries.get(entry_id) != entry:
            self._swap({**self.entries, entry_id: entry})
        return entry

    def reload_entry(self, entry_id: str) -> Entry | None:
        """Re-read one file after an outside change; None when it was deleted."""
        with self._locked():
            path = self.path_of(entry_id)
            rel = self.display(path)
            if not path.exists():
                self._swap(_without(self.entries, entry_id))
                self._forget_problems(rel)
                return None
            text, _ = self._read_doc(path, rel)
            entry = parse_entry(text, rel, entry_id)[0]
            self._swap({**self.entries, entry_id: entry})
            self._forget_problems(rel)
            return entry

    def delete_entry(self, entry_id: str, *,
                     check: Callable[[Entry | None], None] | None = None) -> Entry | None:
        """Delete kb/<id>.yaml and forget the entry; return what was in memory.

        The file goes with one unlink (atomic: readers of the folder see it or not), and
        the entry leaves memory in the same locked step. EntryNotFound if neither exists.
        `check` as in save_entry.
        """
        with self._locked():
            current = self._fresh(entry_id)
            if check is not None:
                check(current)
            path = self.path_of(entry_id)
            if not path.exists() and entry_id not in self.entries:
                raise EntryNotFound(entry_id)
            path.unlink(missing_ok=True)
            fsync_dir(self.kb_dir)
            self._changed(path, None)
            old = self.entries.get(entry_id)
            self._swap(_without(self.entries, entry_id))
            self._forget_problems(self.display(path))
            return old

    def remember(self, entries: Iterable[Entry]) -> None:
        """Add or replace entries in memory only, writing no file.

        For knowledge bases that live in memory: evaluation's held-out copies and the
        benchmarks' synthetic entries. One swap for the whole batch.
        """
        with self._write_lock:
            self._swap({**self.entries, **{e.id: e for e in entries}})


def _without(entries: Mapping[str, Entry], entry_id: str) -> dict[str, Entry]:
    return {k: v for k, v in entries.items() if k != entry_id}


def _is_file(path: Path) -> bool:
    """Path.is_file, False for a path no file can have (too long a name, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def folder_lock(kb_dir: Path) -> Iterator[None]:
    """The lock every write to kb/ takes (flock on the folder, across processes): what
    holds it sees no entry half-written (a backup copying the folder takes it too)."""
    fd = os.open(kb_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in this folder durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _block_text(answer: str) -> str:
    """An answer as a YAML literal block holds it: ending in one newline ("" if blank)."""
    if not answer.strip():
        return ""
    return answer if answer.endswith("\n") else answer + "\n"


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
