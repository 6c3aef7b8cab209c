"""`askta worker`: its flags, and its refusal to serve CUDA runs where CUDA cannot work."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from server.cli.main import cli
from server.config import Settings
from server.runs.worker import RunWorker
from server.sandbox import SandboxRunner


def test_the_worker_needs_redis() -> None:
    result = CliRunner().invoke(cli, ["worker", "--device", "cpu"], env={"ASKTA_REDIS_URL": ""})
    assert result.exit_code == 2 and "ASKTA_REDIS_URL" in result.output


def test_the_worker_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0 and "askta worker --device cpu --pool 4" in result.output


@pytest.mark.sandbox
def test_a_cuda_worker_refuses_where_cuda_cannot_run() -> None:
    settings = Settings()
    problem = SandboxRunner(settings.sandbox_config()).cuda_problem()
    if problem is None:  # a GPU machine with a CUDA build of torch: the check passes
        RunWorker(settings.sandbox_config(), "cuda", 1, "redis://127.0.0.1:1/0").check()
        return
    result = CliRunner().invoke(cli, ["worker", "--device", "cuda"],
                                env={"ASKTA_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 2, result.output
    assert "askta worker --device cuda cannot start" in result.output
    assert problem in result.output
