"""`askta backup FILE` and `askta restore FILE`: a whole server (database, kb/ with its
git history, index manifest) in one tar.gz, and back into an empty place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from server.backup import BackupError, NotEmpty, Report, backup, restore
from server.cli.common import fail, settings_of
from server.cli.exit_codes import ExitCode

JSON_FLAG = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _print(report: Report, verb: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"{verb} {report.archive}:")
    for line in report.lines():
        click.echo(f"  {line}")


def _database_failed(e: SQLAlchemyError) -> NoReturn:
    fail(f"the database failed: {e.__class__.__name__}: {str(e).splitlines()[0]}",
         ExitCode.FAILED)


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@JSON_FLAG
@click.pass_context
def backup_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Write the database, kb/ (with its git history) and the index manifest to FILE.

    FILE is a new tar.gz (0600: it holds password hashes). A server may keep running:
    the database is read in one snapshot, kb/ under the KB's write lock.

    \b
    Example:
      askta backup /backups/askta-$(date +%F).tar.gz
    """
    try:
        report = backup(settings_of(ctx), file)
    except BackupError as e:
        fail(str(e), ExitCode.USAGE)
    except SQLAlchemyError as e:
        _database_failed(e)
    _print(report, "wrote", as_json)


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@JSON_FLAG
@click.pass_context
def restore_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Restore a backup FILE into an empty data dir, KB folder and database.

    Refuses (exit 5) if any of them holds something. The database (SQLite in the data
    dir, or ASKTA_DATABASE_URL) gets the schema first, then the rows.

    \b
    Example:
      askta --data-dir /srv/askta/data --kb /srv/askta/kb restore askta-2025-05-01.tar.gz
    """
    try:
        report = restore(settings_of(ctx), file)
    except NotEmpty as e:
        fail(str(e), ExitCode.NOT_EMPTY)
    except BackupError as e:
        fail(str(e), ExitCode.USAGE)
    except SQLAlchemyError as e:
        _database_failed(e)
    _print(report, "restored", as_json)
