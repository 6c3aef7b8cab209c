"""`askta user`: add TAs and instructors, issue API tokens, list who has access."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from server.accounts import Accounts
from server.cli.exit_codes import ExitCode
from server.config import Settings
from server.store import ROLES, Store, StoreError


@contextmanager
def _accounts(ctx: click.Context) -> Iterator[Accounts]:
    settings: Settings = (ctx.obj or {}).get("settings") or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    try:
        store.migrate()
        yield Accounts(store)
    except StoreError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(ExitCode.FAILED)
    finally:
        store.close()


@click.group("user")
def user_group() -> None:
    """Manage TA and instructor accounts.

    \b
    Example:
      askta user add alice --role ta        # prompts for a password
      askta user token alice                # prints an API token on its last line
    """


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="ta: review the queue; instructor: also edit and publish entries.")
@click.option("--password", default=None,
              help="The password (prompted for, hidden, when absent).")
@click.pass_context
def add_user(ctx: click.Context, name: str, role: str, password: str | None) -> None:
    """Create a TA or instructor account."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.BadParameter("the password is empty", param_hint="--password")
    with _accounts(ctx) as accounts:
        accounts.add(name, role, password)
    click.echo(f"added {role} {name!r}; they can log in at /login")


@user_group.command("password")
@click.argument("name")
@click.option("--password", default=None, help="The new password (prompted for when absent).")
@click.pass_context
def set_password(ctx: click.Context, name: str, password: str | None) -> None:
    """Change a user's password."""
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _accounts(ctx) as accounts:
        accounts.set_password(name, password)
    click.echo(f"password of {name!r} changed")


@user_group.command("token")
@click.argument("name")
@click.pass_context
def issue_token(ctx: click.Context, name: str) -> None:
    """Issue an API token (replaces the previous one); printed on the last line."""
    with _accounts(ctx) as accounts:
        token = accounts.issue_token(name)
    click.echo(f"API token for {name!r} (shown once; send it as 'Authorization: Bearer ...'):",
               err=True)
    click.echo(token)


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def list_users(ctx: click.Context, as_json: bool) -> None:
    """List accounts: name, role, whether they have a password and a token."""
    with _accounts(ctx) as accounts:
        rows = [{"name": u.name, "role": u.role, "password": bool(u.password_hash),
                 "token": bool(u.token_hash), "created_at": u.created_at.isoformat()}
                for u in accounts.store.users()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no users yet: add one with `askta user add NAME --role ta`")
    for r in rows:
        flags = ", ".join(k for k in ("password", "token") if r[k]) or "no login"
        click.echo(f"{r['name']:<20} {r['role']:<11} {flags}")
