"""The change message and the feed every backend implements: publish, listen, state."""

from __future__ import annotations

import collections
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("askta.changefeed")

# How long a listener waits for a message before it looks at its outbox and stop flag,
# and the longest pause between two reconnection attempts.
POLL_S = 0.5
MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class KbChange:
    """kb/<entry_id>.yaml was written (or deleted) by the process `origin` at `sent`
    (seconds since the epoch)."""

    entry_id: str
    origin: str
    sent: float

    def to_json(self) -> str:
        return json.dumps({"entry": self.entry_id, "origin": self.origin, "sent": self.sent})

    @classmethod
    def from_json(cls, raw: str | bytes) -> KbChange | None:
        """The change a message carries; None for anything else (it is logged)."""
        try:
            data = json.loads(raw)
            return cls(str(data["entry"]), str(data["origin"]), float(data["sent"]))
        except (ValueError, KeyError, TypeError):
            log.warning("change feed: ignoring a message that is not a change: %.80r", raw)
            return None


Apply = Callable[[KbChange], None]
Resync = Callable[[], None]


class ChangeFeed:
    """No feed: a single web process, which sees its own changes. Backends override
    `_send` and `_listen`; the rest (outbox, reconnects, state) is shared."""

    backend = "off"

    def __init__(self) -> None:
        # Which process a message comes from; `process` alone is shown by /healthz.
        self.process = secrets.token_hex(4)
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{self.process}"
        self.connected = False
        self.error: str | None = None
        self.published = self.received = 0
        self.last_lag_ms: float | None = None  # from the writer's publish to this process
        self._outbox: collections.deque[KbChange] = collections.deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._apply: Apply | None = None
        self._resync: Resync | None = None

    # --- the writing side ------------------------------------------------------------------
    def publish(self, entry_id: str) -> None:
        """Tell the other processes that this entry's file changed. Never raises: a message
        that cannot be sent now waits in the outbox, and the listener sends it once it is
        connected again (while it is not, nothing is tried here, so a staff action never
        waits for a backend that is down)."""
        if self.backend == "off":
            return
        self._outbox.append(KbChange(entry_id, self.origin, time.time()))
        if self.connected:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            while self._outbox:
                change = self._outbox[0]
                try:
                    self._send(change)
                except Exception as e:  # the backend is down: the listener retries
                    self._failed(e)
                    return
                self._outbox.popleft()
                self.published += 1

    def _send(self, change: KbChange) -> None:
        raise NotImplementedError

    # --- the listening side ----------------------------------------------------------------
    def start(self, apply: Apply, resync: Resync) -> None:
        """Listen in a thread: `apply` each change another process made; `resync` (re-read
        all of kb/) after each (re)connection, since a message sent while this process was
        not listening is not delivered again."""
        if self.backend == "off":
            return
        self._apply, self._resync = apply, resync
        self._thread = threading.Thread(target=self._run, name="askta-change-feed",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = POLL_S
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as e:
                self._failed(e)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = POLL_S

    def _listen(self) -> None:
        """Connect, subscribe, resync, then hand each message to `_received` until the
        connection fails (raise) or the feed stops (return)."""
        raise NotImplementedError

    def _subscribed(self) -> None:
        """The backend listens now: catch up with what was missed, send what waits.
        Messages that arrive meanwhile wait in the subscription and are applied next."""
        if self._resync is not None:
            self._resync()
        if not self.connected:
            log.info("change feed: listening on %s", self.backend)
        self.connected, self.error = True, None
        self._flush()

    def _received(self, raw: str | bytes) -> None:
        change = KbChange.from_json(raw)
        if change is None or change.origin == self.origin or self._apply is None:
            return
        self.received += 1
        self.last_lag_ms = max(0.0, (time.time() - change.sent) * 1000)
        try:
            self._apply(change)
        except Exception:
            log.exception("change feed: could not apply the change to %s", change.entry_id)

    def _idle(self) -> None:
        """Between messages: send what the outbox holds."""
        if self._outbox:
            self._flush()

    def _failed(self, e: BaseException) -> None:
        message = f"{type(e).__name__}: {e}".strip()
        if self.connected or self.error != message:
            log.error("change feed (%s): %s; other web processes see this one's changes "
                      "once it reconnects", self.backend, message)
        self.connected, self.error = False, message

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop listening (the thread ends within POLL_S) and send what is left, briefly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._outbox:
            self._flush()
        self._disconnect()

    def _disconnect(self) -> None:
        """Close the backend's connections."""

    # --- reporting -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What /healthz and /readyz show: the backend, whether it listens, the counts."""
        state: dict[str, Any] = {"backend": self.backend, "process": self.process,
                                 "connected": self.connected,
                                 "published": self.published, "received": self.received,
                                 "waiting": len(self._outbox),
                                 "last_lag_ms": (round(self.last_lag_ms, 1)
                                                 if self.last_lag_ms is not None else None)}
        if self.error:
            state["error"] = self.error
        return state
