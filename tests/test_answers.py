"""Table-driven tests of the shared answer extractors."""

import pytest

from cotdistill.answers import answer_sentence, extract, normalise_gold, parse_gold, parse_number

NUMBER_CASES = [  # (text, strict, flexible)
    ("#### 1,234", "1234", "1234"),
    ("The answer is $5.50.", "5.5", "5.5"),
    ("The answer is 3/4.", "0.75", "0.75"),
    ("The answer is -2.", "-2", "-2"),
    ("The answer is 0.5", "0.5", "0.5"),
    ("The answer is 12 apples.", "12", "12"),
    ("The answer is 7.", "7", "7"),
    ("She has 3 apples and buys 4 more, so 7. The answer is 7.", "7", "7"),
    ("$5.50", None, "5.5"),
    ("3/4", None, "0.75"),
    ("12 apples", None, "12"),
    ("So 2 + 3 = 5 and then 5 * 2 = 10", None, "10"),
    ("The final answer is: 1,000,000", "1000000", "1000000"),
    ("Answer: 42", "42", "42"),
    ("The answer is 50%.", "50", "50"),
    ("The answer is unknown.", None, None),
    ("no numbers here", None, None),
    ("", None, None),
    ("The answer is \u22123.", "-3", "-3"),
    ("The answer is .5", "0.5", "0.5"),
    ("The answer is 1/3", "1/3", "1/3"),  # exact: was rounded to 0.333333
    ("The answer is 4/0.", None, None),
    ("First 3 then the answer is 8 and later 9. The answer is 10.", "10", "10"),
]

YES_NO_CASES = [
    ("The answer is yes.", "yes", "yes"),
    ("The answer is no.", "no", "no"),
    ("The answer is Yes", "yes", "yes"),
    ("The answer is NO.", "no", "no"),
    ("The answer is: yes", "yes", "yes"),
    ("the answer is true.", "yes", "yes"),
    ("The answer is false.", "no", "no"),
    ("yes", None, "yes"),
    ("No.", None, "no"),
    ("So the coin is tails up. No.", None, "no"),
    ("It stays heads up, yes it does", None, "yes"),
    ("The coin is heads up. The answer is yes. Or no?", "yes", "yes"),
    ("Answer: no", "no", "no"),
    ("The answer is maybe.", None, None),
    ("I don't know", None, None),
    ("", None, None),
    ("The answer is nobody.", None, None),
    ("yesterday", None, None),
]

TEXT_CASES = [
    ('The answer is "ny".', "ny", "ny"),
    ("The answer is ny.", "ny", "ny"),
    ("The answer is NY.", "ny", "ny"),
    ("The answer is 'abc'", "abc", "abc"),
    ("The answer is abc!", "abc", "abc"),
    ("The last letters are a, b. The answer is ab.", "ab", "ab"),
    ("ab", None, "ab"),
    ("reasoning\nab", None, "ab"),
    ("The answer is  Paris .", "paris", "paris"),
    ("The answer is New   York.", "new york", "new york"),
    ("The answer is “ln”.", "ln", "ln"),
    ("Answer: lk", "lk", "lk"),
    ("The answer is .", None, None),
    ("", None, None),
    ("The answer is x. The answer is y.", "y", "y"),
    ("#### ox", "ox", "ox"),
]

CHOICE_CASES = [
    ("The answer is (b).", "B", "B"),
    ("The answer is B.", "B", "B"),
    ("The answer is b", "B", "B"),
    ("The answer is (E)", "E", "E"),
    ("The answer is C: a river.", "C", "C"),
    ("Answer: a", "A", "A"),
    ("(d)", None, "D"),
    ("D", None, "D"),
    ("d.", None, "D"),
    ("Between (a) and (c), I pick (c)", None, "C"),
    ("The answer is F.", None, None),
    ("The answer is banana.", None, None),
    ("", None, None),
    ("The answer is (a) then (b)", "A", "A"),
    ("no letter", None, None),
    ("The answer is A, because", "A", "A"),
]


@pytest.mark.parametrize("answer_type, cases", [
    ("number", NUMBER_CASES), ("yes_no", YES_NO_CASES), ("text", TEXT_CASES), ("choice", CHOICE_CASES),
])
def test_tables_have_at_least_15_cases(answer_type, cases):
    assert len(cases) >= 15


def _params(cases):
    return [pytest.param(t, s, f, id=repr(t)[:40]) for t, s, f in cases]


@pytest.mark.parametrize("text, strict, flexible", _params(NUMBER_CASES))
def test_number(text, strict, flexible):
    assert extract(text, "number", "strict") == strict
    assert extract(text, "number", "flexible") == flexible


