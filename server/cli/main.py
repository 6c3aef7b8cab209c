"""`askta`: the command group. Each command lives in the module of its group and is
registered here by a plain import, so a broken module fails loudly.

The commands only translate: the work is done by library classes, and domain
errors become a message on stderr and an exit code (server/cli/exit_codes.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from server.cli.backup import backup_command, restore_command
from server.cli.history import kb_group
from server.cli.importer import import_command
from server.cli.kb import ask, check, evaluate_cmd, index, schema
from server.cli.sandbox import sandbox_group
from server.cli.serve import serve
from server.cli.users import user_group
from server.cli.worker import worker_command
from server.config import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--kb", "kb_dir", type=click.Path(path_type=Path), help="Knowledge-base folder (ASKTA_KB_DIR)."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Index and database folder (ASKTA_DATA_DIR).",
)
@click.option("--model", help="Embedding model directory (ASKTA_MODEL); empty: the bundled MiniLM.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def cli(
    ctx: click.Context, kb_dir: Path | None, data_dir: Path | None, model: str | None, verbose: bool
) -> None:
    """askta: a course Q&A knowledge base with a chatbot in front of it.

    \b
    Example:
      askta check && askta index && askta ask "why do we need relu"
      askta serve --port 8000
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings()
    except Exception as e:  # a bad ASKTA_* variable: say which
        raise click.UsageError(f"invalid setting: {e}") from None
    changes = {"kb_dir": kb_dir, "data_dir": data_dir, "model": model}
    ctx.obj = {
        "settings": settings.model_copy(update={k: v for k, v in changes.items() if v is not None})
    }


for command in (serve, index, ask, evaluate_cmd, check, schema, sandbox_group, import_command,
                user_group, backup_command, restore_command, kb_group, worker_command):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli(prog_name="askta")


if __name__ == "__main__":  # python -m server.cli.main, as the askta script
    main()
