"""The data dir is the server's alone: the folder 0700, every file the server creates 0600.

The data dir holds the session key (anyone who reads it can sign a session for any
user), the SQLite database with the question log and the users' password hashes, and
the index. A server narrows its umask to 077 before it opens any of them, so files it
creates later (SQLite's -wal and -journal files, index snapshots, the demo cache) are
private too.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("askta")

PRIVATE_UMASK = 0o077


def make_private(data_dir: Path) -> int:
    """Narrow the process umask to 077 and create `data_dir` 0700, tightening an existing
    one and what it holds (a database or key written 0644 by an older version, or by a
    command run before the first start), with a warning when it cannot. Return the umask
    before, to restore in tests."""
    before = os.umask(PRIVATE_UMASK)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(data_dir)
    try:
        children = list(data_dir.iterdir())
    except OSError as e:
        log.warning("cannot list the data dir %s: %s", data_dir, e)
        children = []
    for child in children:  # what is below a 0700 folder is private already
        if not child.is_symlink():
            _tighten(child)
    return before


def _tighten(path: Path) -> None:
    """Take group and other permissions away from `path` (0644 -> 0600, 0755 -> 0700)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(current & 0o700)
    except FileNotFoundError:  # gone meanwhile (a SQLite -shm file)
        pass
    except OSError as e:  # someone else's file: say so
        log.warning("cannot make %s private (chmod go-rwx): %s", path, e)


@contextmanager
def private_files(data_dir: Path) -> Iterator[None]:
    """`make_private` for as long as the block runs (a server's lifetime); the umask
    before comes back after it, for whatever the process does next (the tests)."""
    before = make_private(data_dir)
    try:
        yield
    finally:
        os.umask(before)
