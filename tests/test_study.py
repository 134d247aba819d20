"""The study's pieces without DVC: the grid's validation and cells, the -S formatting,
pooled paired tests, summaries, the controlled-comparison check and the page (its
committed outcomes and provenance: tests/test_study_committed.py)."""

import math
import subprocess
from pathlib import Path

import pytest
import yaml

from cotdistill.core.config import ConfigError
from cotdistill.core.dvcexp import dvc_bin, dvc_env
from cotdistill.report.stats import mcnemar_exact
from cotdistill.study import run as study_run
from cotdistill.study.analysis import (
    StudentRun,
    outcomes_from_predictions,
    pooled_test,
    select_runs,
    summarise,
    teacher_row,
)
from cotdistill.study.grid import load_grid
from cotdistill.study.page import findings, verdict
from cotdistill.study.run import finished, format_value, queue_args
from cotdistill.study.seeds import paired_t_test

GRID = {
    "name": "t",
    "seeds": [0, 1],
    "threads": 1,
    "params": {"model": "t5-mini", "train.max_steps": 5},
    "tasks": {"coin_flip": {"dataset": "coin_flip"}, "arith": {"dataset": "multistep_arith"}},
    "variants": ["answer", "gold", "cot"],
    "teachers": {"hint": {"generate.answer_hint": True}, "no_hint": {"generate.answer_hint": False}},
    "levers": {"k4": {"generate.num_samples": 4, "generate.temperature": 0.7}},
}


def grid_file(tmp_path, **changes):
    data = {**GRID, **changes}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_cells_cover_the_grid_and_the_first_mode_runs_first(tmp_path, base_params):
    grid = load_grid(grid_file(tmp_path), base_params)
    cells = grid.cells()
    students = [c for c in cells if c.kind == "student"]
    assert len(students) == 2 * 2 * 2 and len([c for c in cells if c.kind == "lever"]) == 2
    assert [c.phase for c in cells] == sorted(c.phase for c in cells)
    assert {c.mode for c in cells if c.phase == 1} == {"hint"}
    cell = next(c for c in students if c.name == "t-arith-no_hint-s1")
    assert cell.overrides["seed"] == 1 and cell.overrides["dataset"] == "multistep_arith"
    assert cell.overrides["generate.answer_hint"] is False and cell.overrides["threads"] == 1
    lever = next(c for c in cells if c.kind == "lever" and c.task == "coin_flip")
    assert lever.overrides["train.variants"] == ["answer"] and lever.overrides["generate.max_questions"] == 32
    assert lever.seed == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"params": {"train.max_step": 5}}, "key 'train.max_step' is not in params.yaml"),
        ({"params": {"train.max_steps": -1}}, "train.max_steps: must be >= 1"),
        ({"tasks": {"x": {"dataset": "coin_flp"}}}, "did you mean 'coin_flip'"),
        ({"seeds": [0, 0]}, "seeds: expected a list of distinct integers"),
        ({"variants": ["cot"]}, "includes the answer-only baseline"),
        ({"teachers": {"bad name": {}}}, "must be letters, digits and _"),
        ({"sedds": [1]}, "unknown key 'sedds'"),
    ],
)
def test_bad_grids_fail_with_one_line_naming_the_key(tmp_path, base_params, change, message):
    with pytest.raises(ConfigError, match=message):
        load_grid(grid_file(tmp_path, **change), base_params)


def test_values_are_written_as_dvc_exp_run_reads_them():
    assert format_value(True) == "true" and format_value(None) == "null" and format_value(0.7) == "0.7"
    assert format_value(["answer", "cot"]) == "[answer,cot]"
    assert format_value("t5-mini") == "t5-mini"
    # a comma would start a sweep, a space would split the argument: quoted
    assert format_value("accelerate launch --x 1,2") == "'accelerate launch --x 1,2'"


