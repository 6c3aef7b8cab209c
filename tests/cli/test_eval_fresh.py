"""`askta eval FILE --fresh`: every set asked, today's rule against the cross-fitted model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli.main import cli

DEV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dev_questions.yaml"


@pytest.fixture
def env(kb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTA_MODEL", "hashing")
    monkeypatch.setenv("ASKTA_KB_DIR", str(kb_dir))
    monkeypatch.setenv("ASKTA_DATA_DIR", str(tmp_path / "data"))


def test_fit_needs_fresh(env: None) -> None:
    result = CliRunner().invoke(cli, ["eval", str(DEV), "--fit"])
    assert result.exit_code == 2 and "--fit goes with --fresh" in result.output


@pytest.mark.slow
def test_fresh_reports_every_set_out_of_fold(env: None) -> None:
    result = CliRunner().invoke(cli, ["eval", str(DEV), "--fresh", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    sets = {"bundled-dev", "bundled-alternates-out", "bundled-entry-out", "bundled-new-week",
            "fresh", "fresh-entry-out"}
    assert set(data["rule"]) == set(data["fitted_out_of_fold"]) == sets
    assert data["model"] == "hashing-256" and data["written"] is None
    fresh = data["rule"]["fresh"]
    assert fresh["questions"] >= 120 and fresh["answerable"] >= 60
    # removed entries' questions have no right answer: answered precision is 0 by design
    assert data["rule"]["fresh-entry-out"]["answerable"] == 0
    assert 0 < data["answer_at"] <= 1
