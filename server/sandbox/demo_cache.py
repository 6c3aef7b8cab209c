"""The last successful run of each demo, so an entry's page shows output at once.

Results are keyed by the demo file's content hash and the device, so editing a
demo invalidates its cached output. Each result is one JSON file under
`<data_dir>/demo-cache/`, written atomically; results, and misses, are also kept
in memory (this server is the only writer), so serving an entry costs a `stat`
of its demo file and nothing more once warm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CACHE_DIR_NAME = "demo-cache"


class DemoCache:
    """Last successful demo results per (demo content hash, device), persisted as JSON."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._results: dict[str, dict[str, Any] | None] = {}
        self._hashes: dict[Path, tuple[int, int, str]] = {}

    def code_hash(self, demo_path: Path) -> str | None:
        """sha256 of the demo file, recomputed only when its mtime or size changes."""
        try:
            st = demo_path.stat()
        except OSError:
            return None
        memo = self._hashes.get(demo_path)
        if memo and memo[0] == st.st_mtime_ns and memo[1] == st.st_size:
            return memo[2]
        digest = hashlib.sha256(demo_path.read_bytes()).hexdigest()
        self._hashes[demo_path] = (st.st_mtime_ns, st.st_size, digest)
        return digest

    @staticmethod
    def key(code_hash: str, device: str) -> str:
        """The file stem of one cached result."""
        return f"{code_hash[:32]}-{device}"

    def _file(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, code_hash: str, device: str) -> dict[str, Any] | None:
        """The cached result for this demo content on this device, or None."""
        key = self.key(code_hash, device)
        if key in self._results:
            return self._results[key]
        try:
            result = json.loads(self._file(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
        if not isinstance(result, dict):
            result = None
        with self._lock:
            self._results.setdefault(key, result)
        return result

    def put(self, code_hash: str, device: str, result: dict[str, Any]) -> bool:
        """Remember a result if it succeeded; return whether it was stored."""
        if result.get("status") != "ok":
            return False
        stored = {**result, "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        key = self.key(code_hash, device)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(stored, f)
            os.replace(tmp, self._file(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        with self._lock:
            self._results[key] = stored
        return True
