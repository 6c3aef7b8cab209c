"""`askta sandbox run FILE`: one file in a fresh sandbox, its output streamed."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from server.cli.common import handle_errors
from server.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from server.config import Settings
    from server.sandbox import RunResult


def save_image(folder: Path, number: int, image: dict[str, Any]) -> Path:
    """Write figure `number` into `folder` as a new file; never follows a planted symlink
    or overwrites anything (a taken name gets a suffix)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = base64.b64decode(image["data_base64"])
    for attempt in range(100):
        name = f"figure-{number}.png" if attempt == 0 else f"figure-{number}-{attempt}.png"
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path
    raise click.ClickException(f"{folder} already holds 100 copies of figure {number}")


def exit_code_of(result: RunResult) -> int:
    """The exit status `askta sandbox run` ends with: the demo's own when it finished."""
    if result.status == "timeout":
        return ExitCode.TIMEOUT
    if result.status == "killed":
        return ExitCode.KILLED
    return result.exit_code if result.exit_code is not None else 1


@click.group("sandbox")
def sandbox_group() -> None:
    """Run code in the demo sandbox (bubblewrap, no network, capped resources)."""


@sandbox_group.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where torch runs; default: ASKTA_SANDBOX_DEVICE (auto).")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="Wall-clock limit in seconds; default: ASKTA_SANDBOX_TIMEOUT_S.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--save-images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the figures (default: a new temporary folder).")
@handle_errors
def run_command(file: Path, device: str | None, timeout_s: float | None, as_json: bool,
                save_images: Path | None) -> None:
    """Run FILE in a fresh sandbox and stream its output; exit with the demo's status.

    \b
    Example:
      askta sandbox run demos/linear_layers_collapse.py --device cpu --timeout 30
    Exit status: the demo's, 124 on a time limit, 137 when the sandbox stopped it,
    4 when the sandbox cannot run here, 2 for a device this machine lacks.
    """
    from server.config import Settings
    from server.sandbox import DeviceUnavailable, SandboxRunner

    settings = Settings()
    runner = SandboxRunner(_one_shot_config(settings))
    limits = runner.cfg.limits if timeout_s is None else runner.cfg.limits.but(timeout_s=timeout_s)
    figures = 0
    done: dict[str, Any] | None = None
    device = device or settings.sandbox_device
    try:
        if device == "cuda":
            runner.check()
            problem = runner.cuda_problem()
            if problem:
                raise DeviceUnavailable(f"this machine has no CUDA GPU for the sandbox: {problem}")
        for event in runner.stream(file.read_text(encoding="utf-8"), device, limits, file.name):
            if event.kind == "done":
                done = event.data
            elif as_json:
                continue
            elif event.kind == "image":
                figures += 1
                if save_images is None:
                    save_images = Path(tempfile.mkdtemp(prefix="askta-figures-"))
                path = save_image(save_images, figures, event.data)
                from server.sandbox.worker import png_size

                w, h = png_size(base64.b64decode(event.data["data_base64"]))
                click.echo(f"[figure {figures}: {w} x {h} PNG, saved to {path}]", err=True)
            else:
                stream = sys.stdout if event.kind == "stdout" else sys.stderr
                stream.write(event.data)
                stream.flush()
    finally:  # a refusal leaves through handle_errors: 2 for the device, 4 for the sandbox
        runner.close()
    assert done is not None
    from server.sandbox import RunResult

    result = RunResult(**done)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    elif result.status != "ok":
        click.echo(f"[{result.status}, exit {result.exit_code}, {result.duration_ms} ms]", err=True)
    sys.exit(exit_code_of(result))


def _one_shot_config(settings: Settings) -> Any:
    """The settings' sandbox, without a warm pool: one run needs one fresh sandbox."""

    return dataclasses.replace(settings.sandbox_config(), pool_size=0,
                               gpu_pool_size=0)
