import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO


def run_cmd(args, cwd, env=None, check=True, timeout=900):
    """Run a command, echoing its output on failure (for stage and CLI tests)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def base_params() -> dict:
    """A tiny but complete params dict (the shape of params.yaml)."""
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())


def venv_bin(name: str) -> str:
    """A console script of the environment running the tests (cotdistill, dvc)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)
