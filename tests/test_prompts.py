"""The one prompt builder: rendering with and without the answer hint, errors that name the
prompt file and exemplar, and every prompt file's exemplars against its step checker."""

import pytest

from cotdistill.filter.steps import STEP_CHECKERS
from cotdistill.generate.prompts import load_prompt_file, prompt_path, teacher_prompts

from .conftest import qa_records


@pytest.mark.parametrize("dataset", ["coin_flip", "last_letters", "multistep_arith"])
def test_prompt_exemplars_pass_their_step_checker(dataset):
    from cotdistill.generate.prompts import format_names, load_prompt_file, prompt_path

    for fmt in format_names(prompt_path(dataset)):
        for ex in load_prompt_file(prompt_path(dataset), fmt).exemplars:
            assert STEP_CHECKERS.get(dataset)(ex.question, ex.rationale) is None, (fmt, ex.question)


def test_prompt_formats_share_questions_and_unknown_format_is_named():
    from cotdistill.generate.prompts import exemplar_questions, load_prompt_file, prompt_path

    path = prompt_path("multistep_arith")
    default, echo, plan = (load_prompt_file(path, f) for f in ("default", "echo", "plan"))
    assert [e.question for e in default.exemplars] == [e.question for e in echo.exemplars]
    assert [e.question for e in default.exemplars] == [e.question for e in plan.exemplars]
    assert default.exemplars[0].rationale != echo.exemplars[0].rationale
    assert plan.exemplars[0].rationale.startswith("Plan: start at 19, times 4, minus 4. 19 * 4 = 76.")
    assert exemplar_questions(path) == [e.question for e in default.exemplars]
    with pytest.raises(ValueError, match="no format 'ech'; allowed: default, echo, plan"):
        load_prompt_file(path, "ech")


def test_every_dataset_default_format_is_in_its_prompt_file_and_null_selects_it():
    from cotdistill.core.catalog.datasets import DATASETS
    from cotdistill.generate.prompts import format_names, resolve_format

    for name in DATASETS.names():
        assert resolve_format(name, None) in format_names(prompt_path(name)), name
        assert resolve_format(name, "default") == "default"
    # coin_flip's teacher writes more step-correct CoTs with echo (benchmarks/results/teacher_levers*.md)
    assert resolve_format("coin_flip", None) == "echo"
    assert resolve_format("multistep_arith", None) == "default"


def render(pf, question: str, answer: str | None, shots: int) -> str:
    return teacher_prompts(pf, qa_records([(question, answer)]), shots, answer is not None)[0][0]


def test_prompt_renders_with_and_without_hint():
    pf = load_prompt_file(prompt_path("coin_flip"))
    hinted = render(pf, "A coin is heads up. Bo flips the coin. Is the coin still heads up?", "no", 2)
    plain = render(pf, "A coin is heads up. Bo flips the coin. Is the coin still heads up?", None, 2)
    assert hinted.endswith("Correct answer: no\nReasoning:")
    assert plain.endswith("Is the coin still heads up?\nReasoning:")
    assert "Correct answer" not in plain
    assert hinted.count("Question:") == 3 and plain.count("Question:") == 3
    # the layout, byte for byte: instruction, then one block per exemplar, then the question
    ex = pf.exemplars[0]
    assert hinted.startswith(
        f"{pf.instruction}\n\nQuestion: {ex.question}\nCorrect answer: {ex.answer}\nReasoning: {ex.rationale}\n\n"
    )
    with pytest.raises(ValueError, match="only 5 exemplars"):
        render(pf, "q", None, 9)


def test_prompt_file_errors_name_file_and_exemplar(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("instruction: x\nexemplars:\n  - question: q\n    answer: 'yes'\n    rationale: no ending\n")
    with pytest.raises(ValueError, match=r"p.yaml: exemplars\[0\]: rationale must end with 'The answer is yes.'"):
        load_prompt_file(bad)


def test_exemplars_drawn_per_question_are_seeded_by_question_and_differ_between_questions():
    """generate.exemplars: per_question shows each question `shots` exemplars of the whole
    pool, drawn by (seed, question id): the same on a rerun and whatever the questions
    around it; fixed is the first `shots` for every question, as before."""
    from cotdistill.generate.prompts import draw_exemplars

    pf = load_prompt_file(prompt_path("multistep_arith"))
    assert len(pf.exemplars) >= 16
    rows = qa_records((f"Ann has {i + 2} pens. She finds 1 more. How many?", "1") for i in range(40))
    fixed, shared = teacher_prompts(pf, rows, 4, True)
    assert fixed == [render(pf, r["question"], r["answer"], 4) for r in rows]
    assert shared == fixed[0][: fixed[0].rindex("Question:")] and all(p.startswith(shared) for p in fixed)

    drawn, shared = teacher_prompts(pf, rows, 4, True, "per_question", seed=0)
    assert drawn == teacher_prompts(pf, list(reversed(rows)), 4, True, "per_question", 0)[0][::-1]
    assert shared == pf.instruction + "\n\n" and all(p.startswith(shared) for p in drawn)
    sets = [draw_exemplars(pf, 4, "per_question", 0, r["id"]) for r in rows]
    assert all(len(set(s)) == 4 and set(s) <= set(pf.exemplars) for s in sets)
    assert sum(a[0] == b[0] for a, b in zip(sets, sets[1:])) <= 8  # neighbours rarely lead alike
    assert len({s for x in sets for s in x}) == len(pf.exemplars)  # the whole pool is used
    assert sets != [draw_exemplars(pf, 4, "per_question", 1, r["id"]) for r in rows]  # the seed matters
    assert all(p.count("Question:") == 5 and p.endswith("Correct answer: 1\nReasoning:") for p in drawn)
    with pytest.raises(ValueError, match="only 16 exemplars"):
        draw_exemplars(pf, 17, "per_question", 0, "q0")
