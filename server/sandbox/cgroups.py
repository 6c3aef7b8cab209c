"""cgroup memory and pids limits for each sandbox, where the host lets us create cgroups.

rlimits are per process, so a demo that forks can multiply its address-space allowance;
a cgroup caps the whole sandbox. cgroup v2 needs the memory and pids controllers
delegated to the server's own cgroup; cgroup v1 needs writable memory and pids
hierarchies (typically: running as root). Anything else: skipped, with a note saying why.
Where the cpu controller is delegated too (v2) or writable (v1), each sandbox's cgroup
gets the lowest CPU weight and the idle policy as a group. That matters beyond the
processes' own nice 19 and SCHED_IDLE: bwrap starts each sandbox in a new session, and
where the kernel groups tasks by session (CONFIG_SCHED_AUTOGROUP, for processes in the
root cpu cgroup), every session is scheduled as one entity of normal weight, so a
sandbox in its own session would get as much CPU as the whole web server and wake-ups
of the server would wait behind it. A cgroup takes the sandbox out of autogrouping.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()
_runners = itertools.count()


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _runner_dir_name() -> str:
    # one directory per runner: a process may hold several (tests, `check --demos`)
    return f"askta-{os.getpid()}-{next(_runners)}"


def _remove_stale(where: Path) -> None:
    """Remove empty cgroups left by an askta server that was killed (its pid is gone)."""
    try:
        parents = list(where.glob("askta-*"))
    except OSError:
        return
    for parent in parents:
        pid = parent.name.removeprefix("askta-").split("-")[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        try:  # another process starting now may be removing it too
            children = [c for c in parent.iterdir() if c.is_dir()]
        except OSError:
            continue
        for child in children:
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


@dataclass
class Cgroups:
    """Where worker cgroups are created: one parent dir per controller (v1) or one (v2)."""

    version: int
    parents: dict[str, Path]  # "memory"/"pids" -> parent dir; v2: both the same dir

    @classmethod
    def detect(cls) -> tuple[Cgroups | None, str]:
        """The usable hierarchy and a sentence for the log, or None and why not."""
        try:
            own = _own_paths()
        except OSError as e:
            return None, f"cgroup limits off: cannot read /proc/self/cgroup ({e})"
        if (ROOT / "cgroup.controllers").exists():  # pure v2
            return cls._detect_v2(ROOT / own.get("", "/").lstrip("/"))
        mem, pids = ROOT / "memory", ROOT / "pids"
        if (mem / "tasks").exists() and (pids / "tasks").exists():
            name = _runner_dir_name()
            parents = {
                "memory": mem / own.get("memory", "/").lstrip("/") / name,
                "pids": pids / own.get("pids", "/").lstrip("/") / name,
            }
            try:
                for p in parents.values():
                    _remove_stale(p.parent)
                    p.mkdir(exist_ok=True)
            except OSError as e:
                return None, f"cgroup limits off: cgroup v1 is not writable here ({e})"
            note = f"cgroup v1 memory and pids limits under {parents['memory']}"
            cpu = _v1_cpu_parent(ROOT / "cpu", own.get("cpu", "/"), name)
            if cpu is not None:
                parents["cpu"] = cpu
                note += f", lowest CPU weight under {cpu}"
            return cls(1, parents), note
        return None, "cgroup limits off: no cgroup v2 with memory+pids and no cgroup v1 here"

    @classmethod
    def _detect_v2(cls, own: Path) -> tuple[Cgroups | None, str]:
        try:
            enabled = (own / "cgroup.subtree_control").read_text().split()
        except OSError as e:
            return None, f"cgroup limits off: cannot read {own}/cgroup.subtree_control ({e})"
        if not {"memory", "pids"} <= set(enabled):
            return None, (f"cgroup limits off: the memory and pids controllers are not "
                          f"delegated to {own} (under systemd: Delegate=yes)")
        parent = own / _runner_dir_name()
        _remove_stale(own)
        # the cpu controller, where delegated too: each sandbox gets the lowest CPU weight
        controllers = "+memory +pids" + (" +cpu" if "cpu" in enabled else "")
        try:
            parent.mkdir(exist_ok=True)
            (parent / "cgroup.subtree_control").write_text(controllers)
        except OSError as e:
            return None, f"cgroup limits off: cannot create {parent} ({e})"
        _lowest_cpu_weight(parent)
        return cls(2, {"memory": parent, "pids": parent}), f"cgroup v2 limits under {parent}"

    def create(self, memory_bytes: int, max_tasks: int) -> WorkerCgroup:
        """A new leaf cgroup (or pair, for v1) with the limits written, and on v1 a leaf
        in the cpu hierarchy where there is one (best effort: the limits hold without)."""
        name = f"w{next(_counter)}"
        cg = WorkerCgroup(self.version, [])
        try:
            for d in sorted({p / name for kind, p in self.parents.items() if kind != "cpu"}):
                d.mkdir()
                cg.dirs.append(d)
            if self.version == 2:
                d = cg.dirs[0]
                (d / "memory.max").write_text(str(memory_bytes))
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(max_tasks))
                _lowest_cpu_weight(d)
            else:
                mem = self.parents["memory"] / name
                (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
                (self.parents["pids"] / name / "pids.max").write_text(str(max_tasks))
        except OSError:
            cg.kill_and_remove()
            raise
        if "cpu" in self.parents:
            with contextlib.suppress(OSError):  # the runner's directory was taken away
                (self.parents["cpu"] / name).mkdir()
                cg.cpu = self.parents["cpu"] / name
                _lowest_cpu_weight(cg.cpu)
        return cg

    def remove(self, wait_s: float = 3.0) -> None:
        """Remove the parent dirs once every worker cgroup is gone (reapers may lag)."""
        deadline = time.monotonic() + wait_s
        for p in set(self.parents.values()):
            while True:
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


@dataclass
class WorkerCgroup:
    """The cgroup(s) of one sandbox."""

    version: int
    dirs: list[Path]  # where the memory and pids limits are
    cpu: Path | None = None  # v1: the leaf in the cpu hierarchy, where there is one

    def add(self, pids: list[int]) -> None:
        """Move processes in (parents first; all their threads move with them): into the
        limits' cgroups, then, best effort, into the cpu one."""
        for d in self.dirs:
            for pid in pids:
                (d / "cgroup.procs").write_text(str(pid))
        if self.cpu is not None:
            try:
                for pid in pids:
                    (self.cpu / "cgroup.procs").write_text(str(pid))
            except OSError:  # the limits hold; the processes' nice and SCHED_IDLE remain
                pass

    def oom_killed(self) -> bool:
        """Whether the kernel killed something here for running out of memory."""
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    text = (d / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip() not in ("", "0"):
                        return True
        return False

    def kill_and_remove(self, wait_s: float = 2.0) -> None:
        """SIGKILL whatever is left inside, then remove the directories."""
        deadline = time.monotonic() + wait_s
        for d in [*self.dirs, *([self.cpu] if self.cpu is not None else [])]:
            if (d / "cgroup.kill").exists():
                try:
                    (d / "cgroup.kill").write_text("1")
                except OSError:
                    pass
            while True:
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    d.rmdir()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)


def _v1_cpu_parent(hierarchy: Path, own: str, name: str) -> Path | None:
    """cgroup v1: the runner's directory in the cpu hierarchy, created, or None where
    there is no writable cpu controller (the memory and pids limits hold without it)."""
    if not (hierarchy / "tasks").exists():
        return None
    parent = hierarchy / own.lstrip("/") / name
    try:
        _remove_stale(parent.parent)
        parent.mkdir(exist_ok=True)
    except OSError:
        return None
    _lowest_cpu_weight(parent)
    return parent


def _lowest_cpu_weight(d: Path) -> None:
    """The cpu controller: the smallest weight (v2: 1 of 10000; v1: 2 shares of 1024)
    and the idle policy for the whole cgroup, on top of the processes' own nice 19 and
    SCHED_IDLE. Set on the runner's directory as well as on each sandbox's: the
    scheduler weighs the runner's directory against the web server's processes, and an
    idle leaf under a directory of normal weight would not yield to them."""
    for name, value in (("cpu.weight", "1"), ("cpu.shares", "2"), ("cpu.idle", "1")):
        path = d / name
        if path.exists():
            with contextlib.suppress(OSError):  # best effort: nice and SCHED_IDLE remain
                path.write_text(value)
