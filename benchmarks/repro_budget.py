"""Budget check for the offline default: time every stage of `dvc repro`, the no-op
rerun, and a rerun after changing only an `evaluate` param, in a temporary copy.

    python benchmarks/repro_budget.py [--keep DIR | --in-place]

Prints one line per stage, the total against the 15-minute budget, and which stages an
evaluate-only change reran. Run it after `make install` (it uses the venv's dvc).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["prepare", "generate", "filter", "train@answer", "train@cot", "evaluate@answer", "evaluate@cot", "report"]
BUDGET_S = 15 * 60


def sh(args, cwd, env):
    t = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="copy to this folder and keep it (default: a temp folder, removed)")
    ap.add_argument(
        "--in-place",
        action="store_true",
        help="run in this repository (forces every stage; params.yaml is restored at the end)",
    )
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    if args.in_place:
        root = REPO
    else:
        root = Path(args.keep or tempfile.mkdtemp(prefix="cotdistill-budget-")) / "repo"
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        for rel in files:
            if (REPO / rel).is_file() and rel != "dvc.lock" and not rel.startswith("metrics/"):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, root / rel)
        for cmd in (
            ["git", "init", "-q"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "budget"],
        ):
            subprocess.run(cmd, cwd=root, env=env, check=True)
    original_params = (root / "params.yaml").read_text()
    dvc = str(Path(sys.executable).parent / "dvc")

    print(f"repository copy: {root}")
    total = 0.0
    for stage in STAGES:
        secs, _ = sh([dvc, "repro", "--single-item", "--force", stage], root, env)
        total += secs
        print(f"  {stage:<16} {secs:7.1f} s")
    print(
        f"full pipeline    {total:7.1f} s = {total / 60:.1f} min; budget {BUDGET_S / 60:.0f} min "
        f"-> {total / BUDGET_S:.2f} of budget"
    )

    noop, out = sh([dvc, "repro"], root, env)
    ran = re.findall(r"Running stage '([^']+)'", out)
    print(f"second repro     {noop:7.1f} s, stages run: {ran or 'none'} ({noop / total:.3f} of the first)")

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"]["max_new_tokens"] += 8
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    secs, out = sh([dvc, "repro"], root, env)
    ran = re.findall(r"Running stage '([^']+)'", out)
    print(f"evaluate change  {secs:7.1f} s, stages run: {ran}")
    (root / "params.yaml").write_text(original_params)
    if args.in_place:
        secs, out = sh([dvc, "repro"], root, env)
        ran = re.findall(r"Running stage '([^']+)'", out)
        print(f"params restored  {secs:7.1f} s, stages run: {ran}")
    elif not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
