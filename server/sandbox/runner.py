"""SandboxRunner: the Executor that routes and the CLI call to run a demo."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from server.sandbox.bwrap import build_launch, nvidia_devices, sandbox_uid, spawn
from server.sandbox.cgroups import Cgroups
from server.sandbox.errors import DeviceUnavailable, SandboxBusy, SandboxUnavailable
from server.sandbox.models import Event, Limits, RunResult, SandboxConfig
from server.sandbox.pool import WarmPool
from server.sandbox.worker import Worker, WorkerFailed

log = logging.getLogger(__name__)
NO_CUDA = "this machine has no CUDA GPU; use device 'cpu' or 'auto'"
USERNS_ERRORS = re.compile(r"namespace|uid map|setting up uid|Operation not permitted", re.I)
PROBE = ("import importlib.util, sys; "
         "missing = [m for m in ('torch', 'numpy', 'matplotlib') "
         "if importlib.util.find_spec(m) is None]; "
         "print('missing:' + ','.join(missing) if missing else 'ok')")
CUDA_PROBE = "import torch; print('cuda:' + str(torch.cuda.is_available()))"
TORCH_BUILD = "import torch; print(torch.__version__, torch.version.cuda or 'none')"
CPU_TORCH = ("the sandbox environment's torch ({version}) is a CPU-only build: on a GPU "
             "machine, install a CUDA build with `make sandbox-env SANDBOX_TORCH=cu128` "
             "(docs/workers.md)")
NO_GPU = ("no NVIDIA GPU is visible on this machine (no /dev/nvidia* device): check the "
          "driver with nvidia-smi")


class SandboxRunner:
    """Runs untrusted demo code in bubblewrap sandboxes drawn from a warm pool.

    Thread-safe. At most `max_concurrent` runs execute at once; up to `queue_size` more
    wait for a slot, and beyond that `SandboxBusy` is raised.
    """

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.notes: list[str] = []  # what check() found out, for the startup log
        self._bwrap_path: str | None = None
        self._checked: SandboxUnavailable | bool = False
        self._cuda: bool | None = None
        self._cuda_problem: str | None = None
        self._cgroups: Cgroups | None = None
        self._pool: WarmPool | None = None
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max(1, cfg.max_concurrent))
        self._waiting = 0
        self._running = 0  # runs holding a slot
        self._idle = threading.Condition(self._lock)  # notified when a run ends or stops waiting
        self._draining = False
        self._closed = False
        self._active: set[Worker] = set()

    # --- set-up -------------------------------------------------------------------------
    def check(self) -> None:
        """Prove a sandbox can start here; SandboxUnavailable says why not and what to do."""
        with self._lock:
            if self._checked is True:
                return
            if isinstance(self._checked, SandboxUnavailable):
                raise self._checked
            try:
                self._check()
                self._checked = True
            except SandboxUnavailable as e:
                self._checked = e
                raise

    def _check(self) -> None:
        bwrap = shutil.which(self.cfg.bwrap)
        if bwrap is None:
            raise SandboxUnavailable(
                f"bubblewrap ({self.cfg.bwrap!r}) is not installed: apt-get install bubblewrap "
                "(or `make system-deps`)")
        self._bwrap_path = bwrap
        python = self.cfg.python
        if not python.exists():
            raise SandboxUnavailable(
                f"the sandbox interpreter {python} does not exist: run `make sandbox-env` "
                "or set ASKTA_SANDBOX_PYTHON")
        uid = sandbox_uid(self.cfg)
        for path in [python, Path(os.path.realpath(python))]:
            blocked = _unreadable_part(path, uid)
            if blocked is not None:
                raise SandboxUnavailable(
                    f"the sandbox runs as uid {uid}, which cannot read {blocked} (on the way to "
                    f"{path}); a virtualenv under a private folder such as /root (mode 700) "
                    "will not do: run `make sandbox-env` to build one in /opt/askta, or point "
                    "ASKTA_SANDBOX_PYTHON at a world-readable interpreter")
        out = self._probe("cpu", PROBE, 60)
        if out != "ok":
            raise SandboxUnavailable(
                f"the sandbox interpreter {python} lacks packages ({out.removeprefix('missing:')}):"
                " run `make sandbox-env`")
        if self.cfg.use_cgroups:
            self._cgroups, note = Cgroups.detect()
            self.notes.append(note)
        else:
            self.notes.append("cgroup limits off (ASKTA_SANDBOX_CGROUPS=false)")
        if not nvidia_devices():
            self._cuda = False
        self.notes.append(f"sandbox ready: bwrap {bwrap}, uid {uid}, interpreter {python}")

    def _probe(self, device: str, code: str, timeout_s: float) -> str:
        """Run one line of Python in a sandbox (no harness) and return its stdout."""
        assert self._bwrap_path is not None
        launch = build_launch(self.cfg, device, -1, self._bwrap_path,
                              argv=[str(self.cfg.python), "-s", "-c", code])
        try:
            proc = spawn(self.cfg, launch, [])
        except OSError as e:
            raise SandboxUnavailable(f"bwrap could not be started: {e}") from None
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise SandboxUnavailable(f"a test sandbox did not finish in {timeout_s:g} s") from None
        text = err.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            if "disable-userns" in text and ("Unknown option" in text or "unrecognized" in text):
                raise SandboxUnavailable(
                    f"bwrap is too old for --disable-userns (bubblewrap 0.8 or later): {text}")
            if "Can't find source path" in text or "Permission denied" in text:
                raise SandboxUnavailable(
                    f"the sandbox cannot read a path it needs: {text}; run `make sandbox-env` "
                    "so the interpreter lives in a world-readable place")
            if USERNS_ERRORS.search(text):
                raise SandboxUnavailable(
                    f"bwrap cannot create a user namespace here: {text}. Allow unprivileged "
                    "user namespaces (sysctl kernel.unprivileged_userns_clone=1 and "
                    "user.max_user_namespaces > 0; in Docker, a seccomp/AppArmor profile that "
                    "permits them), or run the server on a host that does")
            raise SandboxUnavailable(f"a test sandbox failed (exit {proc.returncode}): {text}")
        return out.decode("utf-8", "replace").strip()

    @property
    def cuda_available(self) -> bool:
        """Whether GPU sandboxes work here (probed once in a sandbox when NVIDIA devices exist)."""
        if self._cuda is None:
            if not nvidia_devices():
                self._cuda = False
            else:
                self.check()
                try:
                    self._cuda = self._probe("cuda", CUDA_PROBE, 120) == "cuda:True"
                except SandboxUnavailable as e:
                    log.error("CUDA does not work in the sandbox: %s", e)
                    self._cuda = False
        return self._cuda

    def cuda_problem(self) -> str | None:
        """Why CUDA runs cannot happen here, or None: the sandbox environment's torch is a
        CPU-only build, no GPU is visible, or CUDA fails inside the sandbox. Found once."""
        if self._cuda_problem is None:
            problems = []
            build = self._torch_build()
            if build is not None and build[1] == "none":
                problems.append(CPU_TORCH.format(version=build[0]))
            if not nvidia_devices():
                problems.append(NO_GPU)
            elif not problems and not self.cuda_available:
                problems.append("CUDA does not work inside the sandbox (the server's log "
                                "says why)")
            self._cuda_problem = "; and ".join(problems)
        return self._cuda_problem or None

    def _torch_build(self) -> tuple[str, str] | None:
        """(torch version, CUDA version or 'none') of the sandbox interpreter, read by
        importing torch outside the sandbox (no demo code runs); None if that fails."""
        try:
            out = subprocess.run([str(self.cfg.python), "-s", "-c", TORCH_BUILD],
                                 capture_output=True, text=True, timeout=120, check=True)
            version, cuda = out.stdout.split()
            return version, cuda
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def start(self) -> None:
        """Check, then start the warm pool and its refill thread (idempotent)."""
        self.check()
        targets = {"cpu": self.cfg.pool_size}
        if self.cfg.gpu_pool_size and self.cuda_available:
            targets["cuda"] = self.cfg.gpu_pool_size
        with self._lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox runner is closed")
            if self._pool is None:
                assert self._bwrap_path is not None
                self._pool = WarmPool(self.cfg, self._bwrap_path, targets)
            pool = self._pool
        pool.start()

    @property
    def pool(self) -> WarmPool | None:
        """The warm pool, once started."""
        return self._pool

    # --- read-only state (for /metrics) and shutdown ------------------------------------------
    @property
    def waiting(self) -> int:
        """Runs waiting for a free slot (the queue's depth)."""
        with self._lock:
            return self._waiting

    @property
    def running(self) -> int:
        """Runs holding a slot: starting, or executing in a sandbox."""
        with self._lock:
            return self._running

    def warm_workers(self) -> dict[str, int]:
        """Ready sandboxes in the warm pool, per device it serves ({} before start)."""
        pool = self._pool
        if pool is None:
            return {}
        return {device: pool.ready_count(device) for device in pool.targets}

    def drain(self, timeout_s: float) -> bool:
        """Refuse new runs and wait up to `timeout_s` for the running and queued ones to
        finish; True if none is left. The pool keeps running: `close` stops it."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            self._draining = True
            while self._running or self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        """Kill every worker; the runner refuses runs afterwards."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        with self._lock:
            active = list(self._active)
        for worker in active:
            worker.kill()
        if self._cgroups is not None:
            self._cgroups.remove()

    def __enter__(self) -> SandboxRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs --------------------------------------------------------------------------
    def resolve_device(self, device: str) -> str:
        """"auto" -> "cuda" or "cpu"; "cuda" without a GPU -> DeviceUnavailable."""
        if device == "auto":
            return "cuda" if self.cuda_available else "cpu"
        if device == "cuda":
            if not self.cuda_available:
                raise DeviceUnavailable(NO_CUDA)
            return "cuda"
        if device == "cpu":
            return "cpu"
        raise DeviceUnavailable(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")

    def stream(self, code: str, device: str = "auto", limits: Limits | None = None,
               filename: str = "demo.py") -> Iterator[Event]:
        """Run `code` and yield stdout/stderr lines, images, then one `done` event."""
        return self._stream(code, device, limits, filename, None)

    def _stream(self, code: str, device: str, limits: Limits | None, filename: str,
                cancel: threading.Event | None) -> Iterator[Event]:
        self.check()
        if self._closed:
            raise SandboxUnavailable("the sandbox runner is closed")
        if self._draining:
            raise SandboxUnavailable("the server is shutting down")
        dev = self.resolve_device(device)
        limits = limits or self.cfg.limits
        self._enter_slot()
        with self._lock:
            self._running += 1
        try:
            for attempt in range(2):
                worker = self._worker(dev)
                started = False
                with self._lock:
                    self._active.add(worker)
                try:
                    for event in worker.run(code, limits, os.path.basename(filename),
                                            self._cgroups, cancel):
                        started = True
                        yield event
                    return
                except WorkerFailed as e:
                    # a worker that died while waiting in the pool is replaced once
                    if started or attempt == 1:
                        raise SandboxUnavailable(f"the sandbox failed: {e}") from None
                    log.warning("retrying on a new sandbox: %s", e)
                finally:
                    with self._lock:
                        self._active.discard(worker)
        finally:
            self._slots.release()
            with self._lock:
                self._running -= 1
                self._idle.notify_all()

    def _enter_slot(self) -> None:
        if self._slots.acquire(blocking=False):
            return
        with self._lock:
            if self._waiting >= self.cfg.queue_size:
                raise SandboxBusy(f"{self.cfg.max_concurrent} demos are running and "
                                  f"{self._waiting} are waiting; try again in a few seconds")
            self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            with self._lock:
                self._waiting -= 1
                self._idle.notify_all()

    def _worker(self, device: str) -> Worker:
        if self._pool is None:
            self.start()
        pool = self._pool
        if pool is None:
            raise SandboxUnavailable("the sandbox runner is closed")
        worker = pool.acquire(device, self.cfg.ready_timeout_s)
        if worker is not None:
            return worker
        try:
            return pool.fresh(device)
        except WorkerFailed as e:
            raise SandboxUnavailable(f"a sandbox failed to start: {e}") from None

    def has_free_runner(self, device: str = "auto") -> bool:
        """Whether a run for `device` would start at once: a free slot and a warm worker
        ready (a hint for pages, which say "waiting for a free runner" otherwise)."""
        try:
            dev = self.resolve_device(device)
        except SandboxUnavailable:
            return False
        except DeviceUnavailable:
            return True  # refused at once, not waiting
        pool = self._pool
        with self._lock:
            busy = len(self._active) >= self.cfg.max_concurrent or self._waiting > 0
        return not busy and pool is not None and pool.ready_count(dev) > 0

    def run(self, code: str, device: str = "auto", limits: Limits | None = None,
            filename: str = "demo.py") -> RunResult:
        """Run `code` to the end and return everything it produced."""
        done: dict[str, Any] | None = None
        for event in self.stream(code, device, limits, filename):
            if event.kind == "done":
                done = event.data
        assert done is not None
        return RunResult(**done)

    async def astream(self, code: str, device: str = "auto", limits: Limits | None = None,
                      filename: str = "demo.py") -> AsyncIterator[Event]:
        """`stream` for asyncio: a thread runs it; closing or cancelling this kills the run."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: Event | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone
                cancel.set()

        def produce() -> None:
            try:
                for event in self._stream(code, device, limits, filename, cancel):
                    put(event)
                    if cancel.is_set():
                        break
            except BaseException as e:  # noqa: BLE001  (handed to the awaiting side)
                put(e)
            finally:
                put(None)

        threading.Thread(target=produce, name="sandbox-run", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()


def _unreadable_part(path: Path, uid: int) -> Path | None:
    """The first directory on the way to `path` that `uid` cannot search (or the file
    itself if it cannot read it), going by mode bits; None if all is readable."""
    if uid == os.geteuid():
        return None if os.access(path, os.R_OK) else path
    parts = [*reversed(path.parents), path]
    for p in parts:
        try:
            st = p.stat()
        except OSError:
            return p
        need = stat.S_IXOTH if p != path else stat.S_IROTH
        if st.st_uid == uid:
            need <<= 6
        elif st.st_gid == uid:  # the sandbox's gid equals its uid
            need <<= 3
        if not st.st_mode & need:
            return p
    return None
