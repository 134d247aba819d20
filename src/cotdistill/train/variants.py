"""Student variants: what each student learns to write, and what that needs and does.

- `answer`: the gold answer alone (the paper's baseline);
- `gold`: the dataset's own rationale, closed by "The answer is X.";
- `cot`: the teacher's kept CoTs (filtering.py), closed the same way;
- `multitask`: distilling step-by-step (Hsieh et al., 2023). One student learns two tasks
  from the same kept CoT, told apart by a prefix on the question: `[label] question ->
  answer` and `[rationale] question -> CoT`, with the loss `alpha * label + (1 - alpha) *
  rationale`. At test time only the label task is scored, so it costs what the
  answer-only student costs; the rationale task is decoded too, as a diagnostic.

A variant is one registered `Variant`, and the stages and the study ask it instead of
comparing its name: its rows (`rows`), whether they come from the teacher
(`from_teacher`), the params.filter keys they also read (`filter_keys`), the tasks it
trains and evaluation decodes (`tasks`), the params.train keys it reads (`setting_keys`)
and its loss weights (`weights`). The gold variant's rows take the quality that
filter.gold_noise, filter.gold_coverage and filter.gold_questions ask for
(filter/rationale_quality.py).

The filter stage writes every variant's rows to `data/filtered/<variant>/` (and its
settings to SETTINGS_FILE there), so each train stage depends only on its own variant's
folder: a new teacher or filter setting reruns train@cot and leaves train@answer and
train@gold cached, and a new multitask_alpha retrains the multitask student alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cotdistill.core.errors import DataError
from cotdistill.core.io import read_json
from cotdistill.core.registry import Registry
from cotdistill.text.rationale import close_rationale

SETTINGS_FILE = "tasks.json"  # in a variant's data folder, when it has settings
BASELINE = "answer"  # the paper's baseline: every comparison is against it
GOLD = "gold"  # the dataset's own rationales: a perfect teacher, or one of a chosen quality


@dataclass(frozen=True)
class Task:
    """One thing a student is asked to do: the row column that holds its target, and the
    prefix a multitask student reads before the question to know which task it is."""

    name: str
    column: str = "target"
    prefix: str = ""

    def source(self, question: str) -> str:
        return self.prefix + question


ONE_TASK = (Task("target"),)
LABEL = Task("label", "target", "[label] ")
RATIONALE = Task("rationale", "rationale", "[rationale] ")


@dataclass(frozen=True)
class Variant:
    name: str
    # (records of a split, the filter's kept CoTs of that split) -> the split's target rows
    rows: Callable[[list[dict], list[dict]], list[dict]]
    # its rows are built from the teacher's kept CoTs: a new teacher or filter setting changes them
    from_teacher: bool
    # what the student learns; evaluation scores the first and decodes the others as diagnostics
    tasks: tuple[Task, ...] = ONE_TASK
    setting_keys: tuple[str, ...] = ()  # params.train keys it reads, kept in its data folder
    # its settings -> the loss weight of each task
    weights: Callable[[dict], tuple[float, ...]] = lambda settings: (1.0,)
    # params.filter keys its rows read besides the teacher's CoTs: a study's teacher mode that
    # sets one makes a student of this variant per mode (gold under filter.gold_noise)
    filter_keys: tuple[str, ...] = ()

    def settings(self, train_cfg) -> dict:
        """What the filter writes beside the rows (nothing for a variant without settings)."""
        if not self.setting_keys:
            return {}
        return {
            **{k: getattr(train_cfg, k) for k in self.setting_keys},
            "prefixes": {t.name: t.prefix for t in self.tasks},
        }

    def read_settings(self, folder: str | Path) -> dict:
        """The settings the filter wrote beside the rows in `folder` (setting_keys only)."""
        if not self.setting_keys:
            return {}
        written = read_json(Path(folder) / SETTINGS_FILE)
        return {k: written[k] for k in self.setting_keys}

    def examples(self, rows: list[dict]) -> list[tuple[str, ...]]:
        """(question, the target of each task) of each row."""
        return [(r["question"], *(r[t.column] for t in self.tasks)) for r in rows]


def _row(record: dict, target: str) -> dict:
    return {"id": record["id"], "question": record["question"], "answer": record["answer"], "target": target}


def answer_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    return [_row(r, r["answer"]) for r in records]


def gold_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    rows = [_row(r, close_rationale(r["gold_rationale"], r["answer"])) for r in records if r.get("gold_rationale")]
    if records and not rows:
        raise DataError(
            "variant 'gold' needs records with a gold_rationale; this dataset has none "
            "(remove gold from train.variants)"
        )
    return rows


def cot_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    return [_row(k, k["target"]) for k in kept]


def multitask_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    # Both tasks are built from the same kept CoT: a question the filter dropped has no
    # label row either, as in the paper.
    return [{**_row(k, k["answer"]), RATIONALE.column: k["target"]} for k in kept]


def _label_and_rationale(settings: dict) -> tuple[float, float]:
    alpha = settings["multitask_alpha"]
    return alpha, 1 - alpha


VARIANTS: Registry[Variant] = Registry("variant")
for _variant in (
    Variant("answer", answer_rows, from_teacher=False),
    Variant("cot", cot_rows, from_teacher=True),
    Variant(GOLD, gold_rows, from_teacher=False, filter_keys=("gold_noise", "gold_coverage", "gold_questions")),
    Variant(
        "multitask",
        multitask_rows,
        from_teacher=True,
        tasks=(LABEL, RATIONALE),
        setting_keys=("multitask_alpha",),
        weights=_label_and_rationale,
    ),
):
    VARIANTS.register(_variant.name, _variant)

# the tasks evaluation decodes as diagnostics (its metrics file holds one block each)
DIAGNOSTIC_TASKS = tuple(sorted({t.name for _, v in VARIANTS.items() for t in v.tasks[1:]}))
# params.train keys that only variants read (train.py keeps them out of the resolved training settings)
SETTING_KEYS = tuple(sorted({k for _, v in VARIANTS.items() for k in v.setting_keys}))


def variant_rows(variant: str, records: list[dict], kept: list[dict]) -> list[dict]:
    """The target rows of `variant` for one split."""
    return VARIANTS.get(variant).rows(records, kept)
