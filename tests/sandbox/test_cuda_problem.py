"""Why CUDA runs cannot happen here: the sandbox environment's torch build and the GPU
devices, read without starting a sandbox (a fake interpreter reports the build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.sandbox import SandboxConfig, SandboxRunner
from server.sandbox import runner as runner_module


def fake_python(tmp_path: Path, version: str, cuda: str) -> Path:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\necho {version} {cuda}\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_a_cpu_build_of_torch_is_named_with_the_fix(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "nvidia_devices", lambda: ["/dev/nvidia0"])
    r = SandboxRunner(SandboxConfig(python=fake_python(tmp_path, "2.13.0+cpu", "none")))
    problem = r.cuda_problem()
    assert problem is not None and "2.13.0+cpu" in problem and "CPU-only build" in problem
    assert "make sandbox-env SANDBOX_TORCH=cu128" in problem


def test_no_gpu_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "nvidia_devices", lambda: [])
    r = SandboxRunner(SandboxConfig(python=fake_python(tmp_path, "2.13.0+cu128", "12.8")))
    problem = r.cuda_problem()
    assert problem is not None and "no NVIDIA GPU is visible" in problem
    assert "CPU-only" not in problem


def test_both_problems_are_named_together(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "nvidia_devices", lambda: [])
    r = SandboxRunner(SandboxConfig(python=fake_python(tmp_path, "2.13.0+cpu", "none")))
    problem = r.cuda_problem() or ""
    assert "CPU-only build" in problem and "no NVIDIA GPU" in problem
