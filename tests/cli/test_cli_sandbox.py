"""`askta sandbox run` (server/cli/sandbox.py) and the demo check behind
`askta check --demos` (server/cli/kb.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.kb import KnowledgeBase
from server.cli.kb import check_demos
from server.cli.sandbox import sandbox_group
from server.config import Settings

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SANDBOX_PYTHON = os.environ.get("ASKTA_SANDBOX_PYTHON", "/opt/askta/sandbox-venv/bin/python")
FIGURE_DEMO = """\
import matplotlib.pyplot as plt
print("plotting")
plt.figure(figsize=(3, 2))
plt.plot([0, 1, 4])
plt.show()
raise SystemExit(5)
"""


@pytest.fixture(autouse=True)
def _sandbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTA_SANDBOX_PYTHON", SANDBOX_PYTHON)


def test_run_streams_saves_figures_and_mirrors_the_exit_code(tmp_path: Path) -> None:
    demo = tmp_path / "figure_demo.py"
    demo.write_text(FIGURE_DEMO)
    out = tmp_path / "figures"
    result = CliRunner().invoke(sandbox_group, ["run", str(demo), "--device", "cpu",
                                                "--save-images", str(out)])
    assert result.exit_code == 5, result.output
    assert "plotting" in result.output
    assert f"[figure 1: 300 x 200 PNG, saved to {out / 'figure-1.png'}]" in result.output
    assert (out / "figure-1.png").read_bytes().startswith(b"\x89PNG")


def test_run_json_and_timeout(tmp_path: Path) -> None:
    demo = tmp_path / "slow.py"
    demo.write_text("import time\nprint('start')\ntime.sleep(60)\n")
    result = CliRunner().invoke(sandbox_group, ["run", str(demo), "--timeout", "1", "--json"])
    assert result.exit_code == 124, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["status"] == "timeout" and data["stdout"] == "start\n"


def test_run_on_cuda_runs_there_or_is_a_clear_error(tmp_path: Path) -> None:
    demo = tmp_path / "d.py"
    demo.write_text("import os\nprint(os.environ['ASKTA_DEVICE'])\n")
    result = CliRunner().invoke(sandbox_group, ["run", str(demo), "--device", "cuda"])
    if os.path.exists("/dev/nvidiactl"):
        assert result.exit_code == 0 and "cuda" in result.output, result.output
    else:
        assert result.exit_code == 2 and "no CUDA GPU" in result.output


def test_check_demos_names_the_failing_demo(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "demos").mkdir()
    (tmp_path / "demos" / "good.py").write_text("print('fine')\n")
    (tmp_path / "demos" / "bad.py").write_text("raise ValueError('broken demo')\n")
    for name in ("good", "bad"):
        (tmp_path / "kb" / f"{name}-entry.yaml").write_text(
            f"id: {name}-entry\nquestion: What does the {name} demo show?\n"
            f"answer: It shows {name} things.\ntags: [test]\ndemo: demos/{name}.py\n"
            "status: published\n")
    settings = Settings(kb_dir=tmp_path / "kb", data_dir=tmp_path / "data",
                        sandbox_pool_size=1, sandbox_device="cpu")
    results = dict(check_demos(settings, KnowledgeBase.load(settings.kb_dir)))
    assert set(results) == {"demos/good.py", "demos/bad.py"}
    assert results["demos/good.py"].status == "ok"
    assert results["demos/bad.py"].status == "error"
    assert "ValueError: broken demo" in results["demos/bad.py"].stderr
    assert 'File "bad.py", line 1' in results["demos/bad.py"].stderr
