"""`askta user`: add TAs and instructors, set passwords, issue and revoke API tokens, disable
accounts, list who has access. Passwords are read from a hidden prompt or from stdin
(`--password-stdin`), never from the command line (shell history, `ps`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from server.accounts import (
    MAX_TOKEN_DAYS,
    MIN_PASSWORD_CHARS,
    TOKEN_DAYS,
    Accounts,
    WeakPassword,
    check_password,
)
from server.cli.common import fail, settings_of
from server.cli.exit_codes import ExitCode
from server.datadir import private_files
from server.store import ROLES, Store, StoreError, User


@contextmanager
def _accounts(ctx: click.Context) -> Iterator[Accounts]:
    settings = settings_of(ctx)
    # Often the first command on a new server: the database it creates holds password
    # hashes, so it is made as the server would make it (data dir 0700, files 0600).
    with private_files(settings.data_dir):
        store = Store(settings.db_url)
        try:
            store.migrate()
            yield Accounts(store)
        except StoreError as e:
            fail(str(e), ExitCode.FAILED)
        except WeakPassword as e:
            fail(str(e), ExitCode.USAGE)
        finally:
            store.close()


def _password(from_stdin: bool, prompt: str) -> str:
    """The password from one line of stdin, or from a hidden prompt asked twice; a usage
    error when it is shorter than MIN_PASSWORD_CHARS."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
    except WeakPassword as e:
        raise click.UsageError(str(e)) from None
    return password


PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of stdin instead of a hidden prompt "
    f"(at least {MIN_PASSWORD_CHARS} characters).")


@click.group("user")
def user_group() -> None:
    """Manage TA and instructor accounts.

    \b
    Example:
      askta user add alice --role ta        # prompts for a password (twice, hidden)
      pass show askta/bob | askta user add bob --role instructor --password-stdin
      askta user token alice                # prints an API token on its last line
      askta user disable alice              # ends her sessions and token at once
    """


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="ta: review the queue; instructor: also edit and publish entries.")
@PASSWORD_STDIN
@click.pass_context
def add_user(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Create a TA or instructor account.

    The password (at least 12 characters) is asked for twice at a hidden prompt, or read
    from the first line of stdin with --password-stdin.
    """
    password = _password(password_stdin, "Password")
    with _accounts(ctx) as accounts:
        accounts.add(name, role, password)
    click.echo(f"added {role} {name!r}; they can log in at /login")


@user_group.command("password")
@click.argument("name")
@PASSWORD_STDIN
@click.pass_context
def set_password(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Change a user's password; every session they have ends."""
    password = _password(password_stdin, "New password")
    with _accounts(ctx) as accounts:
        accounts.set_password(name, password)
    click.echo(f"password of {name!r} changed; their sessions have ended")


@user_group.command("token")
@click.argument("name")
@click.option("--days", type=click.IntRange(1, MAX_TOKEN_DAYS), default=None,
              help=f"How many days the token works [default: {TOKEN_DAYS}].")
@click.option("--revoke", is_flag=True, help="Remove the user's token instead: it stops "
              "working at once.")
@click.pass_context
def issue_token(ctx: click.Context, name: str, days: int | None, revoke: bool) -> None:
    """Issue an API token that expires after --days (default 90), replacing the previous
    one; printed on the last line. An expired token gets 401: issue a new one."""
    if revoke:
        if days is not None:
            raise click.UsageError("--revoke removes the token: it takes no --days")
        with _accounts(ctx) as accounts:
            accounts.revoke_token(name)
        click.echo(f"the API token of {name!r} is revoked")
        return
    days = TOKEN_DAYS if days is None else days
    with _accounts(ctx) as accounts:
        token = accounts.issue_token(name, days=days)
        user = accounts.store.user(name)
    expires = user.token_expires_at if user else None
    when = f"{expires:%Y-%m-%d %H:%M} UTC" if expires else f"in {days} days"
    click.echo(f"API token for {name!r}, expires {when} (shown once; send it as "
               "'Authorization: Bearer ...'):", err=True)
    click.echo(token)


@user_group.command("disable")
@click.argument("name")
@click.pass_context
def disable_user(ctx: click.Context, name: str) -> None:
    """Stop a user logging in; their sessions and API token stop working at once."""
    with _accounts(ctx) as accounts:
        accounts.disable(name)
    click.echo(f"{name!r} is disabled: logged out everywhere, their token refused")


@user_group.command("enable")
@click.argument("name")
@click.pass_context
def enable_user(ctx: click.Context, name: str) -> None:
    """Let a disabled user log in (and use their unexpired token) again."""
    with _accounts(ctx) as accounts:
        accounts.enable(name)
    click.echo(f"{name!r} is enabled")


def _token_state(user: User, now: datetime) -> str:
    if not user.token_hash:
        return ""
    expires = user.token_expires_at
    if expires is None:
        return "token (no expiry: refused)"
    word = "expired" if expires <= now else "expires"
    return f"token {word} {expires:%Y-%m-%d}"


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def list_users(ctx: click.Context, as_json: bool) -> None:
    """List accounts: name, role, disabled or not, whether they have a password, and
    their token with its expiry."""
    now = datetime.now(UTC)
    with _accounts(ctx) as accounts:
        users = accounts.store.users()
    rows = [{"name": u.name, "role": u.role, "disabled": u.disabled,
             "password": bool(u.password_hash), "token": bool(u.token_hash),
             "token_expires_at": (u.token_expires_at.isoformat()
                                  if u.token_hash and u.token_expires_at else None),
             "token_expired": bool(u.token_hash) and (u.token_expires_at is None
                                                      or u.token_expires_at <= now),
             "created_at": u.created_at.isoformat()}
            for u in users]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not users:
        click.echo("no users yet: add one with `askta user add NAME --role ta`")
    for u in users:
        flags = [f for f in ("disabled" if u.disabled else "",
                             "password" if u.password_hash else "",
                             _token_state(u, now)) if f]
        if not (u.password_hash or u.token_hash):
            flags.append("no login")
        click.echo(f"{u.name:<20} {u.role:<11} {', '.join(flags)}")
