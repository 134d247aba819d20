"""Read a study's finished cells back from DVC: metrics from `dvc exp show`, per-example
predictions from each experiment's cached outputs (dvc.api at the experiment's commit)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import StudentRun, accuracy_from_metrics, outcomes_from_predictions, teacher_row
from .grid import Grid
from .run import experiments, finished


@dataclass
class Results:
    runs: list[StudentRun] = field(default_factory=list)
    teacher: list[dict] = field(default_factory=list)  # student cells: yield on the train split
    levers: list[dict] = field(default_factory=list)  # lever cells: yield on validation questions
    walls: list[dict] = field(default_factory=list)  # per cell: teacher, train, evaluate seconds
    missing: list[str] = field(default_factory=list)  # declared cells with no finished experiment
    threads: set = field(default_factory=set)  # torch threads seen in the cells' metrics
    baselines: set = field(default_factory=set)  # the commits the cells ran from


def read_predictions(repo: Path, rev: str, variant: str) -> list[dict]:
    import dvc.api

    text = dvc.api.read(f"data/eval/{variant}/predictions.jsonl", repo=str(repo), rev=rev)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def collect(grid: Grid, repo: Path) -> Results:
    exps = experiments(repo, all_commits=True)
    res = Results()
    first_mode = next(iter(grid.teachers))
    for cell in grid.cells():
        exp = exps.get(cell.name)
        if not finished(cell, exp):
            res.missing.append(cell.name)
            continue
        m = exp["metrics"]
        res.baselines.add(str(exp["baseline"])[:10])
        filt = m.get("metrics/filter.json", {})
        if cell.kind == "lever":
            res.levers.append({**teacher_row(cell.task, cell.mode, filt, "validation"),
                               "overrides": {k: v for k, v in cell.overrides.items()
                                             if k.startswith(("generate.", "filter."))}})
            continue
        res.teacher.append(teacher_row(cell.task, cell.mode, filt))
        gen = m.get("metrics/generate.json", {})
        # what the kept generations cost when they were made (a cell on a warm cache sends nothing)
        teacher_s = gen.get("generations", {}).get("teacher_s", gen.get("wall_s"))
        wall = {"cell": cell.name, "teacher_s": teacher_s, "train_s": 0.0, "evaluate_s": 0.0}
        for variant in cell.overrides["train.variants"]:
            ev = m[f"metrics/evaluate/{variant}.json"]
            tr = m.get(f"metrics/train/{variant}.json", {})
            res.threads |= {t for t in (tr.get("torch_threads"), ev.get("torch_threads")) if t is not None}
            if variant == "cot" or cell.mode == first_mode:  # later modes restore the others from the run cache
                wall["train_s"] += tr.get("wall_s") or 0.0
                wall["evaluate_s"] += ev.get("wall_s") or 0.0
            res.runs.append(StudentRun(
                task=cell.task, mode=cell.mode, seed=cell.seed, variant=variant,
                accuracy=accuracy_from_metrics(ev),
                outcomes=outcomes_from_predictions(read_predictions(repo, exp["rev"], variant)),
                train_examples=tr.get("train_examples"), wall_s=tr.get("wall_s")))
        res.walls.append(wall)
    return res
