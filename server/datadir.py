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
    """Narrow the process umask to 077 and create `data_dir` 0700 (tightening an existing
    one, with a warning when it cannot). Return the umask before, to restore in tests."""
    before = os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if stat.S_IMODE(data_dir.stat().st_mode) & 0o077:
            data_dir.chmod(0o700)
    except OSError as e:  # someone else's folder: say so, the files are still 0600
        log.warning("cannot make the data dir %s private (chmod 0700): %s", data_dir, e)
    return before


@contextmanager
def private_files(data_dir: Path) -> Iterator[None]:
    """`make_private` for as long as the block runs (a server's lifetime); the umask
    before comes back after it, for whatever the process does next (the tests)."""
    before = make_private(data_dir)
    try:
        yield
    finally:
        os.umask(before)
