"""One sandbox process: started, warmed up, given one demo, streamed, and killed."""

from __future__ import annotations

import base64
import codecs
import json
import logging
import os
import selectors
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from server.sandbox.bwrap import build_launch, spawn
from server.sandbox.cgroups import Cgroups, WorkerCgroup
from server.sandbox.models import Event, Limits, RunResult, SandboxConfig, Status

log = logging.getLogger(__name__)

FRAME = struct.Struct(">cI")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_LINE_CHARS = 4096  # longer lines are split, so one event never holds megabytes
READ_SIZE = 65536
# A worker is only killed once what it held was given back; pids left after that
# grace are reported by the tests, not waited for forever.
KILL_WAIT_S = 5.0


class WorkerFailed(Exception):
    """The sandbox died or misbehaved before it could run anything (say why)."""


class FrameReader:
    """Parses `kind(1) length(4) payload` frames; refuses payloads over `max_payload`."""

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self.buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield complete frames; raises ValueError on a frame announced too large."""
        self.buf += data
        while len(self.buf) >= FRAME.size:
            kind, length = FRAME.unpack_from(self.buf)
            if length > self.max_payload:
                raise ValueError(f"a frame of {length} bytes (the limit is {self.max_payload})")
            if len(self.buf) < FRAME.size + length:
                return
            payload = bytes(self.buf[FRAME.size:FRAME.size + length])
            del self.buf[:FRAME.size + length]
            yield kind, payload


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", data[16:24])


MAX_TITLE_CHARS = 300


def png_title(data: bytes) -> str:
    """The text of a PNG's `Title` tEXt chunk (the harness puts the figure's titles and axis
    labels there), or "". The PNG comes from demo code: only a bounded walk over the
    chunks before the image data, Latin-1 text, control characters dropped."""
    pos, end = len(PNG_SIGNATURE), min(len(data), 1 << 20)
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Title\x00"):
            text = body[6:].decode("latin-1")
            return "".join(c for c in text if c.isprintable())[:MAX_TITLE_CHARS].strip()
        if kind in (b"IDAT", b"IEND") or len(body) < length:
            return ""
        pos += 12 + length
    return ""


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            kids += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass
    return kids


def descendants(pid: int) -> list[int]:
    """pid and all its descendants, parents first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += _children(p)
    return out


