"""The one prompt builder: rendering with and without the answer hint, errors that name the
prompt file and exemplar, and every prompt file's exemplars against its step checker."""

import pytest

from cotdistill.filter.steps import STEP_CHECKERS
from cotdistill.generate.prompts import load_prompt_file, prompt_path, render


@pytest.mark.parametrize("dataset", ["coin_flip", "last_letters", "multistep_arith"])
def test_prompt_exemplars_pass_their_step_checker(dataset):
    from cotdistill.generate.prompts import format_names, load_prompt_file, prompt_path

    for fmt in format_names(prompt_path(dataset)):
        for ex in load_prompt_file(prompt_path(dataset), fmt).exemplars:
            assert STEP_CHECKERS.get(dataset)(ex.question, ex.rationale) is None, (fmt, ex.question)


def test_prompt_formats_share_questions_and_unknown_format_is_named():
    from cotdistill.generate.prompts import exemplar_questions, load_prompt_file, prompt_path

    path = prompt_path("multistep_arith")
    default, echo = load_prompt_file(path), load_prompt_file(path, "echo")
    assert [e.question for e in default.exemplars] == [e.question for e in echo.exemplars]
    assert default.exemplars[0].rationale != echo.exemplars[0].rationale
    assert exemplar_questions(path) == [e.question for e in default.exemplars]
    with pytest.raises(ValueError, match="no format 'ech'; allowed: default, echo"):
        load_prompt_file(path, "ech")


def test_prompt_renders_with_and_without_hint():
    pf = load_prompt_file(prompt_path("coin_flip"))
    hinted = render(pf, "A coin is heads up. Bo flips the coin. Is the coin still heads up?", "no", 2)
    plain = render(pf, "A coin is heads up. Bo flips the coin. Is the coin still heads up?", None, 2)
    assert hinted.endswith("Correct answer: no\nReasoning:")
    assert plain.endswith("Is the coin still heads up?\nReasoning:")
    assert "Correct answer" not in plain
    assert hinted.count("Question:") == 3 and plain.count("Question:") == 3
    with pytest.raises(ValueError, match="only 5 exemplars"):
        render(pf, "q", None, 9)


def test_prompt_file_errors_name_file_and_exemplar(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("instruction: x\nexemplars:\n  - question: q\n    answer: 'yes'\n    rationale: no ending\n")
    with pytest.raises(ValueError, match=r"p.yaml: exemplars\[0\]: rationale must end with 'The answer is yes.'"):
        load_prompt_file(bad)
