"""What every command shares: settings from flags, domain errors as exit codes (`fail`,
`handle_errors`), the searcher over the settings' knowledge base."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from indexer.embedders import EmbedderError
from indexer.kb import EntryNotFound, KnowledgeBase, KnowledgeBaseError
from indexer.search import Searcher
from server.cli.exit_codes import ExitCode
from server.config import SecretKeyError, Settings
from server.retrieval import open_searcher
from server.sandbox.errors import DeviceUnavailable, SandboxError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: ExitCode, details: Iterable[object] = ()) -> NoReturn:
    """End the command the one way every command does: `error: <message>` on stderr, each
    of `details` on its own indented line, and the exit status `code`."""
    click.echo(f"error: {message}", err=True)
    for detail in details:
        click.echo(f"  {detail}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Map domain errors to a message and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KnowledgeBaseError as e:
            fail(f"the knowledge base has {len(e.problems)} problem(s):", ExitCode.INVALID_KB,
                 e.problems)
        except EntryNotFound as e:
            fail(str(e), ExitCode.INVALID_KB)
        except DeviceUnavailable as e:  # a device this machine lacks: the caller's choice
            fail(str(e), ExitCode.USAGE)
        except (EmbedderError, SandboxError, SecretKeyError) as e:
            fail(str(e), ExitCode.UNAVAILABLE)

    return wrapper  # type: ignore[return-value]


def settings_of(ctx: click.Context) -> Settings:
    """The settings the `askta` group read (environment and global flags)."""
    obj = ctx.find_root().obj or {}
    settings: Settings | None = obj.get("settings")
    return settings or Settings()


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the environment, with CLI flags on top."""
    base = settings_of(ctx)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=changes) if changes else base


def open_searcher_for(settings: Settings, progress: bool = False) -> Searcher:
    """The searcher over the settings' knowledge base; a progress bar while it embeds."""
    kb = KnowledgeBase.load(settings.kb_dir)
    bar: Any = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="entry", desc="embedding", file=sys.stderr)
        bar.update(done - bar.n)

    searcher = open_searcher(settings, kb, progress=report if progress else None)
    if bar is not None:
        bar.close()
    return searcher
