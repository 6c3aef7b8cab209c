"""The layout's rules: every route and command module is under its import contract, the README's
layout map names every package and module of server/ and indexer/ (and none that is
gone), the exit codes the README lists are the ones the CLI uses, and
docs/operations.md lists every setting the server reads."""

from __future__ import annotations

import configparser
import re
from collections.abc import Collection
from pathlib import Path

from server.cli.exit_codes import ExitCode, table
from server.config import Settings

REPO = Path(__file__).resolve().parents[1]


def independent(contract: str) -> set[str]:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    return set(config[f"importlinter:contract:{contract}"]["modules"].split())


def modules_in(folder: str, but: Collection[str] = ()) -> set[str]:
    package = folder.replace("/", ".")
    return {f"{package}.{p.stem}" for p in (REPO / folder).glob("*.py")
            if p.stem not in {"__init__", *but}}


def test_every_route_module_is_in_the_independence_contract() -> None:
    assert modules_in("server/web/routes") == independent("routes-are-independent")


# The CLI's modules that are no command group: the group itself and what commands share.
CLI_HELPERS = {"main", "common", "exit_codes", "overlaps", "fresh"}


def test_every_command_module_is_in_the_independence_contract() -> None:
    commands = modules_in("server/cli", CLI_HELPERS)
    assert commands == independent("commands-are-independent")


NAME_COLUMN = 23  # the layout map's names stand in its first 23 columns


def layout_map() -> dict[Path, str]:
    """The README's layout map: the text of each package's part (its own lines and the
    lines of its modules, not those of its subpackages), by folder."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    parts: dict[Path, str] = {}
    stack: list[tuple[int, Path]] = [(-1, REPO)]
    for line in block.splitlines()[1:]:
        names = line[:NAME_COLUMN]
        if names.strip():
            indent = len(line) - len(line.lstrip())
            while stack[-1][0] >= indent:
                stack.pop()
            first = names.split()[0]
            if first.endswith("/"):
                stack.append((indent, stack[-1][1] / first.rstrip("/")))
        folder = stack[-1][1]
        parts[folder] = parts.get(folder, "") + line + "\n"
    return parts


def packages() -> list[Path]:
    return sorted(p.parent for top in ("server", "indexer")
                  for p in (REPO / top).rglob("__init__.py"))


def test_the_layout_map_names_every_package_and_module() -> None:
    parts = layout_map()
    for package in packages():
        where = package.relative_to(REPO)
        assert package in parts, f"README layout: add {where}/"
        for module in package.glob("*.py"):
            if module.stem != "__init__":
                assert re.search(rf"\b{module.stem}\b", parts[package]), \
                    f"README layout: name {where / module.name} under {where}/"


def test_the_layout_map_names_nothing_that_is_gone() -> None:
    for folder, text in layout_map().items():
        where = folder.relative_to(REPO)
        assert folder.is_dir(), f"README layout: there is no {where}/"
        for name in re.findall(r"\b([a-z_]+\.py)\b", text):
            assert (folder / name).is_file(), f"README layout: there is no {where / name}"


def test_tests_follow_the_packages() -> None:
    """Each package of server/ and indexer/ with tests has them in a tests/ folder of
    the same name (server/web -> tests/web, indexer -> tests/indexer)."""
    folders = {p.name for p in (REPO / "tests").iterdir() if (p / "__init__.py").is_file()}
    names = {p.name for p in packages()} - {"server"}
    assert folders <= names, f"tests/ folders that follow no package: {folders - names}"
    readme_tests = layout_map()[REPO / "tests"]
    for folder in folders:
        assert re.search(rf"\b{folder}\b", readme_tests), f"README layout: name tests/{folder}"


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