class Worker:
    """A bwrap sandbox whose harness has (or will have) imported torch and waits for code."""

    def __init__(self, proc: subprocess.Popen[bytes], ctl_fd: int, device: str) -> None:
        self.proc = proc
        self.ctl_fd = ctl_fd
        self.device = device
        self.started = time.monotonic()
        self.ready = False
        self.ready_info: dict[str, object] = {}
        self.ready_s: float | None = None
        self.cgroup: WorkerCgroup | None = None
        self._frames = FrameReader(max_payload=4096)
        self._early: dict[int, bytearray] = {}
        self.used = False
        self._killed = False
        for f in (proc.stdout, proc.stderr):
            assert f is not None
            os.set_blocking(f.fileno(), False)
            self._early[f.fileno()] = bytearray()
        os.set_blocking(ctl_fd, False)

    @classmethod
    def launch(cls, cfg: SandboxConfig, bwrap_path: str, device: str) -> Worker:
        """Start a sandbox. Call it from a thread that outlives the worker: bwrap's
        --die-with-parent fires when the *thread* that forked it exits."""
        ctl_r, ctl_w = os.pipe()
        try:
            launch = build_launch(cfg, device, ctl_w, bwrap_path)
            proc = spawn(cfg, launch, [ctl_w])
        except BaseException:
            os.close(ctl_r)
            raise
        finally:
            os.close(ctl_w)
        return cls(proc, ctl_r, device)

    # --- start-up ---------------------------------------------------------------------
    def fds(self) -> list[int]:
        """What to select on while it starts: the control pipe, stdout and stderr."""
        return [self.ctl_fd, *self._early]

    def poll_ready(self) -> bool:
        """Read what is there without blocking; True once the ready frame came.
        Raises WorkerFailed if the sandbox died or wrote something else first."""
        if self.ready:
            return True
        self._drain_early()
        try:
            data = os.read(self.ctl_fd, READ_SIZE)
        except BlockingIOError:
            return False
        if not data:
            raise WorkerFailed(self._death_note())
        try:
            for kind, payload in self._frames.feed(data):
                if kind != b"R":
                    raise WorkerFailed(f"unexpected frame {kind!r} before ready")
                self.ready = True
                self.ready_s = time.monotonic() - self.started
                self.ready_info = json.loads(payload)
        except ValueError as e:
            raise WorkerFailed(f"bad ready frame: {e}") from None
        return self.ready

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the harness is ready (WorkerFailed on death or timeout)."""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.ctl_fd, selectors.EVENT_READ)
            for fd in self._early:
                sel.register(fd, selectors.EVENT_READ)
            while not self.poll_ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerFailed(f"the sandbox was not ready after {timeout_s:.0f} s")
                sel.select(min(left, 1.0))

    def _drain_early(self) -> None:
        # warm-up chatter (warnings) is kept only to explain a failed start
        for fd, buf in self._early.items():
            try:
                while chunk := os.read(fd, READ_SIZE):
                    buf += chunk
                    del buf[:-8192]
            except (BlockingIOError, OSError):
                pass

    def _death_note(self) -> str:
        try:
            rc = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            rc = None
        self._drain_early()
        err = bytes(self._early[self.proc.stderr.fileno()]).decode(  # type: ignore[union-attr]
            "utf-8", "replace").strip()
        return f"the sandbox exited with status {rc} before it was ready: {err[-2000:]}"

    def alive(self) -> bool:
        """Still running (a ready worker may have been killed while it waited)."""
        return self.proc.poll() is None

    # --- the run ----------------------------------------------------------------------
    def run(self, code: str, limits: Limits, filename: str, cgroups: Cgroups | None,
            cancel: threading.Event | None = None) -> Iterator[Event]:
        """Send the code and stream events until done. Kills the sandbox at the end, when
        `cancel` is set, or when the consumer stops iterating."""
        self.used = True
        try:
            yield from self._run(code, limits, filename, cgroups, cancel)
        finally:
            self.kill(wait=False)

    def _run(self, code: str, limits: Limits, filename: str, cgroups: Cgroups | None,
             cancel: threading.Event | None) -> Iterator[Event]:
        if cgroups is not None:
            # the harness is blocked on stdin, so nothing has forked yet: all that
            # runs the demo is in this tree, and new allocations are charged here
            try:
                self.cgroup = cgroups.create(limits.memory_mb * 1024 * 1024,
                                             limits.max_processes + 32)
                self.cgroup.add(descendants(self.proc.pid))
            except OSError as e:  # the rlimits still hold; the host took cgroups away
                log.warning("no cgroup for this run: %s", e)
        header = json.dumps({**asdict(limits), "filename": filename}) + "\n"
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(header.encode() + code.encode("utf-8"))
            self.proc.stdin.close()
        except OSError as e:
            raise WorkerFailed(f"the sandbox went away before the run: {e}") from None
        t0 = time.monotonic()
        deadline = t0 + limits.timeout_s
        out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        images: list[dict[str, str]] = []
        total = 0
        truncated = False
        stopped: Status | None = None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        streams = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in streams}
        pending = {fd: "" for fd in streams}
        frames = FrameReader(max_payload=limits.max_image_bytes)
        image_budget = 2 * limits.max_images * (limits.max_image_bytes + FRAME.size)
        image_bytes = 0
        dropped_note = False
        exit_status: int | None = None

        def notice(text: str) -> Event:
            line = f"[sandbox] {text}\n"
            out["stderr"].append(line)
            return Event("stderr", line)

        def lines(fd: int, text: str, final: bool) -> Iterator[Event]:
            buf = pending[fd] + text
            while True:
                cut = buf.find("\n")
                if cut < 0 and len(buf) < MAX_LINE_CHARS and not (final and buf):
                    break
                if cut < 0 or cut >= MAX_LINE_CHARS:
                    cut = min(len(buf), MAX_LINE_CHARS) - 1
                piece, buf = buf[:cut + 1], buf[cut + 1:]
                out[streams[fd]].append(piece)
                yield Event(streams[fd], piece)  # type: ignore[arg-type]
                if not buf:
                    break
            pending[fd] = buf

        sel = selectors.DefaultSelector()
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(self.ctl_fd, selectors.EVENT_READ)
        try:
            exited_at: float | None = None
            while sel.get_map():
                now = time.monotonic()
                if cancel is not None and cancel.is_set():
                    stopped = "killed"
                    yield notice("run cancelled")
                    break
                if now >= deadline:
                    stopped = "timeout"
                    yield notice(f"time limit of {limits.timeout_s:g} s reached: run stopped")
                    break
                if exited_at is None and self.proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > 0.5:
                    break  # the demo is over; whatever still holds a pipe is killed below
                # once the exit status came, only drain what is already in the pipes
                # (bwrap still holds them open while it tears the sandbox down)
                ready = sel.select(0 if exit_status is not None else min(deadline - now, 0.25))
                if exit_status is not None and not any(k.fd in streams for k, _ in ready):
                    break
                for key, _ in ready:
                    fd = key.fd
                    try:
                        data = os.read(fd, READ_SIZE)
                    except BlockingIOError:
                        continue
                    if fd == self.ctl_fd:
                        if not data:
                            sel.unregister(fd)
                            continue
                        image_bytes += len(data)
                        try:
                            if image_bytes > image_budget:
                                raise ValueError(f"over {image_budget} bytes of frames")
                            for kind, payload in frames.feed(data):
                                if kind == b"X" and payload.isdigit() and len(payload) < 4:
                                    # the demo finished; forging this only ends it sooner
                                    exit_status = int(payload)
                                    exited_at = exited_at or time.monotonic()
                                elif kind != b"I" or not payload.startswith(PNG_SIGNATURE):
                                    yield notice("a figure frame that is not a PNG was dropped")
                                elif len(images) >= limits.max_images:
                                    if not dropped_note:
                                        dropped_note = True
                                        yield notice(f"more than {limits.max_images} figures: "
                                                     "the rest were dropped")
                                else:
                                    image = {"mime": "image/png",
                                             "data_base64": base64.b64encode(payload).decode(),
                                             "title": png_title(payload)}
                                    images.append(image)
                                    yield Event("image", image)
                        except ValueError as e:
                            stopped = "killed"
                            yield notice(f"figure stream refused ({e}): run stopped")
                            break
                        continue
                    if not data:
                        sel.unregister(fd)
                        yield from lines(fd, decoders[fd].decode(b"", final=True), True)
                        continue
                    if total + len(data) > limits.max_output_bytes:
                        data = data[:max(0, limits.max_output_bytes - total)]
                        truncated = True
                    total += len(data)
                    yield from lines(fd, decoders[fd].decode(data), truncated)
                    if truncated:
                        stopped = "killed"
                        yield notice(f"output limit of {limits.max_output_bytes} bytes "
                                     "reached: run stopped")
                        break
                if stopped:
                    break
        finally:
            sel.close()
        for fd in streams:  # a last line without a newline
            yield from lines(fd, "", True)
        if stopped is None and exit_status is None:
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stopped = "timeout"
                yield notice(f"time limit of {limits.timeout_s:g} s reached: run stopped")
        rc = None
        if stopped is None:
            rc = exit_status if exit_status is not None else self.proc.poll()
        status: Status
        if stopped is not None:
            status = stopped
        elif rc == 0:
            status = "ok"
        elif rc in (128 + signal.SIGXCPU, -signal.SIGXCPU):
            status = "timeout"
            yield notice(f"CPU time limit of {limits.cpu_s} s reached")
        elif self.cgroup is not None and self.cgroup.oom_killed():
            status = "killed"
            yield notice(f"memory limit of {limits.memory_mb} MB reached")
        else:
            status = "error"
        result = RunResult(
            status=status, exit_code=rc, stdout="".join(out["stdout"]),
            stderr="".join(out["stderr"]), images=images,
            device="cuda" if self.device == "cuda" else "cpu",
            duration_ms=int((time.monotonic() - t0) * 1000), truncated=truncated,
        )
        yield Event("done", result.to_dict())

    # --- the end ----------------------------------------------------------------------
    def kill(self, wait: bool = True) -> None:
        """Kill the whole sandbox: its pid-namespace init (the kernel then kills every
        process in the namespace), bwrap's process group, and what is left in its cgroup.
        With wait=False the signals go now and the reaping happens in a helper thread."""
        if self._killed:
            return
        self._killed = True
        if self.proc.returncode is None:
            # not reaped yet, so these pids are still bwrap's children, not reused ones
            for pid in _children(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        if wait:
            self._reap()
        else:
            threading.Thread(target=self._reap, name="sandbox-reap", daemon=True).start()

    def _reap(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_and_remove()
            self.cgroup = None
        try:
            self.proc.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if self.ctl_fd >= 0:
            os.close(self.ctl_fd)
            self.ctl_fd = -1
