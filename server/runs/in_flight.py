"""A cap on the runs one client has going at once, in this web process."""

from __future__ import annotations

import threading


class InFlight:
    """Runs each client has queued or running in this web process: one student cannot
    fill the queue with spinning code (ASKTA_RUNS_IN_FLIGHT_PER_CLIENT)."""

    def __init__(self, cap: int):
        self.cap = cap
        self._runs: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> bool:
        """Count one more run for `client`; False (nothing counted) when at the cap."""
        with self._lock:
            if self._runs.get(client, 0) >= self.cap:
                return False
            self._runs[client] = self._runs.get(client, 0) + 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            left = self._runs.get(client, 0) - 1
            if left > 0:
                self._runs[client] = left
            else:
                self._runs.pop(client, None)
