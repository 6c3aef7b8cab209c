"""The program each sandbox starts with: `python -c <this source> CTL_FD DEVICE MODE`.

It imports torch, torch._dynamo, numpy and matplotlib, warms the autograd and optimizer
path (and CUDA on a GPU worker), then writes a ready frame and waits. The server sends
one JSON line of limits followed by the demo's code and closes stdin; the harness sets
the rlimits, runs the code as `__main__`, and exits with its status. Figures shown with
`plt.show()` go to the control pipe as length-prefixed PNG frames. One worker, one run.

Only the standard library is imported before the warm-up; nothing from the server.
"""

import io
import json
import linecache
import os
import resource
import struct
import sys
import traceback
import types

FRAME = struct.Struct(">cI")  # kind, payload length
CTL_FD = -1  # the frame pipe: R(eady), I(mage) PNG, X (exit status)


def send_frame(fd: int, kind: bytes, payload: bytes) -> None:
    data = FRAME.pack(kind, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def warm_up(device: str, preload: bool) -> dict:
    """Import and exercise what demos use, so a run starts in milliseconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy  # noqa: F401

    if not preload:  # a bare worker: starts in a fraction of the time, imports on demand
        return {"torch": None, "cuda": False}
    import torch
    import torch._dynamo  # noqa: F401  (the first optimizer step imports it lazily: ~0.9 s)

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    if device == "cuda":
        torch.cuda.init()
        model = model.to("cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, 4, device=device)
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    (x @ x.T).sum().item()  # cuBLAS handle on GPU
    if device == "cuda":
        torch.cuda.synchronize()
    fig = plt.figure()
    plt.plot([0, 1])
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")
    return {"torch": torch.__version__, "cuda": device == "cuda"}


def describe(fig: object) -> str:
    """A sentence from a figure's titles and axis labels: 'Loss by epoch: loss against epoch'."""
    parts = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        parts.append(suptitle.get_text())
    for ax in fig.get_axes():  # type: ignore[attr-defined]
        bits = [ax.get_title()] if ax.get_title() else []
        x, y = ax.get_xlabel(), ax.get_ylabel()
        if x or y:
            bits.append(f"{y or 'values'} against {x or 'index'}")
        if bits:
            parts.append(": ".join(bits))
    return "; ".join(parts)[:300]


def install_show(ctl_fd: int) -> None:
    """Make plt.show() send each open figure as a PNG frame instead of opening a window."""
    import matplotlib.pyplot as plt

    def show(*args: object, **kwargs: object) -> None:
        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            # What the figure shows, for its alt text, in the PNG's Title chunk.
            fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Title": describe(fig)})
            sys.stdout.flush()
            send_frame(ctl_fd, b"I", buf.getvalue())
            plt.close(fig)

    plt.show = show


def set_limits(limits: dict) -> None:
    """rlimits for the demo and everything it starts. CPU counts from now, not from boot."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime) + int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    mem = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    # counted per uid in this sandbox's own user namespace, so workers do not share it
    nproc = int(limits["max_processes"])
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    fsize = int(limits["file_size_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = int(limits["open_files"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def read_request() -> tuple[dict, str]:
    """One JSON line of limits, then the code until EOF; afterwards stdin reads as empty."""
    data = sys.stdin.buffer.read()
    header, _, code = data.partition(b"\n")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return json.loads(header), code.decode("utf-8", "replace")


def print_user_traceback(exc: BaseException, filename: str) -> None:
    """The traceback from the first frame of the demo on; the harness's frames are noise."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)


def exit_status(code: object) -> int:
    """What `python file.py` would exit with for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def main() -> None:
    global CTL_FD
    ctl_fd, device, preload = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "preload"
    CTL_FD = ctl_fd
    info = warm_up(device, preload)
    send_frame(ctl_fd, b"R", json.dumps(info).encode())
    limits, code = read_request()
    filename = str(limits.get("filename") or "demo.py")
    install_show(ctl_fd)
    lines = code.splitlines(keepends=True)
    linecache.cache[filename] = (len(code), None, lines, filename)
    module = types.ModuleType("__main__")
    module.__dict__.update({"__file__": filename, "__builtins__": __builtins__})
    sys.modules["__main__"] = module
    sys.argv = [filename]
    sys.path[0] = os.getcwd()
    status = 0
    set_limits(limits)
    try:
        exec(compile(code, filename, "exec"), module.__dict__)
    except SystemExit as e:
        status = exit_status(e.code)
    except BaseException as e:  # noqa: BLE001  (the demo's own error, reported as Python would)
        print_user_traceback(e, filename)
        status = 1
    finish(status)


def finish(status: int) -> None:
    """Exit as `python demo.py` would, minus the interpreter's teardown of torch (~2 s):
    wait for the demo's non-daemon threads, run atexit handlers, flush, and _exit."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the demo may have closed it
            pass
    # Tell the server the status now: tearing down this process and the sandbox takes
    # ~150 ms the student need not wait for. Then let go of the output pipes.
    try:
        send_frame(CTL_FD, b"X", str(status).encode())
    except OSError:
        pass
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    os._exit(status)


main()
