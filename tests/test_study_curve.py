"""The rationale-quality study: modes that set the gold rationales' quality make their own
gold students, and the page's curve section gives each point's accuracy with its interval,
its verdict against answer-only and the break-even points."""

import random
import re

import pytest
import yaml

from cotdistill.core.config import ConfigError
from cotdistill.study.analysis import StudentRun, comparisons, select_runs
from cotdistill.study.curve import break_even, curve_section, plot_curve, points, teacher_sentences
from cotdistill.study.grid import load_grid, per_mode
from cotdistill.study.page import verdict

GRID = {
    "name": "q",
    "seeds": [0, 1, 2],
    "alpha": 0.01,
    "params": {"model": "t5-mini", "train.max_steps": 5, "generate.max_questions": 1},
    "tasks": {"arith": {"dataset": "multistep_arith"}},
    "variants": ["answer", "gold"],
    "teachers": {
        "f0": {"filter.gold_noise": 0.0},
        "f50": {"filter.gold_noise": 0.5},
        "f100": {"filter.gold_noise": 1.0},
        "c25": {"filter.gold_coverage": 0.25},
        "c05": {"filter.gold_coverage": 0.05},
    },
}

# accuracy per student: f0 and f50 clearly above the baseline, f100 at it; c25 above, c05 at it
ACCURACY = {"answer": 0.1, "f0": 0.5, "f50": 0.35, "f100": 0.1, "c25": 0.3, "c05": 0.12}


def grid(tmp_path, base_params):
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump(GRID, sort_keys=False))
    return load_grid(path, base_params)


def student(cell, variant: str, accuracy: float, key: str) -> StudentRun:
    """A student of `cell` right on each of 300 ID +calc questions with chance `accuracy`
    (questions drawn from `key`: the same key, the same outcomes)."""
    rng = random.Random(f"{cell.seed}:{key}")
    right = {f"q{i}": rng.random() < accuracy for i in range(300)}
    return StudentRun(
        cell.task,
        cell.mode,
        cell.seed,
        variant,
        {"id_calc": sum(right.values()) / 300},
        {"id_calc": right},
        cell=cell.name,
        mode_own=per_mode(variant, cell.overrides),
    )


def runs_of(g) -> list[StudentRun]:
    out = []
    for cell in g.student_cells():
        for variant in ("answer", "gold"):
            key = "answer" if variant == "answer" else cell.mode
            out.append(student(cell, variant, ACCURACY[key], key))
    return out


def test_a_mode_that_sets_the_rationales_quality_has_its_own_gold_student(tmp_path, base_params):
    g = grid(tmp_path, base_params)
    runs = runs_of(g)
    chosen, stable = select_runs(runs, "f0")
    labels = sorted({r.label for r in chosen})
    assert labels == ["answer", "gold[c05]", "gold[c25]", "gold[f0]", "gold[f100]", "gold[f50]"]
    assert stable == {"arith": True}  # the answer students of every mode are the same
    # a teacher mode leaves gold alone: one gold student for all modes, as before
    assert not per_mode("gold", {"generate.answer_hint": True}) and per_mode("cot", {})
    assert [(p.mode, p.right) for p in points(g)] == [
        ("f0", 1.0),
        ("f50", 0.5),
        ("f100", 0.0),
        ("c25", 0.25),
        ("c05", 0.05),
    ]


def test_the_curve_states_each_axis_break_even(tmp_path, base_params):
    g = grid(tmp_path, base_params)
    runs = select_runs(runs_of(g), "f0")[0]
    tests = comparisons(runs)
    verdicts = {t["student"]: verdict(t, g.alpha) for t in tests}
    assert verdicts["gold[f50]"] == "beats" and verdicts["gold[f100]"] != "beats"
    pts = points(g)
    assert [p and p.mode for p in break_even(pts, verdicts, "noise")] == ["f50", "f100"]
    assert [p and p.mode for p in break_even(pts, verdicts, "coverage")] == ["c25", "c05"]
    text = "\n".join(curve_section(g, runs, tests, verdict, "out"))
    assert "- **arith, ID +calc**, noise: beats answer-only up to f = 0.5, not at f = 1." in text
    assert "- **arith, ID +calc**, coverage: beats answer-only up to c = 0.25, not at c = 0.05." in text
    # every rate carries its interval
    row = next(line for line in text.splitlines() if line.startswith("| gold[f50] | 0.5 | 1 | 0.5 |"))
    assert re.fullmatch(r"\| gold\[f50\] \| 0\.5 \| 1 \| 0\.5 \| \d+\.\d \[\d+\.\d, \d+\.\d\] \|", row)
    # a point not yet measured in every seed is left out of the break-even points
    short = [r for r in runs if not (r.label == "gold[c05]" and r.seed == 2)]
    text = "\n".join(curve_section(g, short, comparisons(short), verdict, "out"))
    assert "(from the points measured in every seed; not yet in every seed: gold[c05])" in text
    assert "coverage: beats answer-only at every measured coverage point, down to c = 0.25." in text
    assert plot_curve(g, runs, "arith", tmp_path / "quality_arith.png")
    assert (tmp_path / "quality_arith.png").stat().st_size > 1000


