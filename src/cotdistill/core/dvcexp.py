"""The one reader of DVC experiments, and the `dvc` command this interpreter's venv holds.

`cotdistill report --experiments` and the study (`cotdistill study`) read experiments
through `exp_show`. Reading every commit (`dvc exp show --all-commits`) walks the whole
history: more than 11 minutes on this repository's. The commits that hold experiments are
named by their refs (refs/exps/ab/cdef.../<name>), so `exp_show(all_commits=True)` shows
the workspace's commit and those only (58 s on the same history, the same experiments).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def dvc_bin() -> str:
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else (shutil.which("dvc") or "dvc")


def dvc_env() -> dict[str, str]:
    """The environment for DVC: the queue's workers start `dvc` and the stages `cotdistill`
    by name, so the folder that holds them (this interpreter's venv) goes first on PATH,
    also when this process was started as `.venv/bin/cotdistill` without activating it."""
    folder = str(Path(dvc_bin()).parent)
    return {**os.environ, "PATH": os.pathsep.join([folder, os.environ.get("PATH", "")])}


def run_dvc(args: list[str], repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`dvc <args>` in `repo`; with `check`, a failure is a RuntimeError with DVC's last line."""
    proc = subprocess.run([dvc_bin(), *args], cwd=repo, env=dvc_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"`dvc {' '.join(args[:3])} ...` failed in {repo}: {last[0]}")
    return proc


def exp_show(repo: str | Path = ".", all_commits: bool = False) -> list[dict]:
    """`dvc exp show --json` of the workspace's commit, and with `all_commits` of every
    commit that holds experiments too: a list of baselines, each with its experiments."""
    repo = Path(repo)
    revs: list[str | None] = [None]
    if all_commits:
        refs = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        revs = sorted({"".join(r.split("/")[2:4]) for r in refs if len(r.split("/")) >= 5}) or [None]
    shown: list[dict] = []
    for rev in revs:
        shown += json.loads(run_dvc(["exp", "show", "--json"] + (["--rev", rev] if rev else []), repo).stdout)
    return shown


def experiments(repo: Path, all_commits: bool = False) -> dict[str, dict]:
    """Name -> {"rev", "baseline", "timestamp", "params", "metrics"} of the finished
    experiments of the current commit (or of every commit: the newest experiment of each name)."""
    out: dict[str, dict] = {}
    for entry in exp_show(repo, all_commits):
        for exp in entry.get("experiments") or []:
            if (exp.get("executor") or {}).get("state") in ("queued", "running", "failed"):
                continue  # not an experiment's result yet (a running one shows its workspace)
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                name = rev.get("name")
                if not name or not data:
                    continue
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = {k: (v or {}).get("data") or {} for k, v in (data.get("metrics") or {}).items()}
                found = {
                    "rev": data.get("rev") or rev.get("rev"),
                    "baseline": entry.get("rev"),
                    "timestamp": data.get("timestamp") or "",
                    "params": params,
                    "metrics": metrics,
                }
                if name not in out or found["timestamp"] > out[name]["timestamp"]:
                    out[name] = found
    return out
