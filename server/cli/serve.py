"""`askta serve`: the web app and JSON API under uvicorn."""

from __future__ import annotations

from typing import Any

import click

from server.cli.common import handle_errors, settings_from


@click.command()
@click.option("--host", help="Address to listen on (ASKTA_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (ASKTA_PORT, default 8000).")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, reload: bool) -> None:
    """Serve the chat page and the JSON API.

    \b
    Example:
      askta serve --host 0.0.0.0 --port 8000
    """
    import os

    import uvicorn

    from indexer.kb import KnowledgeBase
    from server.datadir import make_private
    from server.web.sessions import secret_key

    settings = settings_from(ctx, host=host, port=port)
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
    click.echo(
        f"askta: serving {settings.kb_dir} on http://{settings.host}:{settings.port}", err=True
    )
    # uvicorn rewrites the client address from X-Forwarded-For by default (for peers in
    # 127.0.0.1): only when the proxies are trusted, and then only from those proxies.
    proxy: dict[str, Any] = {"proxy_headers": settings.trust_proxy_headers}
    if settings.trust_proxy_headers:
        proxy["forwarded_allow_ips"] = settings.trusted_proxies
    uvicorn.run(
        "server.web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        log_level="info",
        **proxy,
    )
