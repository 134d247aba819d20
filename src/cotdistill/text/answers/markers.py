"""Final-answer markers: where a model states its answer, and the text that states it.

Every pattern here runs in time linear in the text: no pattern can start at every
character of a long run and scan to its end, and no two repeats can share characters
(which would make a failed match retry every split of a long run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# "The answer is", "the final answer is:", "Answer:", "**Final Answer:**", "####", "\boxed{".
# The optional "the final" belongs to the marker so that the reasoning before it ends cleanly.
_MARKER = re.compile(
    r"\b(?:the\s+)?(?:(?:final|correct)\s+)?answer(?:\s+is\b(?:\s*:)?|[\s*_]*:)"
    r"|####"
    r"|\\boxed\s*\{",
    re.IGNORECASE,
)
# What may stand between two markers of one statement ("The answer is $\boxed{4}$"),
# and between a marker and its answer ("Answer:** \n 42").
_JOINER = re.compile(r"[\s$*_:(\[\\]*")
_LEAD = re.compile(r"[\s*_:>]*")
# A sentence ends at a line break, "!" or "?", or a "." before a space ("12.5" and
# "Rs. 500" go on).
_SENTENCE_END = re.compile(r"\n|[!?]|(?<!approx)(?<!\brs)\.(?=\s|$)", re.IGNORECASE)
# "not 5, it is 7" names its answer after the correction; "not 5" names none.
_NEGATION = re.compile(r"(?:not|never)\b", re.IGNORECASE)
_CORRECTION = re.compile(r"\b(?:but|rather|instead|it\s+is|it['\u2019]s)\b[\s:,]*", re.IGNORECASE)
# The little LaTeX that boxed answers use, rewritten to plain text.
_LATEX = [
    (re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"\1/\2"),
    (re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\^\{([^{}]*)\}"), r"^(\1)"),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\(?:times|cdot)"), "\u00d7"),
    (re.compile(r"\\([$%])"), r"\1"),
    (re.compile(r"\\[,;! ]|~"), " "),
]


@dataclass(frozen=True)
class Statement:
    """A final-answer statement: where it starts, and the answer it states.

    `answer` is the text after the marker, to the end of its sentence (a boxed answer:
    the box's content), or None when the statement only negates ("The answer is not 5.").
    `open_end`: the statement runs to the end of the text with no sentence end after it,
    as when the output was cut off in the middle of it ("... The answer is lx").
    """

    start: int
    answer: Optional[str]
    open_end: bool = False


# "28 is the answer.", "... = 120, which is the answer.": the answer comes first, as a
# short clause right before the marker in the same sentence (not in a question).
_POSTFIX = re.compile(
    r"\b(?:is|was)\s+(?:the\s+)?(?:final\s+|correct\s+)?answer\b(?!\s+(?:is|was|to|of|for)\b)", re.IGNORECASE
)
_WHICH = re.compile(r"(?:,\s*which|\s+that)\s*$", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[.!?;:\n]\s|[!?;:\n]|,\s")
_CONNECTIVE = re.compile(r"^(?:so|thus|therefore|hence|and)\b[\s,]*", re.IGNORECASE)
_POSTFIX_WINDOW = 120  # characters before the marker that may hold its answer


def _boxed(text: str, pos: int, stop: int) -> str:
    """The content of the brace opened just before `pos` (to the line end, at most to
    `stop`, if unclosed)."""
    depth = 1
    for i in range(pos, stop):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                content = text[pos:i]
                for pattern, repl in _LATEX:
                    content = pattern.sub(repl, content)
                return content
    return text[pos:stop].split("\n", 1)[0]


def _sentence(text: str, pos: int, stop: int) -> str:
    """The text from `pos`, after leading emphasis and colons, to the end of its sentence
    (at most to `stop`)."""
    start = _LEAD.match(text, pos).end()
    end = _SENTENCE_END.search(text, start, stop)
    return text[start : end.start() if end else stop]


def affirmed(answer: str) -> Optional[str]:
    """The answer text with a leading negation resolved: "not 5, it is 7" -> "7"; "not 5" -> None."""
    if not _NEGATION.match(answer):
        return answer
    fix = _CORRECTION.search(answer)
    return answer[fix.end() :] if fix else None


def _postfix_statements(text: str) -> list[Statement]:
    """Statements that name their answer before the marker ("28 is the answer.")."""
    out = []
    for m in _POSTFIX.finditer(text):
        if text[m.end() : m.end() + 1] not in ("", ".", "!", ";", ",", "\n", " "):
            continue  # "What is the answer?" asks; it states nothing
        window_start = max(0, m.start() - _POSTFIX_WINDOW)
        before = text[window_start : m.start()]
        which = _WHICH.search(before)
        before = before[: which.start()] if which else before
        breaks = list(_CLAUSE_BREAK.finditer(before))
        clause = before[breaks[-1].end() :] if breaks else before
        clause = _CONNECTIVE.sub("", clause.strip())
        if clause and len(clause.split()) <= 12:
            out.append(Statement(window_start + before.find(clause), clause))
    return out


def find_statements(text: str) -> list[Statement]:
    """Every final-answer statement in `text`, in order ([] when there is no marker).

    A marker with nothing after it (output cut off right there) is skipped. Markers of one
    statement ("The answer is $\\boxed{4}$") count once. "X is the answer" states X.
    """
    marks = list(_MARKER.finditer(text))
    out: list[Statement] = []
    for k, mark in enumerate(marks):
        nxt = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        if _JOINER.fullmatch(text, mark.end(), nxt) and k + 1 < len(marks):
            continue  # the next marker belongs to this statement: let it read the answer
        if _LEAD.match(text, mark.end()).end() >= nxt:
            continue  # nothing after the marker
        read = _boxed if mark.group(0).endswith("{") else _sentence
        answer = read(text, mark.end(), nxt)
        first = k
        while first > 0 and _JOINER.fullmatch(text, marks[first - 1].end(), marks[first].start()):
            first -= 1
        end = _SENTENCE_END.search(text, _LEAD.match(text, mark.end()).end(), nxt)
        open_end = end is None and nxt == len(text) and not text.rstrip().endswith(("}", '"', "'", "$"))
        out.append(Statement(marks[first].start(), affirmed(_LEAD.sub("", answer, count=1)), open_end))
    return out or _postfix_statements(text)


def has_marker(text: str) -> bool:
    return _MARKER.search(text) is not None


def find_statement(text: str) -> Optional[Statement]:
    """The last final-answer statement in `text`, or None when there is no marker; a
    marker with nothing after it is skipped, and with no other marker the statement
    states nothing (its answer is None)."""
    found = find_statements(text)
    if found:
        return found[-1]
    marks = list(_MARKER.finditer(text))
    return Statement(marks[0].start(), None) if marks else None


def through_first_answer(text: str) -> str:
    """`text` cut after its first final-answer statement: what a teacher wrote after
    stating its answer ("The answer is oat. The answer is oat.", a new question) is not
    part of its reasoning. Text with no readable statement is returned whole."""
    for mark in _MARKER.finditer(text):
        start = _LEAD.match(text, mark.end()).end()
        if start == len(text):
            break
        if mark.group(0).endswith("{"):
            close = text.find("}", start)
            if close < 0:
                break
            end = close + 1
        else:
            found = _SENTENCE_END.search(text, start)
            end = found.end() if found else len(text)
        return text[:end].rstrip()
    return text


def reasoning_before_answer(text: str) -> str:
    """The text before the final-answer statement (all of it when there is none)."""
    found = find_statement(text)
    return text[: found.start].rstrip(" \t\r\n*_#>") if found else text
