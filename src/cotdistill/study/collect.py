"""Read a study's finished cells back from DVC into the records the study commits
(committed.py): metrics from `dvc exp show`, per-question predictions from each
experiment's cached outputs (dvc.api at the experiment's commit).

This is the only part of a study that needs the experiments; once their records are
committed beside the page, the experiments and their cache may go.
"""

from __future__ import annotations

import json
from pathlib import Path

from cotdistill.core.dvcexp import experiments

from .analysis import teacher_row
from .committed import Table, machine_blocks, table_from_predictions
from .grid import Cell, Grid, per_mode
from .run import finished


def read_predictions(repo: Path, rev: str, variant: str) -> list[dict]:
    import dvc.api

    text = dvc.api.read(f"data/eval/{variant}/predictions.jsonl", repo=str(repo), rev=rev)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _threads(metrics: dict[str, dict], machine: dict[str, dict]) -> list[int]:
    """The torch thread counts the cell ran with: from the signatures, or from the
    `torch_threads` key of experiments made before signatures were recorded."""
    seen = {sig.get("threads") for sig in machine.values()}
    seen |= {
        m.get("torch_threads") for p, m in metrics.items() if p.startswith(("metrics/train/", "metrics/evaluate/"))
    }
    return sorted(t for t in seen if isinstance(t, int))


def _wall(cell: Cell, metrics: dict[str, dict], first_mode: str) -> dict | None:
    """Wall seconds, where an old experiment kept them in its metrics (newer ones write them
    to timings/, outside git and DVC: they are not an outcome)."""
    variants = cell.overrides["train.variants"]
    gen = metrics.get("metrics/generate.json", {})
    trains = [metrics.get(f"metrics/train/{v}.json", {}) for v in variants]
    evals = [metrics.get(f"metrics/evaluate/{v}.json", {}) for v in variants]
    if not any("wall_s" in m for m in trains + evals):
        return None
    # later modes restore the students they do not change (answer, gold) from the run cache:
    # their seconds count once
    counted = [i for i, v in enumerate(variants) if per_mode(v, cell.overrides) or cell.mode == first_mode]
    return {
        "teacher_s": gen.get("generations", {}).get("teacher_s", gen.get("wall_s")),
        "train_s": sum(trains[i].get("wall_s") or 0.0 for i in counted),
        "evaluate_s": sum(evals[i].get("wall_s") or 0.0 for i in counted),
    }


def cell_record(cell: Cell, exp: dict, first_mode: str, lever_split: str = "validation") -> dict:
    """What cells.json keeps of one finished cell (see committed.py)."""
    m = exp["metrics"]
    variants = cell.overrides["train.variants"] if cell.kind == "student" else []
    machine = machine_blocks(m, variants)
    split = lever_split if cell.kind == "lever" else "train"
    teacher = {
        k: v
        for k, v in teacher_row(cell.task, cell.mode, m.get("metrics/filter.json", {}), split).items()
        if k not in ("task", "mode")
    }
    rec = {
        "experiment": cell.name,
        "commit": str(exp["baseline"]),
        "exp_rev": str(exp["rev"]),
        "timestamp": str(exp.get("timestamp") or ""),
        "machine": machine,
        "threads": _threads(m, machine),
        "teacher": teacher,
    }
    if cell.kind == "student":
        rec["train_examples"] = {v: m.get(f"metrics/train/{v}.json", {}).get("train_examples") for v in variants}
        wall = _wall(cell, m, first_mode)
        if wall:
            rec["wall"] = wall
    return rec


def collect(grid: Grid, repo: Path) -> tuple[dict[str, dict], dict[str, Table]]:
    """(cell name -> record, cell name -> outcome table) of every declared cell that has a
    finished experiment (on any commit: the newest of each name)."""
    exps = experiments(repo, all_commits=True)
    first_mode = next(iter(grid.teachers))
    cells: dict[str, dict] = {}
    tables: dict[str, Table] = {}
    for cell in grid.cells():
        exp = exps.get(cell.name)
        if not finished(cell, exp):
            continue
        cells[cell.name] = cell_record(cell, exp, first_mode, grid.lever_split)
        if cell.kind == "student":
            tables[cell.name] = table_from_predictions(
                {v: read_predictions(repo, exp["rev"], v) for v in cell.overrides["train.variants"]}
            )
    return cells, tables


def merge(committed: tuple[dict, dict], found: tuple[dict, dict]) -> tuple[dict[str, dict], dict[str, Table]]:
    """The committed records, each replaced by a newer experiment of its cell: a cell whose
    experiment is gone (another machine, `dvc exp gc`) keeps what was committed."""
    cells, tables = dict(committed[0]), dict(committed[1])
    for name, rec in found[0].items():
        if name not in cells or rec["timestamp"] >= cells[name].get("timestamp", ""):
            cells[name] = rec
            tables[name] = found[1].get(name, {})
    return cells, tables
