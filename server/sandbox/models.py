"""Plain data of the sandbox: its configuration, per-run limits, events and results."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "error", "timeout", "killed"]
EventKind = Literal["stdout", "stderr", "image", "done"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Limits:
    """What one run may use. The server enforces wall time and output; the rest is set inside."""

    timeout_s: float = 20.0
    cpu_s: int = 30
    memory_mb: int = 4096
    max_processes: int = 64
    max_output_bytes: int = 1_000_000
    max_images: int = 8
    max_image_bytes: int = 2_000_000
    file_size_mb: int = 64
    open_files: int = 512

    def but(self, **changes: Any) -> Limits:
        """A copy with some fields changed (`limits.but(timeout_s=2)`)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the runner needs; the server builds it with `Settings.sandbox_config()`."""

    python: Path = Path("/opt/askta/sandbox-venv/bin/python")
    bwrap: str = "bwrap"
    uid: int = 65534
    pool_size: int = 2
    gpu_pool_size: int = 1
    queue_size: int = 8
    max_concurrent: int = field(default_factory=lambda: os.cpu_count() or 1)
    scratch_mb: int = 64
    limits: Limits = field(default_factory=Limits)
    nvidia_dir: Path = Path("/usr/local/nvidia")
    ready_timeout_s: float = 120.0
    use_cgroups: bool = True
    threads: int = 1
    # False: CPU workers skip importing torch ahead of time (a run then pays for it);
    # same sandbox and limits, ~0.6 s instead of ~4 s of CPU to start. For tests.
    preload_torch: bool = True


@dataclass
class RunResult:
    """The outcome of one run, as the API returns it."""

    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    images: list[dict[str, str]]
    device: Literal["cpu", "cuda"]
    duration_ms: int
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the fields of the demo-run API."""
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One streamed event: a stdout/stderr chunk ending at a line break (or a split point),
    an image `{"mime", "data_base64"}`, or `done` with the result as a dict."""

    kind: EventKind
    data: Any
