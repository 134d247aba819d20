"""The declaration of a study: a committed YAML grid, validated, expanded into cells.

A cell is one DVC experiment. Student cells are (task, teacher mode, seed): each trains
`variants` (the answer-only baseline, the gold-rationale student and the teacher-CoT
student) on the task's data, with the teacher prompted as the mode says. Lever cells
measure the teacher alone (yield of step-verified CoTs) on a few validation questions
(or, with `lever_split: train`, on the students' own train questions), for (task, lever)
at the first seed. The first teacher mode's cells run first (phase 1);
the other cells then find the answer and gold students in DVC's run cache, since those
depend on neither the teacher nor the filter.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cotdistill.core.config import ConfigError, parse_params
from cotdistill.core.errors import yaml_error
from cotdistill.train.variants import BASELINE, VARIANTS

TOP_KEYS = (
    "name",
    "description",
    "threads",
    "jobs",
    "seeds",
    "params",
    "tasks",
    "variants",
    "teachers",
    "levers",
    "lever_questions",
    "lever_split",
    "alpha",
)

LEVER_SPLITS = ("validation", "train")


@dataclass(frozen=True)
class Cell:
    name: str  # the DVC experiment's name
    kind: str  # student | lever
    task: str
    mode: str  # the teacher mode (student cells) or the lever's name
    seed: int
    phase: int
    overrides: dict[str, Any]  # dotted params key -> value, as `dvc exp run -S` sets them


@dataclass(frozen=True)
class Grid:
    path: Path
    name: str
    description: str
    threads: int
    jobs: int
    seeds: list[int]
    params: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    variants: list[str]
    teachers: dict[str, dict[str, Any]]
    levers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lever_questions: int = 32
    lever_split: str = "validation"  # the split a lever cell's teacher is measured on (train: the students' questions)
    task_teachers: dict[str, list[str]] = field(default_factory=dict)  # task -> its modes (default: all)
    alpha: float = 0.01  # the one significance level of every verdict on the study's page

    def modes(self, task: str) -> list[str]:
        return self.task_teachers.get(task, list(self.teachers))

    def student_cells(self) -> list[Cell]:
        out = []
        first = next(iter(self.teachers))
        for task, task_params in self.tasks.items():
            for mode in self.modes(task):
                mode_params = self.teachers[mode]
                for seed in self.seeds:
                    over = {
                        **self.params,
                        **task_params,
                        **mode_params,
                        "seed": seed,
                        "threads": self.threads,
                        "train.variants": list(self.variants),
                    }
                    out.append(
                        Cell(
                            f"{self.name}-{task}-{mode}-s{seed}",
                            "student",
                            task,
                            mode,
                            seed,
                            1 if mode == first else 2,
                            over,
                        )
                    )
        return out

    def lever_cells(self) -> list[Cell]:
        out = []
        seed = self.seeds[0]
        for task, task_params in self.tasks.items():
            for lever, lever_params in self.levers.items():
                over = {
                    **self.params,
                    **task_params,
                    **lever_params,
                    "seed": seed,
                    "threads": self.threads,
                    "generate.max_questions": self.lever_questions,
                    "train.variants": [BASELINE],
                }
                # (the variants list is what the filter writes targets for; a lever cell
                # runs the DAG up to the filter and trains nothing)
                out.append(Cell(f"{self.name}-{task}-lever-{lever}", "lever", task, lever, seed, 2, over))
        return out

    def matched_modes(self) -> set[str]:
        """The teacher modes whose gold student is the size-matched control (their cells set
        filter.gold_questions: teacher_kept)."""
        return {c.mode for c in self.student_cells() if c.overrides.get("filter.gold_questions") == "teacher_kept"}

    def cells(self) -> list[Cell]:
        return sorted(self.student_cells() + self.lever_cells(), key=lambda c: c.phase)


def per_mode(variant: str, overrides: dict[str, Any]) -> bool:
    """Whether a cell's student of `variant` is its teacher mode's own: built from the
    teacher's CoTs, or from rationales whose quality the mode sets (a mode that sets
    filter.gold_noise, filter.gold_coverage or filter.gold_questions makes its own gold
    student). Otherwise the first mode's student stands for every mode (answer; gold at
    the dataset's quality)."""
    v = VARIANTS.get(variant)
    return v.from_teacher or any(f"filter.{k}" in overrides for k in v.filter_keys)


def _fail(path: Path, msg: str) -> ConfigError:
    return ConfigError(f"{path}: {msg}")