def test_a_grid_without_quality_modes_has_no_curve(tmp_path, base_params):
    data = {**GRID, "teachers": {"hint": {"generate.answer_hint": True}}}
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    g = load_grid(path, base_params)
    assert points(g) == [] and curve_section(g, [], [], verdict, "out") == []


def test_a_lever_on_the_train_split_places_the_teacher_on_the_curve(tmp_path, base_params):
    data = {**GRID, "levers": {"teacher": {}}, "lever_questions": 200, "lever_split": "train"}
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    g = load_grid(path, base_params)
    lever = next(c for c in g.cells() if c.kind == "lever")
    assert lever.overrides["generate.max_questions"] == 200 and lever.seed == 0
    runs = select_runs(runs_of(g), "f0")[0]
    tests = comparisons(runs)
    row = {"task": "arith", "mode": "teacher", "questions": 200, "step_yield": 0.015}
    text = "\n".join(curve_section(g, runs, tests, verdict, "out", [row]))
    assert (
        "- **arith, the teacher** (lever `teacher`: the grid's params; 200 train questions of seed 0): a CoT "
        "right in every step for 3 of them, 1.5 [0.5, 4.3] %, so a student of its kept CoTs with the answer "
        "for the rest has right rationales for that share: left of every point that beats answer-only on "
        "ID +calc (the fewest right rationales: gold[c25], 0.25)." in text
    )
    # a teacher as good as the points that pay off is not placed left of them
    better = {**row, "step_yield": 0.3}
    assert "not separable from every point that beats" in "\n".join(
        curve_section(g, runs, tests, verdict, "out", [better])
    )
    beating = {"id_calc": points(g)[:2], "id": [], "ood": []}
    assert teacher_sentences(g, "arith", [row], beating)[0].endswith(
        "left of every point that beats answer-only on ID +calc (the fewest right rationales: gold[f50], 0.5); "
        "on ID and OOD no point beats answer-only."
    )
    assert plot_curve(g, runs, "arith", tmp_path / "quality_arith.png", [row])
    # measured on validation questions, a lever says nothing about the students' data
    g_val = load_grid(tmp_path / "quality.yaml", base_params)
    object.__setattr__(g_val, "lever_split", "validation")
    assert "the teacher" not in "\n".join(curve_section(g_val, runs, tests, verdict, "out", [row]))
    path.write_text(yaml.safe_dump({**data, "lever_split": "test"}, sort_keys=False))
    with pytest.raises(ConfigError, match="lever_split: expected one of validation, train, got 'test'"):
        load_grid(path, base_params)


def test_the_teacher_cot_student_is_tested_against_its_size_matched_gold_control(tmp_path, base_params):
    """A mode with filter.gold_questions: teacher_kept makes its own gold student (gold on
    exactly the teacher's kept questions): the page tests cot[mode] against it as well as
    against answer-only; a mode without it has no control, and gold stays shared."""
    from cotdistill.study.analysis import control_comparisons
    from cotdistill.study.committed import Results
    from cotdistill.study.page import page_text

    spec = {
        **GRID,
        "params": {"model": "t5-mini", "train.max_steps": 5},
        "variants": ["answer", "cot", "gold"],
        "teachers": {
            "kept": {"filter.missing_cot": "answer", "filter.gold_questions": "teacher_kept"},
            "plain": {"filter.missing_cot": "answer"},
        },
    }
    path = tmp_path / "teacher.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    g = load_grid(path, base_params)
    assert g.matched_modes() == {"kept"}
    acc = {"answer": 0.1, "cot": 0.1, "gold": 0.4}  # the control beats the teacher's CoTs
    runs = [
        student(cell, v, acc[v], v if v == "answer" else f"{v}:{cell.mode}")
        for cell in g.student_cells()
        for v in g.variants
    ]
    chosen, _ = select_runs(runs, "kept")
    assert sorted({r.label for r in chosen}) == ["answer", "cot[kept]", "cot[plain]", "gold[kept]"]
    controls = control_comparisons(chosen, g.matched_modes())
    assert [(t["student"], t["baseline"]) for t in controls] == [("cot[kept]", "gold[kept]")]
    assert controls[0]["diff"] < 0 and verdict(controls[0], g.alpha) == "loses to"
    cells = {c.name: {"commit": "0" * 40, "machine": {}} for c in g.student_cells()}
    text = page_text(g, Results(runs=runs, cells=cells), "out")
    assert "### Against the size-matched control" in text
    assert re.search(r"`cot\[kept\]` loses to `gold\[kept\]` on ID \+calc", text)
    assert "`cot[plain]` loses to `gold" not in text  # no control in a mode without one
