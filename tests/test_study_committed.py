"""A study's committed outcomes (outcomes.jsonl, cells.json) and the page made from them
alone: the format round trip, the page re-rendered byte for byte, a hand-edited outcome
that changes it, and the commits and machine signatures the page names."""

import json

import pytest
import yaml
from click.testing import CliRunner

from cotdistill.cli import main
from cotdistill.core.errors import DataError
from cotdistill.study import committed
from cotdistill.study.analysis import teacher_row
from cotdistill.study.collect import cell_record, merge
from cotdistill.study.commands import load
from cotdistill.study.grid import load_grid
from cotdistill.study.page import page_text, render

from .test_study import GRID

SIG = {
    "torch": "2.13.0+cpu",
    "threads": 1,
    "cpu_capability": "AVX2",
    "float_paths": "portable",
    "env": {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "cpu": "AuthenticAMD AMD EPYC",
}
VARIANTS = ("answer", "gold", "cot")


def record(cell, commit="a" * 40, sig=SIG):
    teacher = teacher_row("arith", "hint", {"generations": 4, "kept": 1, "questions_asked": 4})
    return {
        "experiment": cell,
        "commit": commit,
        "exp_rev": "e" * 40,
        "timestamp": "2026-12-01T10:00:00",
        "machine": {f"{s}/{v}": sig for v in VARIANTS for s in ("train", "evaluate")} if sig else {},
        "threads": [1],
        "teacher": {k: v for k, v in teacher.items() if k not in ("task", "mode")},
        "train_examples": {v: 4 for v in VARIANTS},
    }


def table(**correct):
    """variant -> 0/1 per question on the ID split, plain decoding."""
    return {
        (v, "test", "plain"): {f"test-{i:03d}": (bool(c), False) for i, c in enumerate(cs)} for v, cs in correct.items()
    }


ANSWER = (0,) * 20 + (1,) * 5  # 20% right
SAME = dict(answer=ANSWER, gold=(1,) * 25, cot=(0,) * 25)


@pytest.fixture
def study(tmp_path):
    """A repository folder with a grid and the committed files of its arith cells (the
    coin_flip and lever cells never ran)."""
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies/t.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
    _, grid = load(str(tmp_path), "studies/t.yaml", check_cells=False)  # as the CLI names it
    cells, tables = {}, {}
    for mode in ("hint", "no_hint"):
        for seed in (0, 1):
            name = f"t-arith-{mode}-s{seed}"
            cells[name] = record(name)
            tables[name] = table(**SAME) if mode == "hint" else table(answer=ANSWER, gold=(1,) * 25, cot=ANSWER)
    committed.write(tmp_path / "study", grid, cells, tables)
    return tmp_path, grid


def _page(root, grid):
    return page_text(grid, committed.results(grid, *committed.read(root / "study")), "study")


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_outcomes_round_trip_one_line_per_variant_split_and_decoding():
    rows = [
        {"id": "b", "split": "test", "calculator": False, "correct": True, "extracted": "1"},
        {"id": "a", "split": "test", "calculator": False, "correct": False, "extracted": None},
        {"id": "a", "split": "test", "calculator": True, "correct": True, "extracted": "2"},
    ]
    t = committed.table_from_predictions({"gold": rows})
    lines = committed.outcome_lines("c", t)
    assert lines == [
        {"cell": "c", "split": "test", "ids": ["a", "b"]},
        {"cell": "c", "variant": "gold", "split": "test", "decoding": "calculator", "correct": "1-", "invalid": "0-"},
        {"cell": "c", "variant": "gold", "split": "test", "decoding": "plain", "correct": "01", "invalid": "10"},
    ]
    assert committed.parse_outcomes(lines) == {"c": t}
    with pytest.raises(DataError, match="one of 0, 1, - per id"):
        committed.parse_outcomes([lines[0], {**lines[2], "correct": "0"}])


def test_the_page_is_recomputed_from_the_committed_files_byte_for_byte(study):
    root, grid = study
    page = render(grid, committed.results(grid, *committed.read(root / "study")), root, "study")
    text = page.read_text(encoding="utf-8")
    assert "| arith | gold | 2 | 4 | 100.0 ± 0.0 [" in text and "| arith | answer | 2 | 4 | 20.0 ± 0.0 [" in text
    assert "`gold` beats `answer` on ID (+80.0 points" in text and "`cot[hint]` loses to `answer` on ID" in text
    assert "`cot[no_hint]` is within noise of `answer`" in text and "identical, example for example" in text
    assert "**Missing cells (6)**: t-coin_flip-hint-s0" in text and "torch threads: 1" in text
    assert (root / "study/accuracy_arith.png").stat().st_size > 1000
    assert _page(root, grid) == text
    out = _run("study", "page", "studies/t.yaml", "--repo", str(root), "--out-dir", "study", "--check")
    assert out.exit_code == 0 and "what its committed outcomes make" in out.output
    assert _run("study", "page", "studies/t.yaml", "--repo", str(root), "--out-dir", "study").exit_code == 0
    assert page.read_text(encoding="utf-8") == text


def test_a_hand_edited_outcome_changes_the_page(study):
    root, grid = study
    render(grid, committed.results(grid, *committed.read(root / "study")), root, "study")
    path = root / "study" / committed.OUTCOMES
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    line = next(x for x in lines if x.get("cell") == "t-arith-hint-s0" and x.get("variant") == "gold")
    line["correct"] = "0" + line["correct"][1:]  # one question of one seed turned wrong
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    text = _page(root, grid)
    assert "| arith | gold | 2 | 4 | 98.0 ± 2.8 [" in text and text != (root / "study/README.md").read_text()
    out = _run("study", "page", "studies/t.yaml", "--repo", str(root), "--out-dir", "study", "--check")
    assert out.exit_code == 1 and "-| arith | gold | 2 | 4 | 100.0 ± 0.0 [" in out.output


def test_the_page_names_commits_and_signatures_and_which_rows_mix_them(study):
    root, grid = study
    cells, tables = committed.read(root / "study")
    assert "a" * 10 + "; S1 |" in _page(root, grid).split("| arith | answer |")[1].splitlines()[0]
    native = {**SIG, "float_paths": "native", "cpu_capability": "AVX512", "env": {}}
    cells["t-arith-hint-s1"] = record("t-arith-hint-s1", commit="c" * 40, sig=native)
    cells["t-arith-no_hint-s1"] = record("t-arith-no_hint-s1", sig=None)  # made before signatures
    committed.write(root / "study", grid, cells, tables)
    text = _page(root, grid)
    assert f"- cells ran from commit(s): {'a' * 10} (3 cells), {'c' * 10} (1 cell)" in text
    assert "  - S1 (2 cells): torch 2.13.0+cpu, 1 threads, portable float code paths" in text
    assert "processors: AuthenticAMD AMD EPYC" in text
    assert "  - S2 (1 cell): torch 2.13.0+cpu, 1 threads, this processor's own float code paths" in text
    assert "  - not recorded (1 cell): made before" in text
    accuracy = text.split("## Test accuracy")[1].split("## Paired tests")[0]
    rows = {line.split(" | ")[1]: line for line in accuracy.splitlines() if line.startswith("| arith | ")}
    # answer and gold come from the hint cells (two commits, two signatures); cot[no_hint] from S1 and an old cell
    assert rows["answer"].endswith("| mixed: 2 commits; mixed: S1, S2 |")
    assert rows["cot[no_hint]"].endswith(f"| {'a' * 10}; mixed: S1, not recorded |")
    stored = json.loads((root / "study" / committed.CELLS).read_text())
    assert len(stored["signatures"]) == 2  # each signature once, cells name it by id
    assert stored["cells"]["t-arith-hint-s1"]["machine"]["train/cot"] == committed.signature_id(native)


def test_wall_times_only_where_old_experiments_kept_them(study):
    root, grid = study
    assert "Not recorded in the experiments (wall seconds are no outcome" in _page(root, grid)
    cells, tables = committed.read(root / "study")
    cells["t-arith-hint-s0"]["wall"] = {"teacher_s": 3.0, "train_s": 10.0, "evaluate_s": 2.0}
    committed.write(root / "study", grid, cells, tables)
    text = _page(root, grid)
    assert "| t-arith-hint-s0 | 3.0 | 10 | 2 |" in text and "Cells not listed: not recorded" in text


def test_a_record_keeps_provenance_and_reads_old_metrics(tmp_path):
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({**GRID, "variants": ["answer", "cot"]}))
    cell = next(c for c in load_grid(tmp_path / "g.yaml", {}, check_cells=False).cells() if c.mode == "no_hint")
    new = {
        "metrics/train/answer.json": {"train_examples": 8, "machine": SIG},
        "metrics/evaluate/answer.json": {"machine": SIG},
        "metrics/evaluate/cot.json": {"machine": SIG},
        "metrics/train/cot.json": {"train_examples": 3, "machine": SIG},
        "metrics/filter.json": {"kept": 3},
    }
    rec = cell_record(cell, {"metrics": new, "baseline": "b" * 40, "rev": "r" * 40, "timestamp": "t1"}, "hint")
    assert (rec["commit"], rec["exp_rev"], rec["threads"], rec["train_examples"]) == (
        "b" * 40,
        "r" * 40,
        [1],
        {"answer": 8, "cot": 3},
    )
    assert set(rec["machine"]) == {"train/answer", "evaluate/answer", "train/cot", "evaluate/cot"}
    assert "wall" not in rec and rec["teacher"]["kept"] == 3
    old = {
        "metrics/train/answer.json": {"torch_threads": 2, "wall_s": 50.0},
        "metrics/train/cot.json": {"wall_s": 7.0},
        "metrics/evaluate/answer.json": {"torch_threads": 2, "wall_s": 5.0},
        "metrics/evaluate/cot.json": {},
        "metrics/generate.json": {"generations": {"teacher_s": 9.5}},
    }
    rec = cell_record(cell, {"metrics": old, "baseline": "b" * 40, "rev": "r" * 40}, "hint")
    assert rec["machine"] == {} and rec["threads"] == [2]
    # a later teacher mode restores answer from the run cache: only cot's seconds are this cell's
    assert rec["wall"] == {"teacher_s": 9.5, "train_s": 7.0, "evaluate_s": 0.0}


