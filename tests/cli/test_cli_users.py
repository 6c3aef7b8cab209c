"""`askta user`: passwords never on the command line and at least 12 characters; disabling
accounts; tokens that expire or are revoked; what `list` shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from server.accounts import Accounts, TokenRefused
from server.cli.main import cli
from server.cli.users import user_group
from server.config import Settings
from server.store import Store

GOOD = "correct horse battery"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(kb_dir=tmp_path, data_dir=tmp_path / "data")


@pytest.fixture
def user(settings: Settings):  # type: ignore[no-untyped-def]
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(user_group, list(args), obj={"settings": settings},
                                  input=input)

    return invoke


@pytest.fixture
def accounts(settings: Settings) -> Iterator[Accounts]:
    """The accounts as the server sees them (open after the CLI wrote them)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    store.migrate()
    yield Accounts(store)
    store.close()


# --- passwords ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["add", "tara", "--role", "ta"], ["password", "tara"]])
def test_a_password_on_the_command_line_is_refused(user: Any, command: list[str]) -> None:
    """Command lines end up in shell history and `ps`: there is no --password VALUE."""
    if command[0] == "password":
        assert user("add", "tara", "--role", "ta", "--password-stdin",
                    input=GOOD + "\n").exit_code == 0
    r = user(*command, "--password", GOOD)
    assert r.exit_code == 2 and "No such option" in r.output and GOOD not in r.output
    r = user(*command, f"--password={GOOD}")
    assert r.exit_code == 2


def test_password_from_stdin_is_one_line(user: Any, accounts: Accounts) -> None:
    r = user("add", "tara", "--role", "ta", "--password-stdin", input=GOOD + "\nignored\n")
    assert r.exit_code == 0, r.output
    assert GOOD not in r.output
    assert accounts.login("tara", GOOD) is not None
    r = user("password", "tara", "--password-stdin", input="a new passphrase\r\n")
    assert r.exit_code == 0, r.output
    assert accounts.login("tara", "a new passphrase") is not None
    assert accounts.login("tara", GOOD) is None


def test_password_from_a_hidden_prompt_with_confirmation(user: Any, accounts: Accounts) -> None:
    r = user("add", "ian", "--role", "instructor", input=f"{GOOD}\n{GOOD}\n")
    assert r.exit_code == 0, r.output
    assert GOOD not in r.output  # hidden: not echoed
    assert accounts.login("ian", GOOD) is not None
    r = user("password", "ian", input="a new passphrase\nsomething else\n")
    assert r.exit_code != 0 and accounts.login("ian", GOOD) is not None


@pytest.mark.parametrize("password", ["", "short", "x" * 11, " " * 14])
def test_short_or_empty_passwords_are_usage_errors(user: Any, accounts: Accounts,
                                                   password: str) -> None:
    r = user("add", "tara", "--role", "ta", "--password-stdin", input=password + "\n")
    assert r.exit_code == 2 and "at least 12 characters" in r.output
    assert accounts.store.user("tara") is None
    r = user("add", "tara", "--role", "ta", input=f"{password}\n{password}\n")
    assert r.exit_code != 0 and accounts.store.user("tara") is None
    assert user("add", "tara", "--role", "ta", "--password-stdin",
                input=GOOD + "\n").exit_code == 0
    r = user("password", "tara", "--password-stdin", input=password + "\n")
    assert r.exit_code == 2 and "at least 12 characters" in r.output
    assert accounts.login("tara", GOOD) is not None


def test_empty_stdin_is_a_usage_error(user: Any, accounts: Accounts) -> None:
    r = user("add", "tara", "--role", "ta", "--password-stdin", input="")
    assert r.exit_code == 2 and accounts.store.user("tara") is None


# --- disable, enable ---------------------------------------------------------------------
def test_disable_and_enable(user: Any, accounts: Accounts) -> None:
    assert user("add", "tara", "--role", "ta", "--password-stdin",
                input=GOOD + "\n").exit_code == 0
    token = user("token", "tara").output.strip().splitlines()[-1]
    r = user("disable", "tara")
    assert r.exit_code == 0, r.output
    assert accounts.login("tara", GOOD) is None
    with pytest.raises(TokenRefused, match="disabled"):
        accounts.from_token(token)
    rows = json.loads(user("list", "--json").output)
    assert rows[0]["disabled"] is True
    assert "disabled" in user("list").output
    r = user("enable", "tara")
    assert r.exit_code == 0, r.output
    assert accounts.login("tara", GOOD) is not None
    assert accounts.from_token(token) is not None
    assert json.loads(user("list", "--json").output)[0]["disabled"] is False
    r = user("disable", "nobody")
    assert r.exit_code == 1 and "no user named" in r.output


# --- tokens ------------------------------------------------------------------------------
def test_token_days_and_revoke(user: Any, accounts: Accounts) -> None:
    assert user("add", "tara", "--role", "ta", "--password-stdin",
                input=GOOD + "\n").exit_code == 0
    before = datetime.now(UTC)
    r = user("token", "tara")
    assert r.exit_code == 0 and "expires" in r.output
    row = json.loads(user("list", "--json").output)[0]
    expires = datetime.fromisoformat(row["token_expires_at"])
    assert timedelta(days=90) <= expires - before < timedelta(days=90, minutes=1)
    assert row["token"] is True

    r = user("token", "tara", "--days", "7")
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    expires = datetime.fromisoformat(json.loads(user("list", "--json").output)[0]
                                     ["token_expires_at"])
    assert timedelta(days=7) <= expires - before < timedelta(days=7, minutes=1)
    assert "expires" in user("list").output

    assert user("token", "tara", "--days", "0").exit_code == 2
    assert user("token", "tara", "--revoke", "--days", "3").exit_code == 2
    r = user("token", "tara", "--revoke")
    assert r.exit_code == 0, r.output
    assert accounts.from_token(token) is None
    row = json.loads(user("list", "--json").output)[0]
    assert row["token"] is False and row["token_expires_at"] is None


def test_list_shows_an_expired_token(user: Any, accounts: Accounts) -> None:
    assert user("add", "tara", "--role", "ta", "--password-stdin",
                input=GOOD + "\n").exit_code == 0
    assert user("token", "tara").exit_code == 0
    accounts.store.update_user("tara", token_expires_at=datetime.now(UTC) - timedelta(days=1))
    assert "token expired" in user("list").output
    assert json.loads(user("list", "--json").output)[0]["token_expired"] is True


def test_help_documents_the_token_lifetime_and_stdin(user: Any) -> None:
    assert "90" in user("token", "--help").output
    assert "--password-stdin" in user("add", "--help").output
    assert "--password-stdin" in user("password", "--help").output
    out = CliRunner().invoke(cli, ["user", "--help"]).output
    for command in ("add", "password", "token", "disable", "enable", "list"):
        assert command in out