def test_the_queue_workers_find_dvc_without_an_activated_venv(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert dvc_env()["PATH"].split(":")[0] == str(Path(dvc_bin()).parent)


def test_a_study_whose_queue_workers_died_stops_with_what_to_run(tmp_path, base_params, monkeypatch):
    """DVC's workers are daemons: one that cannot start leaves every cell Queued for ever."""
    cells = load_grid(grid_file(tmp_path), base_params).cells()[:2]
    status = "\n".join(f"abc{i}  {c.name}  05:13 PM   Queued" for i, c in enumerate(cells))
    status += "\n\nWorker status: 0 active, 0 idle\n"
    calls = []

    def fake_dvc(args, repo, check=True):
        calls.append(args[:2])
        out = status if args[:2] == ["queue", "status"] and len(calls) > 1 else ""
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(study_run, "_dvc", fake_dvc)
    monkeypatch.setattr(study_run, "experiments", lambda repo, all_commits: {})
    monkeypatch.setattr(study_run.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    with pytest.raises(RuntimeError, match="no DVC queue worker is running but 2 cell"):
        study_run.run_cells(cells, tmp_path, jobs=2, poll_s=0, on_progress=lambda _: None)


def test_a_study_in_a_clone_without_the_locks_outputs_says_to_reproduce_first(tmp_path, base_params, monkeypatch):
    """Seen in a fresh clone: a queued cell whose prepare the run cache restored failed with
    "failed to load directory ('data', 'prepared')": the experiment starts from the committed
    dvc.lock and loads its objects, which that clone's cache never held."""
    cells = load_grid(grid_file(tmp_path), base_params).cells()[:1]
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    outs:\n    - path: data/prepared\n"
        "      md5: 8eb554848bb0cd33968a2a04f07d11d4.dir\n"
    )
    cache = tmp_path / "cache"

    def fake_dvc(args, repo, check=True):
        return subprocess.CompletedProcess(args, 0, f"{cache}\n" if args == ["cache", "dir"] else "", "")

    monkeypatch.setattr(study_run, "_dvc", fake_dvc)
    monkeypatch.setattr(study_run, "experiments", lambda repo, all_commits: {})
    assert study_run.missing_lock_outputs(tmp_path) == ["data/prepared"]
    with pytest.raises(RuntimeError, match=r"lacks the committed dvc.lock's outputs \(data/prepared\).*make repro"):
        study_run.run_cells(cells, tmp_path, jobs=1, poll_s=0, on_progress=lambda _: None)
    (cache / "files/md5/8e").mkdir(parents=True)
    (cache / "files/md5/8e/b554848bb0cd33968a2a04f07d11d4.dir").write_text("[]")
    assert study_run.missing_lock_outputs(tmp_path) == []
    # the metrics dvc.yaml keeps out of the cache are in git, not missing (a foreach
    # stage's ${item} matches any variant)
    (tmp_path / "dvc.lock").write_text(
        (tmp_path / "dvc.lock").read_text()
        + "  train@gold:\n    outs:\n    - path: metrics/train/gold.json\n      md5: 0123456789abcdef0123456789abcdef\n"
        "    - path: models/gold\n      md5: 1123456789abcdef0123456789abcdef.dir\n"
    )
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: ${train.variants}\n    do:\n      cmd: x\n      outs:\n"
        "        - models/${item}\n      metrics:\n        - metrics/train/${item}.json:\n            cache: false\n"
    )
    assert study_run.missing_lock_outputs(tmp_path) == ["models/gold"]


