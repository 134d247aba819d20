"""What a study commits beside its page, so that every table and test on the page can be
recomputed from a fresh clone without rerunning (or even having) its DVC experiments.

Two files in the page's folder:

- `outcomes.jsonl`, per-question outcomes, in cell-name order. For each cell, first one
  line per test split with the split's question ids, sorted:
      {"cell": "s-arith-hint-s0", "split": "test", "ids": ["test-00000", "test-00001", ...]}
  then one line per (variant, split, decoding), one character per question in that order:
      {"cell": ..., "variant": "gold", "split": "test", "decoding": "calculator",
       "correct": "0110...", "invalid": "0000..."}
  `correct`: 1 right, 0 wrong; `invalid`: 1 when no answer could be extracted; `-`: no
  prediction recorded. `decoding` is `plain` or `calculator` (the external calculator).
  One flipped question is one changed character on one line of `git diff`.
- `cells.json`, per cell: the experiment's name, the commit it ran from (`commit`), the
  experiment's own commit (`exp_rev`), its timestamp, the machine signature of each stage
  that computed floats (`machine`: stage -> an id in `signatures`; empty for cells that
  ran before signatures were recorded), the torch thread counts, the teacher's counts
  (the filter's audit), the students' training-set sizes and, for old cells only, wall
  seconds. Written with sorted keys, so a rerun of one cell changes only its lines.

The page is always rendered from these files (`results`), also right after a study ran,
so a re-render from a clone is the same page byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.core.errors import DataError
from cotdistill.core.io import read_json, read_jsonl, write_json, write_jsonl

from .analysis import StudentRun, split_key
from .grid import Grid, per_mode

OUTCOMES = "outcomes.jsonl"
CELLS = "cells.json"
DECODINGS = {False: "plain", True: "calculator"}  # predictions.jsonl's `calculator` flag -> its name

# (variant, split, decoding) -> question id -> (correct, invalid or None when not recorded)
Table = dict[tuple[str, str, str], dict[str, tuple[bool, "bool | None"]]]


@dataclass
class Results:
    """A study's cells as the page reads them (built by `results` from the committed files)."""

    runs: list[StudentRun] = field(default_factory=list)
    teacher: list[dict] = field(default_factory=list)  # student cells: yield on the train split
    levers: list[dict] = field(default_factory=list)  # lever cells: yield on validation questions
    walls: list[dict] = field(default_factory=list)  # old cells only: teacher, train, evaluate seconds
    missing: list[str] = field(default_factory=list)  # declared cells with no committed record
    cells: dict[str, dict] = field(default_factory=dict)  # name -> record, signatures resolved


def table_from_predictions(predictions: dict[str, list[dict]]) -> Table:
    """variant -> data/eval/<variant>/predictions.jsonl rows -> a cell's outcome table."""
    table: Table = {}
    for variant, rows in predictions.items():
        for r in rows:
            key = (variant, r["split"], DECODINGS[bool(r.get("calculator"))])
            invalid = r["extracted"] is None if "extracted" in r else None
            table.setdefault(key, {})[str(r["id"])] = (bool(r["correct"]), invalid)
    return table


def _chars(per: dict, ids: list[str], pos: int) -> str:
    return "".join("-" if i not in per or per[i][pos] is None else "01"[per[i][pos]] for i in ids)


def outcome_lines(cell: str, table: Table) -> list[dict]:
    """A cell's lines of outcomes.jsonl: the ids of each split, then one line per key."""
    ids: dict[str, set[str]] = {}
    for (_, split, _), per in table.items():
        ids.setdefault(split, set()).update(per)
    order = {split: sorted(v) for split, v in ids.items()}
    lines = [{"cell": cell, "split": split, "ids": order[split]} for split in sorted(order)]
    for (variant, split, decoding), per in sorted(table.items()):
        lines.append(
            {
                "cell": cell,
                "variant": variant,
                "split": split,
                "decoding": decoding,
                "correct": _chars(per, order[split], 0),
                "invalid": _chars(per, order[split], 1),
            }
        )
    return lines


def parse_outcomes(lines: list[dict], where: str = OUTCOMES) -> dict[str, Table]:
    """outcomes.jsonl's lines -> cell -> its outcome table (the inverse of outcome_lines)."""
    ids: dict[tuple[str, str], list[str]] = {}
    out: dict[str, Table] = {}
    for n, line in enumerate(lines, 1):
        cell, split = line.get("cell"), line.get("split")
        if "ids" in line:
            ids[(cell, split)] = [str(i) for i in line["ids"]]
            continue
        order = ids.get((cell, split))
        if order is None:
            raise DataError(f"{where}:{n}: cell {cell} split {split}: outcomes before the split's ids line")
        correct, invalid = line.get("correct", ""), line.get("invalid", "")
        if len(correct) != len(order) or len(invalid) != len(order) or set(correct + invalid) - set("01-"):
            raise DataError(
                f"{where}:{n}: `correct` and `invalid` must hold one of 0, 1, - per id "
                f"({len(order)} ids), got {len(correct)} and {len(invalid)} characters"
            )
        per = {i: (c == "1", None if v == "-" else v == "1") for i, c, v in zip(order, correct, invalid) if c != "-"}
        out.setdefault(cell, {})[(line["variant"], split, line["decoding"])] = per
    return out


