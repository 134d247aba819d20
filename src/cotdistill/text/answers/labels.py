"""Word answers: yes/no, short text (last letters), and multiple-choice option letters.

Each reader takes the answer text of a final-answer statement (see markers.py), or, for
the flexible fallback, the whole output. All return a canonical answer or None.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from .markers import affirmed

YES = frozenset({"yes", "true", "correct"})
NO = frozenset({"no", "false", "incorrect"})
# "correct" / "incorrect" are gold spellings only: after a marker they usually judge
# something else ("the answer is correct"), so the extractor reads yes/no/true/false.
_YES_NO = re.compile(r"(?<![\w/-])(yes|no|true|false)(?![\w/'\u2019-])(?!\s+one\b)", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(r"\b(?:not|never|n['\u2019]t)\s*$", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_CLOSING = {'"': '"\u201d', "'": "'\u2019", "`": "`", "\u201c": '\u201d"', "\u2018": "\u2019'"}
# Where a text answer ends: clause punctuation, a dash, or a word that starts a reason
# ("The answer is nk, since ...", "The answer is nk because ...").
_CLAUSE_END = re.compile(
    r"[,;:!?\n()\[\]]|\.(?=\s|$)|\s[-\u2013\u2014](?=\s|$)"
    r"|\s(?:because|since|as|so|which|therefore|hence|thus)\b",
    re.IGNORECASE,
)
_LEAD = re.compile(r"[\s*_\"'`\u201c\u2018]*")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
LETTERS = "ABCDE"
# An option token: "(b)", "b)", "option B", or a bare letter that ends there ("B.",
# "B, because", "b"); "e.g." and "a bird" are words, not options.
_OPTION = re.compile(
    r"(?:(?:option|choice|letter)\s+)?"
    r"(?:\(?(?P<paren>[a-z])\)|(?P<bare>[a-z])(?=[\"'\u201d\u2019]?[.,:;!?]?[\"'\u201d\u2019]?(?:\s|$)))",
    re.IGNORECASE,
)
_ARTICLE_USE = re.compile(r"\s+(?!(?:because|since|as|so|which|therefore|hence|thus)\b)[a-z]", re.IGNORECASE)
_PAREN_OPTION = re.compile(r"(?<!\w)\(([a-z])\)", re.IGNORECASE)
_LIST_RUN = 3  # this many options in letter order are an enumeration, not a pick


def normalise_text(value: str) -> str:
    """Lower case, quotes and final punctuation removed, inner spaces collapsed."""
    v = value.strip().strip(_QUOTES).strip()
    v = v.rstrip(".!?").strip().strip(_QUOTES)
    return re.sub(r"\s+", " ", v).lower()


def _yes_no_at(m: re.Match) -> Optional[str]:
    """The yes/no of one matched word; None when "not" negates it."""
    if _NEGATED_BEFORE.search(m.string, max(0, m.start() - 8), m.start()):
        return None
    return "yes" if m.group(1).lower() in YES else "no"


def yes_no_answer(answer: str) -> Optional[str]:
    """The first yes/no word of a statement's answer text ("probably no" -> "no")."""
    m = _YES_NO.search(answer)
    return _yes_no_at(m) if m else None


def last_yes_no(text: str) -> Optional[str]:
    """The last yes/no word of a whole output (the flexible fallback)."""
    last = None
    for last in _YES_NO.finditer(text):  # noqa: B007  `last` is read after the loop
        pass
    return _yes_no_at(last) if last else None


def _clause(answer: str) -> str:
    """The answer's first clause, or the content of the quotes it starts with."""
    start = _LEAD.match(answer).end()
    opening = answer[start - 1] if start and answer[start - 1] in _CLOSING else None
    if opening:
        ends = [i for i in (answer.find(c, start) for c in _CLOSING[opening]) if i >= 0]
        if ends:
            return answer[start : min(ends)]
    end = _CLAUSE_END.search(answer, start)
    return answer[start : end.start() if end else len(answer)].strip("*_`")


# The instruction's own placeholder, copied by a model that did not answer: "The answer is X."
_PLACEHOLDER = re.compile(r"""\s*["'`\u201c\u2018]?X["'`\u201d\u2019]?[.!]?["'`\u201d\u2019]?\s*""")