def test_a_running_cell_is_waited_for_though_dvc_counts_no_worker(tmp_path, base_params, monkeypatch):
    """Seen on loaded cores: `dvc queue status` said "0 active, 0 idle" while a cell ran, and
    the study stopped (the cell went on and finished)."""
    cells = load_grid(grid_file(tmp_path), base_params).cells()[:1]
    polls = []

    def fake_dvc(args, repo, check=True):
        if args[:2] != ["queue", "status"]:
            return subprocess.CompletedProcess(args, 0, "", "")
        polls.append(1)
        state = "Running" if len(polls) < 6 else "Success"
        return subprocess.CompletedProcess(
            args, 0, f"abc0  {cells[0].name}  05:13 PM   {state}\n\nWorker status: 0 active, 0 idle\n", ""
        )

    monkeypatch.setattr(study_run, "_dvc", fake_dvc)
    monkeypatch.setattr(study_run, "experiments", lambda repo, all_commits: {})
    monkeypatch.setattr(study_run.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    assert study_run.run_cells(cells, tmp_path, jobs=1, poll_s=0, on_progress=lambda _: None) == {
        cells[0].name: "Success"
    }


def test_queue_args_name_the_experiment(tmp_path, base_params):
    cell = load_grid(grid_file(tmp_path), base_params).cells()[0]
    args = queue_args(cell)
    assert args[:5] == ["exp", "run", "--queue", "-n", cell.name]
    assert "train.variants=[answer,gold,cot]" in args
    lever = next(c for c in load_grid(grid_file(tmp_path), base_params).cells() if c.kind == "lever")
    assert queue_args(lever)[5] == "filter"  # a lever cell stops after the filter: it trains nothing
    # `study rerun-cell` runs the same command in a clean clone's workspace
    assert queue_args(cell, queue=False) == [a for a in args if a != "--queue"]


def test_the_committed_study_grid_is_valid(repo_root, base_params):
    grid = load_grid(repo_root / "studies" / "cot_distillation.yaml", base_params)
    assert len(grid.seeds) >= 3 and {"answer", "gold", "cot"} <= set(grid.variants)
    assert "hint" in grid.teachers and len(grid.tasks) >= 2
    # the hint's effect and rejection sampling are measured on the teacher
    assert any(p.get("generate.answer_hint") is False for p in grid.levers.values())
    assert any(p.get("generate.num_samples", 1) > 1 for p in grid.levers.values())


def test_a_task_may_train_under_some_teacher_modes(tmp_path, base_params):
    tasks = {"coin_flip": {"dataset": "coin_flip", "teachers": ["hint"]}, "arith": {"dataset": "multistep_arith"}}
    grid = load_grid(grid_file(tmp_path, tasks=tasks), base_params)
    modes = {(c.task, c.mode) for c in grid.student_cells()}
    assert modes == {("coin_flip", "hint"), ("arith", "hint"), ("arith", "no_hint")}
    assert "teachers" not in grid.tasks["coin_flip"]
    with pytest.raises(ConfigError, match="must include 'hint'"):
        load_grid(grid_file(tmp_path, tasks={"c": {"dataset": "coin_flip", "teachers": ["no_hint"]}}), base_params)


def test_a_cell_is_finished_when_every_variant_is_evaluated(tmp_path, base_params):
    cell = load_grid(grid_file(tmp_path), base_params).cells()[0]
    metrics = {f"metrics/evaluate/{v}.json": {} for v in ("answer", "gold")}
    assert not finished(cell, None) and not finished(cell, {"metrics": metrics})
    metrics["metrics/evaluate/cot.json"] = {}
    assert finished(cell, {"metrics": metrics})


def run(task="arith", mode="hint", seed=0, variant="answer", correct=(True, False, True, False), split="id"):
    ids = [f"q{i}" for i in range(len(correct))]
    return StudentRun(
        task,
        mode,
        seed,
        variant,
        {split: sum(correct) / len(correct)},
        {split: dict(zip(ids, correct))},
        train_examples=4,
    )


def test_pooled_test_sums_discordant_pairs_over_seeds():
    a = [run(variant="gold", seed=0, correct=(1, 1, 1, 0)), run(variant="gold", seed=1, correct=(1, 1, 0, 0))]
    b = [run(seed=0, correct=(0, 0, 1, 0)), run(seed=1, correct=(0, 1, 0, 1))]
    t = pooled_test(a, b, "id")
    # seed 0: only a right on q0, q1; seed 1: only a right on q0, only b right on q3
    assert (t["only_a"], t["only_b"], t["n"], t["seeds"]) == (3, 1, 8, [0, 1])
    assert t["p_value"] == pytest.approx(mcnemar_exact([1, 1, 1, 0], [0, 0, 0, 1])["p_value"])
    assert t["diff"] == pytest.approx((5 - 3) / 8)
    assert pooled_test(a, [run(seed=5)], "id") is None
    # across seeds: seed 0 +2/4, seed 1 0/4; a paired t-test of those two differences
    assert t["seed_diffs"] == [0.5, 0.0]
    assert t["seed_p_value"] == pytest.approx(paired_t_test([0.5, 0.0])["p_value"])
    assert pooled_test(a[:1], b, "id")["seed_p_value"] is None  # one seed: no test across seeds


def test_summaries_give_mean_and_sd_over_seeds():
    runs = [run(seed=s, correct=c) for s, c in ((0, (1, 1, 0, 0)), (1, (1, 1, 1, 1)))]
    (s,) = summarise(runs)
    assert s.mean["id"] == pytest.approx(0.75) and s.sd["id"] == pytest.approx(math.sqrt(0.125))
    assert math.isnan(summarise([run()])[0].sd["id"])  # one seed: no sd


def test_answer_and_gold_come_from_the_first_mode_and_must_not_move():
    same = [run(mode="hint"), run(mode="no_hint"), run(mode="hint", variant="cot"), run(mode="no_hint", variant="cot")]
    chosen, stable = select_runs(same, "hint")
    assert sorted(r.label for r in chosen) == ["answer", "cot[hint]", "cot[no_hint]"]
    assert stable == {"arith": True}
    moved = same + [run(task="coin", mode="hint"), run(task="coin", mode="no_hint", correct=(0, 0, 0, 0))]
    assert select_runs(moved, "hint")[1] == {"arith": True, "coin": False}


def test_every_variant_built_from_the_teacher_is_kept_for_every_mode():
    """multitask trains on the kept CoTs as cot does: a student per teacher mode. Before the
    variant said so itself, the study took only `cot` per mode, so it dropped the later
    modes' multitask students and compared them with the first mode's as if they were the
    answer-only baseline, calling the baseline "not identical" across modes."""
    multitask = [
        run(mode="hint", variant="multitask", correct=(1, 1, 0, 0)),
        run(mode="no_hint", variant="multitask", correct=(0, 0, 0, 0)),
    ]
    chosen, stable = select_runs([run(mode="hint"), run(mode="no_hint"), *multitask], "hint")
    assert sorted(r.label for r in chosen) == ["answer", "multitask[hint]", "multitask[no_hint]"]
    assert stable == {"arith": True}  # the answer students match; the multitask ones may differ


def test_outcomes_are_keyed_by_split_and_calculator():
    rows = [
        {"split": "test", "calculator": False, "id": 1, "correct": True},
        {"split": "test", "calculator": True, "id": 1, "correct": False},
        {"split": "test_ood", "calculator": False, "id": "x", "correct": False},
    ]
    assert outcomes_from_predictions(rows) == {"id": {"1": True}, "id_calc": {"1": False}, "ood": {"x": False}}


def test_teacher_row_reads_the_filters_audit():
    m = {
        "generations": 8,
        "kept": 3,
        "keep_rate": 0.375,
        "questions": 4,
        "questions_asked": 4,
        "answer_correct_rate": 0.5,
        "steps": {"precision": 0.25, "yield": 0.5, "kept_step_correct": 2, "kept_step_correct_rate": 0.6667},
        "labels": {"split": {"no": 2, "yes": 2}, "kept": {"yes": 3}},
        "validation": {"generations": 2},
    }
    row = teacher_row("coin", "hint", m)
    assert row["samples_per_question"] == 2 and row["step_yield"] == 0.5 and row["labels_kept"] == {"yes": 3}
    assert teacher_row("coin", "hint", m, "validation")["kept"] is None


def test_findings_sentence_per_student():
    base = {"task": "a", "student": "gold", "baseline": "answer"}
    tests = [
        {**base, "split": "id", "p_value": 1e-5, "diff": 0.3, "seed_diffs": [0.2, 0.3, 0.4], "seed_p_value": 0.02},
        {**base, "split": "ood", "p_value": 0.2, "diff": 0.05},
    ]
    grid = type("G", (), {"teachers": {"hint": {}}, "alpha": 0.01})()
    (line,) = findings(tests, grid)
    assert line.startswith(
        "- **a**, `gold` beats `answer` on ID (+30.0 points, pooled p=1.0e-05; across seeds p=0.020)"
    )
    assert "is within noise of `answer` on OOD (+5.0 points, pooled p=0.200)" in line


def test_a_pooled_difference_the_seeds_disagree_on_is_no_win():
    """Below the level pooled, but one seed goes the other way: the page says the students
    differ, not that one beats the other."""
    t = {"task": "a", "student": "gold", "baseline": "answer", "split": "id", "p_value": 1e-4, "diff": 0.1}
    assert verdict({**t, "seed_diffs": [0.2, 0.15, -0.05]}, 0.01) == "mixed"
    assert verdict({**t, "seed_diffs": [0.2, 0.15, 0.05]}, 0.01) == "beats"
    assert verdict({**t, "diff": -0.1, "seed_diffs": [-0.2, -0.1, -0.01]}, 0.01) == "loses to"
    assert verdict({**t, "p_value": 0.02, "seed_diffs": [0.2, 0.15, 0.05]}, 0.01) == "ties"
    grid = type("G", (), {"teachers": {"hint": {}}, "alpha": 0.01})()
    (line,) = findings([{**t, "seed_diffs": [0.2, 0.15, -0.05], "seed_p_value": 0.3}], grid)
    assert "`gold` differs from `answer` on ID" in line
