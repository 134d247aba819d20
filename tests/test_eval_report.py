"""Metrics and reports: McNemar, the paper-style table, plot data, the experiments report."""

import json
from types import SimpleNamespace

import pytest

from cotdistill.core.io import write_csv
from cotdistill.report.experiments import records_from_dvc, render_table, write_experiment_report
from cotdistill.report.reporting import ACCURACY_FIELDS, accuracy_table, paired_tests, render_report
from cotdistill.report.stats import mcnemar_exact

from .conftest import REPO


@pytest.mark.parametrize(
    "a,b,only_a,only_b,p",
    [
        ([True] * 10, [True] * 10, 0, 0, 1.0),
        ([False] * 5 + [True] * 5, [True] * 10, 0, 5, 0.0625),  # 2 * (1/2)^5
        ([True] + [False] * 9, [False] + [True] * 9, 1, 9, 0.021484375),  # 2 * (1 + 10) / 1024
        ([True, False], [False, True], 1, 1, 1.0),
    ],
)
def test_mcnemar_exact(a, b, only_a, only_b, p):
    t = mcnemar_exact(a, b)
    assert (t["only_a"], t["only_b"]) == (only_a, only_b) and t["p_value"] == pytest.approx(p)
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([True], [])


def _m(acc, n=100):
    return {
        "accuracy": acc,
        "n": n,
        "correct": int(acc * n),
        "ci95_low": acc - 0.1,
        "ci95_high": acc + 0.1,
        "invalid_rate": 0.05,
    }


EVALS = [
    {"variant": "answer", "id": _m(0.2), "ood": _m(0.1), "calculator": {"id": _m(0.2), "ood": _m(0.1)}},
    {"variant": "cot", "id": _m(0.3), "ood": _m(0.15), "calculator": {"id": _m(0.4), "ood": _m(0.2)}},
    {"variant": "gold_rationale", "id": _m(0.35)},  # any list of variants, splits may be missing
]
FILTER = {
    "kept": 8,
    "generations": 10,
    "keep_rate": 0.8,
    "dropped_by_reason": {"wrong_answer": 1, "false_equation": 1, "wrong_step": 0},
}


def _preds(variant, correct):
    return [
        {"split": "test", "calculator": calc, "id": f"q{i}", "correct": c}
        for calc in (False, True)
        for i, c in enumerate(correct)
    ]


def test_report_table_has_every_variant_and_calculator_columns(tmp_path):
    params = SimpleNamespace(dataset="gsm8k", model="t5-small", teacher="t")
    preds = {"answer": _preds("answer", [True, False, False, False]), "cot": _preds("cot", [True, True, True, False])}
    md = render_report(params, EVALS, FILTER, preds)
    assert "| dataset | variant | n | ID | OOD | ID +calculator | OOD +calculator | invalid ID | invalid OOD |" in md
    assert (
        "| gsm8k | cot | 100/100 | 30.0 [20.0, 40.0] | 15.0 [5.0, 25.0] | 40.0 [30.0, 50.0] | 20.0 [10.0, 30.0] |"
    ) in md
    assert "| gsm8k | gold_rationale | 100 | 35.0 [25.0, 45.0] | n/a | n/a | n/a | 5.0% | n/a |" in md
    assert "| answer | cot | test | plain | 4 | 0 | 2 | 0.5 |" in md
    assert "| answer | answer +calculator | test | - | 4 | 0 | 0 | 1 |" in md
    assert "false_equation 1" in md
    rows = accuracy_table(EVALS)
    assert len(rows) == 4 + 4 + 1 and rows[0]["run"] == "answer ID"
    write_csv(tmp_path / "accuracy.csv", rows, ACCURACY_FIELDS)
    lines = (tmp_path / "accuracy.csv").read_text().splitlines()
    assert lines[0] == "run,variant,split,calculator,accuracy,ci95_low,ci95_high"
    assert lines[1] == f"answer ID,answer,id,False,0.2,{0.2 - 0.1},{0.2 + 0.1}"


