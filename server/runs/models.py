"""Plain data of a run: what was asked (RunRequest), what it produced (RunEvent), and
what `GET /api/runs/{id}` shows (RunView), built from the same events by every executor."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["queued", "running", "ok", "error", "timeout", "killed"]
TERMINAL = frozenset({"ok", "error", "timeout", "killed"})
# The fields of a `done` event; output and images are carried by the events before it.
DONE_FIELDS = ("status", "exit_code", "device", "duration_ms", "truncated")


class UnknownRun(LookupError):
    """No run has this id here (never made, or expired)."""


def new_run_id() -> str:
    """A fresh, unguessable run id (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RunRequest:
    """What to run. Today `code` is an entry's demo file; the same request carries a
    student's edited code and `params` later, with no change to the executors, which
    pass the whole request through (`to_dict` / `from_dict`) to the sandbox."""

    entry_id: str
    code: str
    device: str = "auto"
    filename: str = "demo.py"
    params: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a task message."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        """The request a task message carries (unknown keys from a newer sender ignored)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: `seq` counts from 1 (the SSE id), `kind` is stdout, stderr,
    image or done; `data` is `{"text"}`, an image `{"mime", "data_base64"}`, or the
    done fields (DONE_FIELDS)."""

    seq: int
    kind: str
    data: dict[str, Any]


def done_data(result: dict[str, Any]) -> dict[str, Any]:
    """The `done` event's data from a sandbox result (output and images left out)."""
    return {k: result.get(k) for k in DONE_FIELDS if k in result}


def event_data(kind: str, data: Any) -> dict[str, Any]:
    """A sandbox event's data as a run event's: `{"text"}` for output, the image as is,
    the done fields for done."""
    if kind in ("stdout", "stderr"):
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        return {"text": text}
    if kind == "done":
        return done_data(data.to_dict() if hasattr(data, "to_dict") else dict(data))
    return dict(data)


def failure_events(message: str, device: str) -> list[tuple[str, dict[str, Any]]]:
    """The events that end a run the sandbox or its worker lost: the reason on stderr,
    then done with status `error`."""
    return [("stderr", {"text": message.rstrip("\n") + "\n"}),
            ("done", {"status": "error", "exit_code": None, "device": device,
                      "duration_ms": 0, "truncated": False})]


@dataclass
class RunView:
    """A run as `GET /api/runs/{id}` shows it."""

    id: str
    entry_id: str
    status: RunStatus
    device: str
    worker: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def build(cls, run_id: str, entry_id: str, status: str, device: str,
              worker: str | None, events: list[RunEvent]) -> RunView:
        """The view of a run from its metadata and its events so far."""
        view = cls(id=run_id, entry_id=entry_id, status=status,  # type: ignore[arg-type]
                   device=device, worker=worker)
        out: list[str] = []
        err: list[str] = []
        for event in events:
            if event.kind == "stdout":
                out.append(str(event.data.get("text", "")))
            elif event.kind == "stderr":
                err.append(str(event.data.get("text", "")))
            elif event.kind == "image":
                view.images.append(event.data)
            elif event.kind == "done":
                view.status = event.data.get("status", "error")
                view.exit_code = event.data.get("exit_code")
                view.duration_ms = event.data.get("duration_ms")
                view.device = event.data.get("device") or view.device
        view.stdout, view.stderr = "".join(out), "".join(err)
        return view

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the fields of the run API."""
        return asdict(self)

    def result(self) -> dict[str, Any]:
        """The finished run in the shape of the demo-run API (and the demo cache)."""
        return {"status": self.status, "exit_code": self.exit_code, "stdout": self.stdout,
                "stderr": self.stderr, "images": self.images, "device": self.device,
                "duration_ms": self.duration_ms or 0}
