"""What every command shares: settings from flags, domain errors as exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from indexer.embedders import EmbedderError
from indexer.kb import EntryNotFound, KnowledgeBaseError
from server.cli.exit_codes import ExitCode
from server.config import SecretKeyError, Settings
from server.sandbox.errors import SandboxError

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Map domain errors to a message and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KnowledgeBaseError as e:
            click.echo(f"error: the knowledge base has {len(e.problems)} problem(s):", err=True)
            for p in e.problems:
                click.echo(f"  {p}", err=True)
            sys.exit(ExitCode.INVALID_KB)
        except EntryNotFound as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(ExitCode.INVALID_KB)
        except (EmbedderError, SandboxError, SecretKeyError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(ExitCode.UNAVAILABLE)

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