def test_paired_tests_pair_by_id():
    a = [{"split": "test", "id": i, "correct": i < 3} for i in range(6)]
    b = [{"split": "test", "id": i, "correct": True} for i in reversed(range(6))]
    (t,) = paired_tests({"a": a, "b": b})
    assert (t["n"], t["only_a"], t["only_b"]) == (6, 0, 3)


def test_experiments_from_dvc_exp_show(tmp_path):
    shown = json.loads((REPO / "tests/fixtures/dvc_exp_show.json").read_text())  # real `dvc exp show --json -A`
    recs = records_from_dvc(shown)
    assert sorted((r["experiment"], r["student"], r["params_m"], r["n_train"], r["variant"]) for r in recs) == [
        ("main", "t5-mini", 1.1, 10, "answer"),
        ("main", "t5-mini", 1.1, 10, "cot"),
        ("nasty-chow", "t5-tiny", 9.6, 20, "answer"),
        ("nasty-chow", "t5-tiny", 9.6, 20, "cot"),
    ]
    assert all(r["id"] == 0.5 and r["id_calc"] == 0.6 and r["ood"] is None for r in recs)
    assert "| nasty-chow |  | t5-tiny | 9.6 | 20 |  | cot | 50.0 |  | 60.0 |  |" in render_table(recs)
    paths = write_experiment_report(recs, tmp_path / "exp")
    for p in paths:
        assert p.exists() and p.stat().st_size > 0
    assert [p.read_bytes()[:8] for p in paths if p.suffix == ".png"] == [b"\x89PNG\r\n\x1a\n"] * 2
    with pytest.raises(ValueError, match="no experiment has evaluation metrics"):
        write_experiment_report([], tmp_path / "none")
    assert {r["family"] for r in recs} == {"t5"}
    # both families in one student-size plot: a causal student's points join the T5 ones
    causal = [{**r, "experiment": "e2", "student": "llama-tiny", "family": "causal", "params_m": 3.9} for r in recs]
    both = write_experiment_report(recs + causal, tmp_path / "both")
    assert (tmp_path / "both/accuracy_vs_student_size.png").stat().st_size > 1000 and len(both) == 4
    # the prepared train size (after max_train / data_fraction) wins over the requested one
    exp = shown[1]["experiments"][0]["revs"][0]["data"]["metrics"]
    exp["metrics/prepare.json"] = {"data": {"n_train": 7}}
    exp["metrics/train/cot.json"] = {"data": {"train_examples": 5, "params_m": 9.9}}
    (cot,) = [r for r in records_from_dvc(shown) if r["experiment"] == "nasty-chow" and r["variant"] == "cot"]
    assert (cot["n_train"], cot["train_examples"], cot["params_m"]) == (7, 5, 9.6)


def test_evaluate_config_checks(base_params):
    from cotdistill.core.config import ConfigError, parse_params

    p = parse_params(base_params)
    assert p.evaluate.calculator is None and p.evaluate.do_sample is False and p.filter.verify_steps is False
    base_params["evaluate"].update(do_sample=True, temperature=0.0)
    with pytest.raises(ConfigError, match="evaluate.temperature must be > 0 when evaluate.do_sample is true"):
        parse_params(base_params)
    base_params["evaluate"].update(temperature=0.7, calculater=True)
    with pytest.raises(ConfigError, match="unknown key 'evaluate.calculater' \\(did you mean 'calculator'\\?\\)"):
        parse_params(base_params)


def test_report_gives_the_teachers_yield_precision_and_cost_per_right_cot():
    params = SimpleNamespace(dataset="multistep_arith", model="t5-small", teacher="t")
    steps = {"yield": 0.25, "precision": 0.05, "kept_step_correct": 5, "samples_per_step_correct": 20.0}
    filt = {**FILTER, "generations": 200, "questions_asked": 20, "fallbacks": 12, "steps": steps}
    md = render_report(params, EVALS[:1], filt, None)
    assert "12 questions without one trained on the answer alone" in md
    assert "(yield): 25.0 [11.2, 46.9]%; samples right in every step (precision): 5.0 [2.7, 9.0]%" in md
    assert "; 20.0 samples per step-correct question." in md
