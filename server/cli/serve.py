"""`askta serve`: the web app and JSON API under uvicorn."""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
from typing import Any

import click

from server.cli.common import handle_errors, settings_from
from server.config import Settings


@click.command()
@click.option("--host", help="Address to listen on (ASKTA_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (ASKTA_PORT, default 8000).")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Web processes (ASKTA_WORKERS, default 1); more than one needs PostgreSQL "
                   "(ASKTA_DATABASE_URL).")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, reload: bool,
          workers: int | None) -> None:
    """Serve the chat page and the JSON API.

    \b
    Examples:
      askta serve --host 0.0.0.0 --port 8000
      ASKTA_DATABASE_URL=postgresql+psycopg://askta@db/askta askta serve --workers 4
    """
    import os

    import uvicorn

    from indexer.kb import KnowledgeBase
    from server import logs
    from server.datadir import make_private
    from server.web.sessions import secret_key

    settings = settings_from(ctx, host=host, port=port, workers=workers)
    for line in worker_problems(settings, reload):
        raise click.UsageError(line)
    for line in worker_warnings(settings):
        click.echo(f"warning: {line}", err=True)
    # A broken file does not stop the server (no staff action may): it is skipped, with
    # a warning here naming the file, the line and the field, and listed by /readyz.
    # A missing kb folder is still an error (exit 3).
    kb = KnowledgeBase.load(settings.kb_dir, skip_broken=True)
    if kb.problems:
        click.echo(f"warning: {len(kb.skipped_files())} file(s) of the knowledge base are "
                   "broken and will not be served (run `askta check`):", err=True)
        for p in kb.problems:
            click.echo(f"  {p}", err=True)
    # The data dir 0700 and every file the server creates 0600 (the process keeps the umask);
    # a missing session key is made now, and a bad one is a message here, not a traceback
    # from the server's start-up.
    make_private(settings.data_dir)
    secret_key(settings)
    # The factory reads its settings from the environment in the server process.
    for name, value in (
        ("ASKTA_KB_DIR", settings.kb_dir),
        ("ASKTA_DATA_DIR", settings.data_dir),
        ("ASKTA_MODEL", settings.model),
    ):
        os.environ[name] = str(value)
    if settings.workers > 1:  # each worker imports the factory afresh: same folders, absolute
        os.environ["ASKTA_KB_DIR"] = str(settings.kb_dir.resolve())
        os.environ["ASKTA_DATA_DIR"] = str(settings.data_dir.resolve())
    # Logging as the server will have it (ASKTA_LOG_FORMAT, ASKTA_LOG_LEVEL), from this line on.
    log_config = logs.log_config(settings.log_format, settings.log_level)
    logs.configure(settings.log_format, settings.log_level)
    logging.getLogger("askta").info("serving %s on http://%s:%s%s", settings.kb_dir,
                                    settings.host, settings.port,
                                    f" with {settings.workers} web processes"
                                    if settings.workers > 1 else "")
    # uvicorn rewrites the client address from X-Forwarded-For by default (for peers in
    # 127.0.0.1): only when the proxies are trusted, and then only from those proxies.
    proxy: dict[str, Any] = {"proxy_headers": settings.trust_proxy_headers}
    if settings.trust_proxy_headers:
        proxy["forwarded_allow_ips"] = settings.trusted_proxies
    # SIGTERM: uvicorn stops accepting, waits up to the grace for open requests, then the
    # app's shutdown waits for demo runs and writes the question log (server/web/app.py).
    # Afterwards uvicorn raises the signal again for the handler it found: this one, so a
    # graceful stop ends with exit status 0 rather than death by SIGTERM.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "server.web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        log_config=log_config,
        log_level=settings.log_level.lower(),
        access_log=False,  # askta writes its own access lines, with the request id
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        workers=settings.workers if settings.workers > 1 else None,
        **proxy,
    )


def worker_problems(settings: Settings, reload: bool) -> list[str]:
    """Why `--workers N` cannot run with these settings (empty: it can)."""
    if settings.workers == 1:
        return []
    if reload:
        return ["--reload runs one process: leave out --workers (or --reload)"]
    if not settings.db_url.startswith("postgresql"):
        return [f"--workers {settings.workers} needs PostgreSQL: set ASKTA_DATABASE_URL="
                "postgresql+psycopg://USER@HOST/DB (docs/operations.md, \"Several web "
                "processes\"). With SQLite, serve with one process: its file takes one "
                "writer at a time, and one process already answers questions from several "
                "threads."]
    return []


def worker_warnings(settings: Settings) -> list[str]:
    """What works differently with several processes and these settings."""
    if settings.workers == 1 or settings.redis_url:
        return []
    return ["without ASKTA_REDIS_URL each web process counts rate limits and login attempts "
            "on its own (a client may make N times as many requests); the kb/ change feed "
            "goes through PostgreSQL LISTEN/NOTIFY"]


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)
