"""The bubblewrap command line of one sandbox, and starting it as an unprivileged uid."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from server.sandbox.models import SandboxConfig
from server.sandbox.seccomp import filter_bpf

HARNESS_SOURCE = (Path(__file__).with_name("harness.py")).read_text(encoding="utf-8")

# Of the host's /etc, only what the dynamic linker, fontconfig and time zones read;
# passwd, group, hosts and nsswitch.conf are synthetic (no host accounts, no shadow).
ETC_FILES = ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime")
SCRATCH = "/tmp"
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def sandbox_uid(cfg: SandboxConfig) -> int:
    """The uid bwrap runs as: the configured one when we are root, else ourselves."""
    return cfg.uid if os.geteuid() == 0 else os.geteuid()


def interpreter_dirs(python: Path) -> list[Path]:
    """Directories outside /usr the interpreter needs: its virtualenv and its real prefix."""
    dirs: list[Path] = []
    venv = python.parent.parent
    if (venv / "pyvenv.cfg").exists():
        dirs.append(venv)
    real_prefix = Path(os.path.realpath(python)).parent.parent
    for d in (real_prefix,):
        if not _under(d, Path("/usr")) and not any(_under(d, x) for x in dirs):
            dirs.append(d)
    return dirs


def _under(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


@lru_cache(maxsize=4)
def _font_cache(python: Path) -> tuple[tuple[str, bytes], ...]:
    """matplotlib's font list, built by `make sandbox-env`; copied into each sandbox's
    scratch (where matplotlib may write) so none rebuilds it (~0.5 s)."""
    d = python.parent.parent / "home" / ".cache" / "matplotlib"
    return tuple((f.name, f.read_bytes()) for f in sorted(d.glob("fontlist-*.json")))


def nvidia_devices() -> list[str]:
    """The NVIDIA device nodes of this host (empty without a driver)."""
    return sorted(glob.glob("/dev/nvidia*"))


@dataclass
class Launch:
    """A bwrap argv plus the file descriptors it reads (memfds) and the control pipe."""

    argv: list[str]
    pass_fds: list[int] = field(default_factory=list)

    def close_fds(self) -> None:
        """Close our copies of the descriptors after the child has inherited them."""
        for fd in self.pass_fds:
            os.close(fd)
        self.pass_fds.clear()


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def build_launch(cfg: SandboxConfig, device: str, ctl_fd: int, bwrap_path: str,
                 argv: list[str] | None = None) -> Launch:
    """The full bwrap command line for a worker on `device` ("cpu" or "cuda").

    `ctl_fd` is the write end of the frame pipe (ready signal, images); `argv` replaces the
    harness command (for probes).
    """
    uid = sandbox_uid(cfg)
    launch = Launch(argv=[])
    a = launch.argv
    a += [bwrap_path,
          "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
          "--unshare-uts", "--unshare-cgroup-try", "--disable-userns",
          "--die-with-parent", "--new-session", "--cap-drop", "ALL",
          "--hostname", "sandbox", "--uid", str(uid), "--gid", str(uid)]
    a += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            a += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            a += ["--ro-bind", top, top]
    for path in ETC_FILES:
        if os.path.exists(path):
            a += ["--ro-bind", path, path]
    etc = {
        "/etc/passwd": f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n",
        "/etc/group": f"sandbox:x:{uid}:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    for dest, text in etc.items():
        fd = _memfd("askta-etc", text.encode())
        launch.pass_fds.append(fd)
        a += ["--ro-bind-data", str(fd), dest]
    for d in interpreter_dirs(cfg.python):
        a += ["--ro-bind", str(d), str(d)]
    scratch = str(cfg.scratch_mb * 1024 * 1024)
    a += ["--proc", "/proc", "--dev", "/dev",
          # /dev/shm would otherwise be an uncapped part of /dev's tmpfs
          "--size", scratch, "--tmpfs", "/dev/shm",
          "--size", scratch, "--perms", "1777", "--tmpfs", SCRATCH,
          "--chdir", SCRATCH]
    for name, data in _font_cache(cfg.python):
        fd = _memfd("askta-fonts", data)
        launch.pass_fds.append(fd)
        a += ["--file", str(fd), f"{SCRATCH}/.cache/matplotlib/{name}"]
    # bwrap's root and /dev are tmpfs the sandbox user owns: freeze them, so the only
    # writable places are the size-capped /tmp and /dev/shm
    a += ["--remount-ro", "/dev", "--remount-ro", "/"]
    env = {"PATH": SANDBOX_PATH, "HOME": SCRATCH, "MPLBACKEND": "Agg",
           "PYTHONUNBUFFERED": "1", "ASKTA_DEVICE": device, "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": str(cfg.threads)}
    if device == "cuda":
        for node in nvidia_devices():
            a += ["--dev-bind", node, node]
        if cfg.nvidia_dir.is_dir():
            if not _under(cfg.nvidia_dir, Path("/usr")):
                a += ["--ro-bind", str(cfg.nvidia_dir), str(cfg.nvidia_dir)]
            env["LD_LIBRARY_PATH"] = f"{cfg.nvidia_dir}/lib64:{cfg.nvidia_dir}/lib"
    a.append("--clearenv")
    for k, v in env.items():
        a += ["--setenv", k, v]
    seccomp_fd = _memfd("askta-seccomp", filter_bpf())
    launch.pass_fds.append(seccomp_fd)
    a += ["--seccomp", str(seccomp_fd)]
    a.append("--")
    if argv is None:
        mode = "preload" if cfg.preload_torch or device == "cuda" else "bare"
        argv = [str(cfg.python), "-s", "-c", HARNESS_SOURCE, str(ctl_fd), device, mode]
    a += argv
    return launch


def low_priority() -> list[str]:
    """The command prefix that runs the sandbox at the lowest CPU priority: nice 19, and
    the SCHED_IDLE policy (it gets a core only when nothing else wants it) where `chrt`
    is installed. Whatever a demo or a student's code does, the web server and the chat
    stay responsive; every process in the sandbox inherits both."""
    prefix = []
    chrt = shutil.which("chrt", path=HOST_PATH)
    if chrt:
        prefix += [chrt, "--idle", "0"]
    nice = shutil.which("nice", path=HOST_PATH)
    if nice:
        prefix += [nice, "-n", "19"]
    return prefix


def spawn(cfg: SandboxConfig, launch: Launch, extra_fds: list[int]) -> subprocess.Popen[bytes]:
    """Start bwrap in its own process group, as the unprivileged uid when we are root,
    at the lowest CPU priority (see low_priority).

    The uid switch happens in the forked child before exec (subprocess does it in C,
    so it is safe with threads); bwrap itself never runs as root.
    """
    creds: dict[str, object] = {}
    if os.geteuid() == 0:
        creds = {"user": cfg.uid, "group": cfg.uid, "extra_groups": []}
    try:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [*low_priority(), *launch.argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=[*launch.pass_fds, *extra_fds],
            process_group=0, cwd="/", env={"PATH": HOST_PATH},
            **creds,
        )
    finally:
        launch.close_fds()
