"""Running untrusted demo code: bubblewrap sandboxes from a warm pool, streamed as events.

    runner = SandboxRunner(settings.sandbox_config())
    runner.check()    # SandboxUnavailable, with the reason, if bwrap cannot run here
    runner.start()    # the warm pool
    for event in runner.stream(code, device="auto"):
        ...           # stdout / stderr / image events, then done
"""

from server.sandbox.errors import (
    DeviceUnavailable,
    SandboxBusy,
    SandboxError,
    SandboxUnavailable,
)
from server.sandbox.models import Event, Limits, RunResult, SandboxConfig
from server.sandbox.runner import SandboxRunner

Executor = SandboxRunner  # the interface routes depend on; a remote executor can replace it

__all__ = [
    "DeviceUnavailable",
    "Event",
    "Executor",
    "Limits",
    "RunResult",
    "SandboxBusy",
    "SandboxConfig",
    "SandboxError",
    "SandboxRunner",
    "SandboxUnavailable",
]
