"""The `multitask` variant: distilling step-by-step (Hsieh et al., 2023).

One student learns two tasks from the same kept CoT, told apart by a prefix on the
question: `[label] question -> answer` and `[rationale] question -> CoT`. Its loss is
`alpha * label + (1 - alpha) * rationale`. At test time only the label task is decoded,
so the student costs what the answer-only student costs; the rationale task is decoded
too, as a diagnostic (the answer read from the rationale it writes).

Each row of data/filtered/multitask/ holds one question with both targets (`target`: the
answer, `rationale`: the CoT), so that a batch always carries both tasks of the same
questions. alpha (train.multitask_alpha) travels in that folder's tasks.json: a new alpha
retrains this variant only, never the others.
"""

from __future__ import annotations

from pathlib import Path

from .io import read_json

MULTITASK = "multitask"
LABEL, RATIONALE = "label", "rationale"
PREFIXES = {LABEL: "[label] ", RATIONALE: "[rationale] "}
TASKS_FILE = "tasks.json"  # in the variant's data folder: {"alpha": ..., "prefixes": {...}}

Example = tuple[str, str, str]  # (question, answer target, rationale target)


def task_source(task: str, question: str) -> str:
    """The model input of `question` in `task` (label or rationale)."""
    return PREFIXES[task] + question


def task_spec(alpha: float) -> dict:
    """What data/filtered/multitask/tasks.json holds."""
    return {"alpha": alpha, "prefixes": dict(PREFIXES)}


def examples(rows: list[dict]) -> list[Example]:
    """(question, answer target, rationale target) of the variant's rows."""
    return [(r["question"], r["target"], r["rationale"]) for r in rows]


def read_alpha(folder: str | Path) -> float:
    """train.multitask_alpha as the filter stage wrote it beside the rows."""
    return float(read_json(Path(folder) / TASKS_FILE)["alpha"])
