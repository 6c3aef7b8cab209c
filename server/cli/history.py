"""`askta kb log [ID]`: the knowledge base's git history, as the server commits it."""

from __future__ import annotations

import json
import re

import click

from indexer.kb import EntryNotFound
from indexer.schema import ID_PATTERN
from server.cli.common import fail, handle_errors, settings_of
from server.cli.exit_codes import ExitCode
from server.history import KbRepo


@click.group("kb")
def kb_group() -> None:
    """The knowledge base's history (kb/ is a git working copy; ASKTA_KB_GIT)."""


@kb_group.command("log")
@click.argument("entry_id", required=False)
@click.option("-n", "--max-count", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many commits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@handle_errors
def log_command(ctx: click.Context, entry_id: str | None, max_count: int, as_json: bool) -> None:
    """The commits that changed kb/ (or one entry): sha, date, author, message.

    \b
    Example:
      askta kb log                      # every change to kb/, newest first
      askta kb log why-nonlinearities   # the changes to one entry
    """
    settings = settings_of(ctx)
    if entry_id is not None and not re.match(ID_PATTERN, entry_id):
        fail(f"{entry_id!r} is not an entry id (lowercase words joined by hyphens)",
             ExitCode.USAGE)
    repo = KbRepo.find(settings.kb_dir)
    if repo is None:
        fail(f"{settings.kb_dir} has no history yet: the server creates a git repository "
             "there on its first start (ASKTA_KB_GIT=auto)", ExitCode.FAILED)
    try:
        commits = repo.log(f"{entry_id}.yaml" if entry_id else None, max_count)
    finally:
        repo.close()
    if entry_id and not commits and not (settings.kb_dir / f"{entry_id}.yaml").exists():
        raise EntryNotFound(entry_id)
    if as_json:
        click.echo(json.dumps([{"sha": c.sha, "time": c.time.isoformat(), "author": c.author,
                                "message": c.message} for c in commits], indent=2))
        return
    for c in commits:
        click.echo(f"{c.sha7}  {c.time.strftime('%Y-%m-%d %H:%M')}  {c.author}  {c.summary}")