def signature_id(sig: dict) -> str:
    """A short name for a machine signature, the same for the same signature everywhere."""
    return hashlib.sha256(json.dumps(sig, sort_keys=True).encode("utf-8")).hexdigest()[:10]


def machine_blocks(metrics: dict[str, dict], variants: list[str]) -> dict[str, dict]:
    """Stage -> the signature its metrics file recorded ("generate", "train/answer", ...),
    from a mapping of metrics path -> content (`dvc exp show`'s, or files read from disk).
    A teacher served elsewhere records none: its floats were not computed here."""
    paths = {"generate": "metrics/generate.json"}
    for v in variants:
        paths |= {f"train/{v}": f"metrics/train/{v}.json", f"evaluate/{v}": f"metrics/evaluate/{v}.json"}
    return {
        stage: metrics[p]["machine"]
        for stage, p in paths.items()
        if isinstance((metrics.get(p) or {}).get("machine"), dict)
    }


def read(out_dir: str | Path) -> tuple[dict[str, dict], dict[str, Table]]:
    """(cell name -> record with its signatures resolved, cell name -> outcome table) from
    the folder's committed files; empty when the study has none yet."""
    out_dir = Path(out_dir)
    if not (out_dir / CELLS).exists():
        return {}, {}
    data = read_json(out_dir / CELLS)
    sigs = data.get("signatures", {})
    cells = {}
    for name, rec in data.get("cells", {}).items():
        missing = sorted(set(rec.get("machine", {}).values()) - set(sigs))
        if missing:
            raise DataError(
                f"{out_dir / CELLS}: cell {name} names signature {missing[0]}, which is not in `signatures`"
            )
        cells[name] = {**rec, "machine": {stage: sigs[i] for stage, i in rec.get("machine", {}).items()}}
    path = out_dir / OUTCOMES
    return cells, parse_outcomes(read_jsonl(path), str(path)) if path.exists() else {}


def write(out_dir: str | Path, grid: Grid, cells: dict[str, dict], tables: dict[str, Table]) -> None:
    """Write the declared cells' records and outcomes (signatures stored once, by id)."""
    out_dir = Path(out_dir)
    declared = [c.name for c in grid.cells()]
    sigs: dict[str, dict] = {}
    stored = {}
    for name in sorted(n for n in declared if n in cells):
        rec = cells[name]
        ids = {stage: signature_id(sig) for stage, sig in rec.get("machine", {}).items()}
        sigs |= {signature_id(sig): sig for sig in rec.get("machine", {}).values()}
        stored[name] = {**rec, "machine": ids}
    write_json(out_dir / CELLS, {"study": grid.name, "grid": grid.path.as_posix(), "signatures": sigs, "cells": stored})
    write_jsonl(
        out_dir / OUTCOMES, [line for name in sorted(stored) for line in outcome_lines(name, tables.get(name, {}))]
    )


def check_study(out_dir: str | Path, grid: Grid) -> None:
    """The folder's files must belong to this grid (a wrong --out-dir would mix studies)."""
    path = Path(out_dir) / CELLS
    if path.exists():
        study = read_json(path).get("study")
        if study != grid.name:
            raise DataError(
                f"{path} holds study '{study}', not '{grid.name}' ({grid.path}): pick the grid's own --out-dir"
            )


def accuracy(outcomes: dict[str, bool]) -> float:
    return sum(outcomes.values()) / len(outcomes) if outcomes else 0.0


def results(grid: Grid, cells: dict[str, dict], tables: dict[str, Table]) -> Results:
    """The page's input, from the committed records and outcomes of the declared cells."""
    res = Results()
    for cell in grid.cells():
        rec = cells.get(cell.name)
        if rec is None:
            res.missing.append(cell.name)
            continue
        res.cells[cell.name] = rec
        row = {"task": cell.task, "mode": cell.mode, "seed": cell.seed, **rec["teacher"]}
        if cell.kind == "lever":
            res.levers.append(row)
            continue
        res.teacher.append(row)
        if rec.get("wall"):
            res.walls.append({"cell": cell.name, **rec["wall"]})
        by_variant: dict[str, dict[str, dict[str, bool]]] = {}
        for (variant, split, decoding), per in tables.get(cell.name, {}).items():
            key = split_key(split, decoding == "calculator")
            by_variant.setdefault(variant, {})[key] = {i: ok for i, (ok, _) in per.items()}
        for variant in cell.overrides["train.variants"]:
            outcomes = by_variant.get(variant, {})
            res.runs.append(
                StudentRun(
                    task=cell.task,
                    mode=cell.mode,
                    seed=cell.seed,
                    variant=variant,
                    accuracy={s: accuracy(o) for s, o in outcomes.items()},
                    outcomes=outcomes,
                    train_examples=(rec.get("train_examples") or {}).get(variant),
                    cell=cell.name,
                    mode_own=per_mode(variant, cell.overrides),
                )
            )
    return res
