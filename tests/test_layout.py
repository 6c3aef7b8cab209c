"""The layout's rules: every route module is under the import contract, and the
exit codes the README lists are the ones the CLI uses, and docs/operations.md lists every
setting the server reads."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from server.cli.exit_codes import ExitCode, table
from server.config import Settings

REPO = Path(__file__).resolve().parents[1]


def test_every_route_module_is_in_the_independence_contract() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    listed = set(config["importlinter:contract:routes-are-independent"]["modules"].split())
    on_disk = {f"server.web.routes.{p.stem}" for p in (REPO / "server/web/routes").glob("*.py")
               if p.stem != "__init__"}
    assert on_disk == listed


def test_readme_lists_the_exit_codes_of_the_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert table() in readme, "paste server.cli.exit_codes.table() into the README"


def test_exit_codes_are_distinct_and_described() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert "4" in table() and "sandbox" in table()


def test_the_operations_guide_lists_every_setting() -> None:
    guide = (REPO / "docs/operations.md").read_text(encoding="utf-8")
    reference = guide.split("## Configuration reference", 1)[1]
    listed = set(re.findall(r"`(ASKTA_[A-Z0-9_]+)`", reference))
    settings = {f"ASKTA_{name.upper()}" for name in Settings.model_fields}
    assert settings - listed == set(), "add these to docs/operations.md's reference"
    assert listed - settings <= {"ASKTA_HOST_PORT"}, "settings the server no longer reads"
