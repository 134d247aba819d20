"""The multitask variant (distilling step-by-step) against cot and answer, at equal steps.

For every (task, seed) the real pipeline runs (`dvc repro`) in a scratch clone of this
repository with variants [answer, cot, multitask]: the same prepared data, the same
teacher CoTs (answer-conditioned, the committed teacher), the same student preset and
the same number of optimizer steps for the three. The cells' outputs are copied to
WORKDIR/results/<task>-s<seed>/ (a finished cell is not rerun); then the table: mean and
sd of test accuracy over seeds, and exact McNemar tests pooled over seeds
(study/analysis.py), written to WORKDIR/results/README.md.

    python benchmarks/multitask_compare.py --workdir /tmp/multitask-compare
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cotdistill.core.machine import describe  # noqa: E402
from cotdistill.study.analysis import (  # noqa: E402
    StudentRun,
    accuracy_from_metrics,
    comparisons,
    outcomes_from_predictions,
    summarise,
)

VARIANTS = ["answer", "cot", "multitask"]
# last_letters: one token per character (a BPE merges the letters the task is about), and
# a decoding budget that fits a whole CoT in characters: a 4-word gold CoT is 192, a
# 6-word OOD one about 270 (the default 128 cut every CoT before its answer).
TASKS = {"coin_flip": {}, "last_letters": {"train": {"tokenizer": "char"}, "evaluate": {"max_new_tokens": 320}}}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cell_params(base: dict, task: str, seed: int, args) -> dict:
    common = {
        "model": args.model,
        "dataset": task,
        "seed": seed,
        "threads": args.threads,
        "prepare": {"n_train": args.n_train, "n_validation": 32, "n_test": args.n_test, "n_test_ood": args.n_test},
        "train": {
            "variants": VARIANTS,
            "max_steps": args.steps,
            "eval_steps": args.steps,
            "save_steps": 100,
            "system_metrics": False,
        },
    }
    return merge(merge(base, common), TASKS[task])


def run_cell(clone: Path, out: Path, params: dict, env: dict) -> None:
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    start = time.time()
    log = out.with_name(out.name + ".log")
    with open(log, "w") as fh:
        proc = subprocess.run(["dvc", "repro"], cwd=clone, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed for {out.name} (exit {proc.returncode}): see {log}")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in [
        "params.yaml",
        "metrics/filter.json",
        "metrics/generate.json",
        "metrics/report.md",
        *[f"metrics/evaluate/{v}.json" for v in VARIANTS],
        *[f"metrics/train/{v}.json" for v in VARIANTS],
        *[f"data/eval/{v}/predictions.jsonl" for v in VARIANTS],
        *[f"timings/train/{v}.json" for v in VARIANTS],
        "data/eval/multitask/rationale_predictions.jsonl",
    ]:
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(clone / rel, dest)
    (tmp / "wall_s.txt").write_text(f"{time.time() - start:.0f}\n")
    tmp.rename(out)


def load_runs(results: Path) -> list[StudentRun]:
    runs = []
    for cell in sorted(p for p in results.iterdir() if p.is_dir() and not p.name.endswith(".tmp")):
        params = yaml.safe_load((cell / "params.yaml").read_text())
        for v in VARIANTS:
            m = json.loads((cell / f"metrics/evaluate/{v}.json").read_text())
            rows = [json.loads(x) for x in (cell / f"data/eval/{v}/predictions.jsonl").read_text().splitlines()]
            train = json.loads((cell / f"metrics/train/{v}.json").read_text())
            timing = json.loads((cell / f"timings/train/{v}.json").read_text())
            runs.append(
                StudentRun(
                    params["dataset"],
                    "hint",
                    params["seed"],
                    v,
                    accuracy_from_metrics(m),
                    outcomes_from_predictions(rows),
                    train.get("train_examples"),
                    timing.get("wall_s"),
                )
            )
            if v == "multitask":  # the rationale task, scored as a student of its own
                runs.append(
                    StudentRun(
                        params["dataset"],
                        "hint",
                        params["seed"],
                        "multitask:rationale",
                        accuracy_from_metrics(m["rationale"]),
                        {},
                        None,
                        None,
                    )
                )
    return runs


def _pct(mean: float, sd: float) -> str:
    return f"{100 * mean:.1f} ± {100 * sd:.1f}" if not math.isnan(sd) else f"{100 * mean:.1f}"


def render(runs: list[StudentRun], args, cells: list[Path]) -> str:
    summaries = summarise(runs)
    made_with = {
        describe(json.loads((c / f"metrics/evaluate/{v}.json").read_text())["machine"]) for c in cells for v in VARIANTS
    }
    lines = [
        "# multitask vs cot vs answer at equal steps",
        "",
        f"Student {args.model}, {args.steps} optimizer steps per student, seeds "
        f"{sorted({r.seed for r in runs})}, {args.n_train} training questions, {args.n_test} + {args.n_test} "
        f"test questions (ID + OOD) per seed, teacher: the committed offline one, answer-conditioned; "
        f"made with {'; '.join(sorted(made_with))}. Accuracy in % (mean ± sd over seeds); "
        "multitask:rationale is the multitask student's rationale task (a diagnostic).",
        "",
        "| task | student | ID | OOD | train examples |",
        "|---|---|---|---|---|",
    ]
    for s in sorted(summaries, key=lambda s: (s.task, s.label)):
        lines.append(
            f"| {s.task} | {s.label} | {_pct(s.mean.get('id', math.nan), s.sd.get('id', math.nan))} | "
            f"{_pct(s.mean.get('ood', math.nan), s.sd.get('ood', math.nan))} | "
            f"{', '.join(map(str, s.train_examples))} |"
        )
    lines += [
        "",
        "Exact McNemar tests, discordant pairs pooled over seeds (A = student, B = baseline):",
        "",
        "| task | A | B | split | n | only A | only B | A - B | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for base in ("answer", "cot[hint]"):
        for t in comparisons([r for r in runs if r.variant != "multitask:rationale"], base):
            if t["split"] not in ("id", "ood") or (base == "cot[hint]" and t["student"] != "multitask"):
                continue
            lines.append(
                f"| {t['task']} | {t['student']} | {t['baseline']} | {t['split']} | {t['n']} | "
                f"{t['only_a']} | {t['only_b']} | {100 * t['diff']:+.1f} | {t['p_value']:.3g} |"
            )
    walls = {c.name: (c / "wall_s.txt").read_text().strip() for c in cells}
    lines += ["", "Wall time per cell (s, whole `dvc repro`): " + ", ".join(f"{k} {v}" for k, v in walls.items()), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--model", default="t5-mini4")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    clone, results = args.workdir / "repo", args.workdir / "results"
    results.mkdir(parents=True, exist_ok=True)
    # The stages import the clone's own code, whatever cotdistill the environment has installed.
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(clone / "src"),
    }
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        env.pop(var, None)
    if not args.report_only:
        if not clone.exists():
            subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        base = yaml.safe_load((clone / "params.yaml").read_text())
        for task in args.tasks:
            for seed in args.seeds:
                out = results / f"{task}-s{seed}"
                if out.exists():
                    continue
                print(f"{time.strftime('%H:%M:%S')} {out.name} ...", flush=True)
                run_cell(clone, out, cell_params(base, task, seed, args), env)
    cells = sorted(p for p in results.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))
    if not cells:
        raise SystemExit(f"no finished cell in {results}")
    page = render(load_runs(results), args, cells)
    (results / "README.md").write_text(page)
    print(page)


if __name__ == "__main__":
    main()