def _mapping(path: Path, key: str, value: Any) -> dict:
    if not isinstance(value, dict) or not value:
        raise _fail(path, f"{key}: expected a non-empty mapping, got {value!r}")
    return value


def _name(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]*", value):
        raise _fail(path, f"{key}: {value!r} must be letters, digits and _ (it names DVC experiments)")
    return value


def set_dotted(data: dict, key: str, value: Any) -> None:
    """data['a']['b'] = value for key 'a.b' (the key must exist, as for `dvc exp run -S`)."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(".".join(parts[: i + 1]))
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def check_cell(base_params: dict, cell: Cell, where: str) -> None:
    """The cell's params must name existing keys and pass the project's validation."""
    data = copy.deepcopy(base_params)
    for key, value in cell.overrides.items():
        try:
            set_dotted(data, key, value)
        except KeyError as exc:
            raise ConfigError(
                f"{where}: cell {cell.name}: key '{exc.args[0]}' is not in params.yaml "
                "(`dvc exp run -S` only sets existing keys)"
            ) from None
    parse_params(data, f"{where}: cell {cell.name}")


def _task_teachers(path: Path, data: dict) -> dict[str, list[str]]:
    """A task may list the teacher modes its students are trained under (`teachers:` in
    the task's mapping; default: every mode). The first mode must be among them: its
    cells train the answer and gold students."""
    out = {}
    first = next(iter(data["teachers"]))
    for task, body in data["tasks"].items():
        modes = (body or {}).get("teachers")
        if modes is None:
            continue
        if not isinstance(modes, list) or not modes or any(m not in data["teachers"] for m in modes):
            raise _fail(
                path,
                f"tasks.{task}.teachers: expected a list of teacher modes "
                f"({', '.join(data['teachers'])}), got {modes!r}",
            )
        if first not in modes:
            raise _fail(
                path,
                f"tasks.{task}.teachers: must include '{first}', the first mode "
                "(its cells train the answer and gold students)",
            )
        out[task] = modes
    return out


def load_grid(path: str | Path, base_params: dict, check_cells: bool = True) -> Grid:
    """Read and validate a study file; with `check_cells`, each cell's params against
    params.yaml (`base_params`) too. Re-rendering the page of cells that already ran does
    not check them: a later params.yaml may have moved on."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
    if not isinstance(data, dict):
        raise _fail(path, "expected a mapping with keys " + ", ".join(TOP_KEYS))
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise _fail(path, f"unknown key '{unknown[0]}'; allowed: {', '.join(TOP_KEYS)}")
    for key in ("name", "seeds", "tasks", "variants", "teachers"):
        if key not in data:
            raise _fail(path, f"missing key '{key}'")
    seeds = data["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise _fail(path, f"seeds: expected a list of distinct integers, got {seeds!r}")
    variants = data["variants"]
    if not isinstance(variants, list) or BASELINE not in variants:
        raise _fail(path, f"variants: expected a list that includes the answer-only baseline, got {variants!r}")
    for key in ("threads", "jobs", "lever_questions"):
        if key in data and (not isinstance(data[key], int) or data[key] < 1):
            raise _fail(path, f"{key}: expected an integer >= 1, got {data[key]!r}")
    lever_split = data.get("lever_split", "validation")
    if lever_split not in LEVER_SPLITS:
        raise _fail(path, f"lever_split: expected one of {', '.join(LEVER_SPLITS)}, got {lever_split!r}")
    alpha = data.get("alpha", 0.01)
    if not isinstance(alpha, float) or not 0 < alpha < 1:
        raise _fail(path, f"alpha: expected a significance level between 0 and 1, got {alpha!r}")
    grid = Grid(
        path=path,
        name=_name(path, "name", data["name"]),
        description=str(data.get("description", "")).strip(),
        threads=data.get("threads", 1),
        jobs=data.get("jobs", 1),
        seeds=seeds,
        params=dict(data.get("params") or {}),
        tasks={
            _name(path, "tasks", k): {p: x for p, x in (v or {}).items() if p != "teachers"}
            for k, v in _mapping(path, "tasks", data["tasks"]).items()
        },
        variants=variants,
        teachers={
            _name(path, "teachers", k): dict(v or {}) for k, v in _mapping(path, "teachers", data["teachers"]).items()
        },
        levers={_name(path, "levers", k): dict(v or {}) for k, v in (data.get("levers") or {}).items()},
        lever_questions=data.get("lever_questions", 32),
        lever_split=lever_split,
        task_teachers=_task_teachers(path, data),
        alpha=alpha,
    )
    for cell in grid.cells() if check_cells else []:
        check_cell(base_params, cell, str(path))
    return grid
