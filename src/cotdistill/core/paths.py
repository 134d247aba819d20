"""Where the repository lives, also inside queued DVC experiments.

`dvc queue start` runs each experiment in a temporary clone under .dvc/tmp/exps and sets
DVC_ROOT to the real repository. Everything that must be shared between experiments (the
MLflow store, the teacher's request cache) is placed relative to that root, so a sweep
logs to one store and never pays twice for the same teacher request.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def repo_root() -> Path:
    """The real repository root: $DVC_ROOT when DVC set it, else the git top level."""
    env = os.environ.get("DVC_ROOT")
    if env:
        return Path(env).resolve()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if out:
            return Path(out).resolve()
    except (OSError, subprocess.CalledProcessError):
        pass
    return Path.cwd().resolve()


def shared_path(path: str | os.PathLike) -> Path:
    """Resolve a relative path against the real repository root (absolute paths stay)."""
    path = Path(path)
    return path if path.is_absolute() else repo_root() / path


def timings_path(path: str | os.PathLike) -> Path:
    """Where a stage writes its timings file (wall seconds, cache hits: how a run went, not
    what it made; never a DVC output, see stage.write_timings). A queued experiment runs in
    a temporary copy that DVC deletes: its timings go to the real root's
    timings/exps/<experiment>/ instead."""
    path = Path(path)
    name = os.environ.get("DVC_EXP_NAME")
    if path.is_absolute() or not name:
        return path
    rest = path.parts[1:] if path.parts[0] == "timings" else path.parts
    return repo_root() / "timings" / "exps" / name / Path(*rest)


def git_commit() -> str:
    """The commit of the working copy being run (a queued experiment has its own)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
