"""The warm pool: sandboxes started ahead of time, refilled in the background."""

from __future__ import annotations

import logging
import os
import selectors
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from server.sandbox.models import SandboxConfig
from server.sandbox.worker import Worker, WorkerFailed

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


class WarmPool:
    """Keeps `targets[device]` ready workers per device; hands each out once.

    Every bwrap is forked from one long-lived spawner thread: bwrap's --die-with-parent
    fires when the forking *thread* ends, so a short-lived thread would kill its sandboxes.
    """

    def __init__(self, cfg: SandboxConfig, bwrap_path: str, targets: dict[str, int]) -> None:
        self.cfg = cfg
        self.bwrap_path = bwrap_path
        self.targets = {d: n for d, n in targets.items() if n > 0}
        self._ready: dict[str, list[Worker]] = {d: [] for d in ("cpu", "cuda")}
        self._starting: list[Worker] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a worker became ready
        self._waiting: dict[str, int] = {}  # runs blocked in acquire(), per device
        self._closed = False
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawn")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread: threading.Thread | None = None
        self._failures = 0

    # --- public -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the refill thread (idempotent)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._refill_loop, name="sandbox-pool",
                                            daemon=True)
            self._thread.start()

    def take(self, device: str) -> Worker | None:
        """A ready worker for `device`, or None if none is ready right now."""
        with self._lock:
            return self._pop_ready(device)

    def acquire(self, device: str, timeout_s: float) -> Worker | None:
        """A ready worker, waiting for one the refill thread is starting (it starts one
        more per waiting run): better than a fresh sandbox competing with it for CPU.
        None if the pool does not serve `device` or nothing came in time."""
        if device not in self.targets or self._thread is None:
            return self.take(device)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._waiting[device] = self._waiting.get(device, 0) + 1
            self._wake()
            try:
                while not self._closed:
                    worker = self._pop_ready(device)
                    if worker is not None:
                        return worker
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return None
                    self._changed.wait(min(left, 1.0))
                return None
            finally:
                self._waiting[device] -= 1

    def _pop_ready(self, device: str) -> Worker | None:
        ready = self._ready.get(device, [])
        while ready:
            w = ready.pop(0)
            if w.alive():
                self._wake()
                return w
            w.kill(wait=False)
        return None

    def fresh(self, device: str) -> Worker:
        """Start a sandbox now (not from the pool) and wait until it is ready."""
        if self._closed:
            raise WorkerFailed("the sandbox runner is closed")
        worker = self._spawner.submit(Worker.launch, self.cfg, self.bwrap_path, device).result()
        try:
            worker.wait_ready(self.cfg.ready_timeout_s)
        except BaseException:
            worker.kill()
            raise
        return worker

    def ready_count(self, device: str) -> int:
        """How many ready workers wait for `device`."""
        with self._lock:
            return len(self._ready.get(device, []))

    def workers(self) -> list[Worker]:
        """Every worker the pool holds (ready or starting)."""
        with self._lock:
            return [w for ws in self._ready.values() for w in ws] + list(self._starting)

    def wait_until_full(self, timeout_s: float) -> bool:
        """Block until every target is met (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.ready_count(d) >= n for d, n in self.targets.items()):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Stop refilling and kill every worker the pool holds."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for w in self.workers():
            w.kill()
        with self._lock:
            self._ready = {d: [] for d in self._ready}
            self._starting = []
        self._spawner.shutdown(wait=True)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- the refill thread -----------------------------------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _refill_loop(self) -> None:
        backoff_until = 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                missing = [d for d, n in self.targets.items()
                           # runs waiting in acquire() take the workers already starting
                           for _ in range(max(n, self._waiting.get(d, 0)) - len(self._ready[d])
                                          - sum(w.device == d for w in self._starting))]
            if time.monotonic() >= backoff_until:
                for device in missing:
                    try:
                        w = self._spawner.submit(Worker.launch, self.cfg, self.bwrap_path,
                                                 device).result()
                    except (OSError, RuntimeError) as e:
                        log.error("could not start a sandbox: %s", e)
                        break
                    with self._lock:
                        self._starting.append(w)
            failed = self._poll_starting()
            if failed:
                self._failures += 1
                delay = min(MAX_BACKOFF_S, 0.5 * 2 ** self._failures)
                backoff_until = time.monotonic() + delay
            self._wait_for_activity()

    def _poll_starting(self) -> bool:
        failed = False
        with self._lock:
            starting = list(self._starting)
        for w in starting:
            try:
                ok = w.poll_ready()
                if not ok and time.monotonic() - w.started > self.cfg.ready_timeout_s:
                    raise WorkerFailed("not ready in time")
            except WorkerFailed as e:
                log.error("a warm sandbox failed to start: %s", e)
                failed = True
                w.kill()
                with self._lock:
                    self._starting.remove(w)
                continue
            if ok:
                self._failures = 0
                with self._lock:
                    self._starting.remove(w)
                    if self._closed:
                        w.kill()
                    else:
                        self._ready[w.device].append(w)
                        self._changed.notify_all()
        return failed

    def _wait_for_activity(self) -> None:
        with self._lock:
            starting = list(self._starting)
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            for w in starting:
                for fd in w.fds():
                    sel.register(fd, selectors.EVENT_READ)
            # the timeout also lets dead ready workers be noticed and replaced
            sel.select(1.0 if starting else 5.0)
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            for ws in self._ready.values():
                for w in [w for w in ws if not w.alive()]:
                    ws.remove(w)
                    w.kill()