def text_answer(answer: str) -> Optional[str]:
    """A short text answer: "nk, since ..." -> "nk"; '"ny".' -> "ny"; an equation's
    result: '"n" + "k" = "nk"' -> "nk". The placeholder "X" (upper case) is no answer."""
    if _PLACEHOLDER.fullmatch(answer):
        return None
    end = _CLAUSE_END.search(answer)
    result = answer.rfind("=", 0, end.start() if end else len(answer))  # in the first clause only
    # emphasis marks may sit inside the quotes too: '"nk*"' is nk, as "*nk*" is
    return _worded(normalise_text(normalise_text(_clause(answer[result + 1 :])).strip("*_`")))


def bare_text(text: str) -> Optional[str]:
    """The last line of an output when it is a bare answer (at most three words, no
    clause punctuation), else None: reasoning without a marker states no answer."""
    line = text.rstrip()
    line = line[line.rfind("\n") + 1 :].strip()
    if len(line.split()) > 3 or re.search(r"[,;:!?]|\.\s", line):
        return None
    line = affirmed(line)  # "not nk" answers nothing, as after a marker
    return text_answer(line) if line is not None else None


def _worded(value: str) -> Optional[str]:
    """A text answer has a letter or digit: "=" or "--" is no answer."""
    return value if any(c.isalnum() for c in value) else None


def _option_text(text: str, choices: Optional[Sequence[str]], letters: str) -> Optional[str]:
    """The letter of the one option whose text `text` is ("a bird" -> the option "bird")."""
    if not choices:
        return None
    wanted = normalise_text(_ARTICLE.sub("", text.strip(), count=1))
    hits = [
        letters[i]
        for i, c in enumerate(choices[: len(letters)])
        if normalise_text(_ARTICLE.sub("", c.strip(), count=1)) == wanted
    ]
    return hits[0] if wanted and len(hits) == 1 else None


def _letter(m: re.Match, letters: str) -> Optional[str]:
    letter = (m["paren"] or m["bare"]).upper()
    return letter if letter in letters else None


def _letters(choices: Optional[Sequence[str]]) -> str:
    return LETTERS[: len(choices)] if choices else LETTERS


class NotAnOption(str):
    """A statement that names something no option is ("The answer is a van."): an answer,
    though a wrong one, so it conflicts with a letter stated elsewhere in the output."""


def choice_answer(answer: str, choices: Optional[Sequence[str]] = None) -> Optional[str]:
    """The option a statement names: its letter ("(b)", "B.", "option B"), else the text
    of exactly one option ("bank" when the options are given). With the options known, a
    short phrase (up to three words) that is no option is a `NotAnOption`; anything
    longer ("a place where people can rel rel ...") is unreadable (None)."""
    letters = _letters(choices)
    answer = answer.replace("*", "")  # markdown emphasis: "**B**"
    start = _LEAD.match(answer).end()
    m = _OPTION.match(answer, start)
    if m and not (m["bare"] and m["bare"] in "aA" and _ARTICLE_USE.match(answer, m.end())):
        return _letter(m, letters)
    clause = _clause(answer)
    picked = _option_text(clause, choices, letters)
    if picked is None and choices and 0 < len(clause.split()) <= 3:
        return NotAnOption(normalise_text(clause))
    return picked


def _enumerated(tokens: list[str]) -> set[int]:
    """Indices of tokens in runs of consecutive letters ("(A) .. (B) .. (C)"): a listing."""
    listed: set[int] = set()
    run = 1
    for i in range(1, len(tokens) + 1):
        if i < len(tokens) and ord(tokens[i]) == ord(tokens[i - 1]) + 1:
            run += 1
            continue
        if run >= _LIST_RUN:
            listed.update(range(i - run, i))
        run = 1
    return listed


def choice_fallback(text: str, choices: Optional[Sequence[str]] = None) -> Optional[str]:
    """The option an output without a marker picks (the flexible fallback).

    The whole output as one option token, option text, or both ("B. library"); else the
    last "(X)" that is not part of an options listing ("I pick (c). Options: (a) ..
    (b) .. (c) .." -> C).
    """
    letters = _letters(choices)
    whole = text.strip()
    m = _OPTION.fullmatch(whole.strip(_QUOTES + "*").rstrip("."))
    if m:
        return _letter(m, letters)
    named = _option_text(whole, choices, letters)
    if named:
        return named
    m = _OPTION.match(whole)
    letter = _letter(m, letters) if m else None
    if letter and _option_text(whole[m.end() :].lstrip(".:) "), choices, letters) == letter:
        return letter
    tokens = [t.upper() for t in _PAREN_OPTION.findall(text) if t.upper() in letters]
    listed = _enumerated(tokens)
    picks = [t for i, t in enumerate(tokens) if i not in listed]
    return picks[-1] if picks else None
