"""`askta worker`: run demos sent by the web servers (ASKTA_EXECUTOR=celery)."""

from __future__ import annotations

import click

from server.cli.common import fail, handle_errors, settings_of
from server.cli.exit_codes import ExitCode


@click.command("worker")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Which queue to serve: `cpu` runs, or `cuda` runs on this machine's GPU.")
@click.option("--pool", "pool", type=click.IntRange(1, 64), default=None,
              help="Runs at once, each with a warm sandbox; default: ASKTA_SANDBOX_POOL_SIZE "
                   "(cpu) or ASKTA_SANDBOX_GPU_POOL_SIZE (cuda).")
@click.pass_context
@handle_errors
def worker_command(ctx: click.Context, device: str, pool: int | None) -> None:
    """Run demos from the `cpu` or `gpu` queue in a warm sandbox pool (Celery, Redis).

    \b
    Example:
      ASKTA_REDIS_URL=redis://10.0.0.5:6379/0 askta worker --device cpu --pool 4
    Needs ASKTA_REDIS_URL. Exit status 2 when `--device cuda` cannot use a GPU here
    (the sandbox's torch has no CUDA, or no GPU is visible), 4 when the sandbox cannot run.
    """
    from server.runs.worker import RunWorker
    from server.sandbox import DeviceUnavailable

    settings = settings_of(ctx)
    if not settings.redis_url:
        raise click.UsageError("set ASKTA_REDIS_URL (e.g. redis://127.0.0.1:6379/0): the "
                               "worker takes runs from Redis")
    size = pool or (settings.sandbox_gpu_pool_size if device == "cuda"
                    else settings.sandbox_pool_size)
    worker = RunWorker(settings.sandbox_config(), device, size, settings.redis_url)
    try:
        worker.check()
    except DeviceUnavailable as e:
        fail(f"askta worker --device {device} cannot start: {e}", ExitCode.USAGE)
    click.echo(f"starting {worker.name}: {size} warm sandbox(es) for {device} runs", err=True)
    worker.start()
    try:
        worker.serve()
    finally:
        worker.close()