@pytest.mark.parametrize("text, strict, flexible", _params(YES_NO_CASES))
def test_yes_no(text, strict, flexible):
    assert extract(text, "yes_no", "strict") == strict
    assert extract(text, "yes_no", "flexible") == flexible


@pytest.mark.parametrize("text, strict, flexible", _params(TEXT_CASES))
def test_text(text, strict, flexible):
    assert extract(text, "text", "strict") == strict
    assert extract(text, "text", "flexible") == flexible


@pytest.mark.parametrize("text, strict, flexible", _params(CHOICE_CASES))
def test_choice(text, strict, flexible):
    assert extract(text, "choice", "strict") == strict
    assert extract(text, "choice", "flexible") == flexible


@pytest.mark.parametrize("gold, answer_type, expected", [
    ("1,234", "number", "1234"), ("9 apples", "number", "9"), ("yes", "yes_no", "yes"),
    ("No", "yes_no", "no"), ("ny", "text", "ny"), ("(c)", "choice", "C"),
])
def test_normalise_gold(gold, answer_type, expected):
    assert normalise_gold(gold, answer_type) == expected
    # a target ending in the canonical sentence reads back as its gold
    assert extract("Some steps. " + answer_sentence(gold), answer_type, "strict") == expected


def test_parse_number_rejects_garbage():
    assert parse_number("abc") is None
    assert parse_number("1/0") is None


def test_unknown_answer_type_and_mode():
    with pytest.raises(KeyError, match="allowed: choice, number, text, yes_no"):
        extract("x", "date")
    with pytest.raises(ValueError, match="strict"):
        extract("x", "number", "loose")


# Gold answers as datasets ship them -> the canonical form prepare stores (None: the row
# is malformed and counted). ASDiv's golds carry units, with or without parentheses.
GOLD_NUMBER_CASES = [
    ("9 (apples)", "9"),
    ("9 apples", "9"),
    ("15 balls", "15"),
    ("1,234", "1234"),
    ("$5.50", "5.5"),
    ("72", "72"),
    (72.0, "72"),
    (0.25, "0.25"),
    ("10.0", "10"),
    ("-2", "-2"),
    ("3/4", "0.75"),
    ("50%", "50"),
    ("12 cm^2", "12"),
    ("2 (m\u00b2)", "2"),
    ("4.5 km/hour", "4.5"),
    ("7.", "7"),
    ("3:4", None),
    ("4 (hours); 5 (minutes)", None),
    ("1.5 and 2", None),
    ("They are equal", None),
    ("", None),
    (None, None),
    (float("nan"), None),
]

GOLD_YES_NO_CASES = [
    (True, "yes"), (False, "no"), ("yes", "yes"), ("No", "no"), ("YES.", "yes"), ("true", "yes"),
    ("False", "no"), (" no ", "no"), ("'yes'", "yes"), ("Yes!", "yes"), ("incorrect", "no"),
    ("correct", "yes"), ("maybe", None), ("", None), ("yes and no", None), (None, None), ("1", None),
]

GOLD_CHOICE_CASES = [
    ("A", "A"), ("b", "B"), ("(c)", "C"), ("(D)", "D"), ("E.", "E"), ("A. bank", "A"),
    ("B: library", "B"), ("c) mall", "C"), (" d ", "D"), ("F", None), ("AB", None), ("", None),
    ("bank", None), (None, None), ("(G)", None), ("1", None),
]

GOLD_TEXT_CASES = [
    ("ny", "ny"), ("NY", "ny"), ("'abc'", "abc"), ("abc.", "abc"), (" Paris ", "paris"),
    ("New   York", "new york"), ("“ln”", "ln"), ("ok!", "ok"), ("a", "a"), ("", None), ("  ", None),
    (".", None), (None, None), ("x y z", "x y z"), ("Le", "le"),
]


@pytest.mark.parametrize("answer_type, cases", [
    ("number", GOLD_NUMBER_CASES), ("yes_no", GOLD_YES_NO_CASES), ("text", GOLD_TEXT_CASES),
    ("choice", GOLD_CHOICE_CASES),
])
def test_gold_tables_have_at_least_15_cases(answer_type, cases):
    assert len(cases) >= 15


@pytest.mark.parametrize("answer_type, gold, expected", [
    pytest.param(t, g, e, id=f"{t}-{g!r}"[:40])
    for t, cases in (("number", GOLD_NUMBER_CASES), ("yes_no", GOLD_YES_NO_CASES),
                     ("text", GOLD_TEXT_CASES), ("choice", GOLD_CHOICE_CASES))
    for g, e in cases
])
def test_parse_gold(answer_type, gold, expected):
    assert parse_gold(gold, answer_type) == expected
    if expected is not None:  # a canonical gold reads back through the shared extractor
        assert extract(answer_sentence(expected), answer_type, "strict") == expected