def test_collected_cells_replace_older_records_and_gone_experiments_keep_theirs():
    kept = ({"x": {"timestamp": "2026-12-02"}, "y": {"timestamp": "2026-12-02"}}, {"x": {"k": 1}, "y": {"k": 2}})
    found = (
        {"x": {"timestamp": "2026-12-01"}, "y": {"timestamp": "2026-12-03"}, "z": {"timestamp": "1"}},
        {"x": {"k": 9}, "y": {"k": 8}, "z": {"k": 7}},
    )
    cells, tables = merge(kept, found)
    assert tables == {"x": {"k": 1}, "y": {"k": 8}, "z": {"k": 7}} and cells["y"]["timestamp"] == "2026-12-03"


def test_a_folder_of_another_study_is_refused(study):
    root, grid = study
    out = _run("study", "page", "studies/t.yaml", "--repo", str(root), "--out-dir", "elsewhere")
    assert out.exit_code == 2 and "no committed cells" in out.output
    other = json.loads((root / "study" / committed.CELLS).read_text())
    (root / "study" / committed.CELLS).write_text(json.dumps({**other, "study": "u"}))
    out = _run("study", "page", "studies/t.yaml", "--repo", str(root), "--out-dir", "study")
    assert out.exit_code == 2 and "holds study 'u', not 't'" in out.output


def test_study_without_a_subcommand_still_runs_a_grid(repo_root):
    out = _run("study", "--dry-run", str(repo_root / "studies/arith_budget.yaml"), "--repo", str(repo_root))
    assert out.exit_code == 0 and out.output.startswith("[phase 1] dvc exp run --queue -n arithbudget-arith")
    out = _run(
        "study",
        "rerun-cell",
        str(repo_root / "studies/arith_budget.yaml"),
        "arithbudget-arith-gold-s0",
        "--repo",
        str(repo_root),
    )
    assert out.exit_code == 2 and "did you mean 'arithbudget-arith-gold_only-s0'" in out.output


def test_teacher_table_names_the_seed_of_each_row(study):
    """Seeds of one task and mode are rows of their own, each naming its seed."""
    root, grid = study
    res = committed.results(grid, *committed.read(root / "study"))
    assert sorted((r["mode"], r["seed"]) for r in res.teacher) == [
        ("hint", 0),
        ("hint", 1),
        ("no_hint", 0),
        ("no_hint", 1),
    ]
    rows = [line.split("|") for line in _page(root, grid).splitlines() if line.startswith("| arith | hint |")]
    assert [cells[3].strip() for cells in rows] == ["0", "1"]
