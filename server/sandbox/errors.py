"""What the sandbox raises: refusals a route or the CLI translates for a person."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of the sandbox's errors."""


class SandboxUnavailable(SandboxError):
    """bubblewrap cannot run here, so no code runs at all (never unsandboxed)."""


class SandboxBusy(SandboxError):
    """Every runner slot is taken and the waiting queue is full; try again later."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeviceUnavailable(SandboxError):
    """The run asked for a device this machine does not have."""
