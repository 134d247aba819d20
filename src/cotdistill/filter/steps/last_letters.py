"""last_letters: every word's last letter is claimed right, in the question's order, and
the letters' concatenation and the answer follow from them."""

from __future__ import annotations

import re
from typing import Optional

from .reading import Unread, claim_sentences

_Q = r"[\"“”'‘’`]?"  # an optional quote around a word or a letter
_W = r"(?P<w>[A-Za-z][A-Za-z'’-]*)"
_L = r"(?P<l>[A-Za-z]+)"
_END = r"(?![\w'’])"
_LETTER_CLAIMS = [
    # The last letter of "Elon" is "n". / The last letter in Elon: n / The last letters of "Elon" are "n".
    re.compile(
        rf"\bthe\s+last\s+letters?\s+(?:of|in)\s+(?:the\s+(?:word|name)\s+)?{_Q}{_W}{_Q}"
        rf"(?:\s+is|\s+are|\s*[=:,])\s*"
        rf"(?:the\s+letter\s+|an?\s+)?{_Q}{_L}{_Q}{_END}",
        re.IGNORECASE,
    ),
    # Elon's last letter is n.
    re.compile(
        rf"(?<![\w'’]){_Q}{_W}{_Q}(?:'s|’s)\s+last\s+letter\s+is\s*:?\s*(?:the\s+letter\s+|an?\s+)?"
        rf"{_Q}{_L}{_Q}{_END}",
        re.IGNORECASE,
    ),
    # Elon ends with n. / Elon ends in the letter n.
    re.compile(
        rf"(?<![\w'’]){_Q}{_W}{_Q}\s+(?:ends|ended)\s+(?:with|in)\s+(?:the\s+letter\s+|an?\s+)?"
        rf"{_Q}{_L}{_Q}{_END}",
        re.IGNORECASE,
    ),
    # n is the last letter of Elon.
    re.compile(rf"(?<![\w'’]){_Q}{_L}{_Q}\s+is\s+the\s+last\s+letter\s+(?:of|in)\s+{_Q}{_W}{_Q}{_END}", re.IGNORECASE),
    # Elon -> n / Elon: n / Elon = n
    re.compile(
        rf"(?<![\w'’])"
        rf"(?!(?:answer|final|result|concatenation|concatenated|joined|combined|together|letters|so)\b)"
        rf"{_Q}{_W}{_Q}\s*(?:->|→|=>|:|=)\s*{_Q}{_L}{_Q}{_END}",
        re.IGNORECASE,
    ),
]
# 'Concatenating them is "nk"', 'Putting them together gives nk', 'together they make nk'
_JOINED = re.compile(
    r"\b(?:concatenat\w*|join\w*|combin\w*|putting|put|together|gives?|giving|makes?|making|forms?|spells?|yields?)"
    r"(?:\s+(?:them|these|those|the\s+letters|the\s+last\s+letters|all|together|they|gives?|is|are|makes?|forms?"
    r"|yields?|we\s+get|results\s+in|becomes?|to\s+get|to\s+form|to\s+make|,))*\s*:?\s*"
    rf"{_Q}(?P<j>[A-Za-z]+){_Q}{_END}",
    re.IGNORECASE,
)
_PLUS = re.compile(rf"{_Q}(?P<ls>[A-Za-z]{_Q}(?:\s*\+\s*{_Q}[A-Za-z]{_Q})+)\s*=\s*{_Q}(?P<j>[A-Za-z]+){_Q}{_END}")
_LETTER_LIST = re.compile(
    rf"\bthe\s+(?:last\s+)?letters\s+are\s*:?\s*(?P<ls>{_Q}[A-Za-z]{_Q}(?:\s*,\s*(?:and\s+)?{_Q}[A-Za-z]{_Q}"
    rf"|\s+and\s+{_Q}[A-Za-z]{_Q})*){_END}",
    re.IGNORECASE,
)
_LETTERS_ANSWER = re.compile(
    rf"\b(?:the\s+)?(?:final\s+)?answer(?:\s+is\s*:?|\s*:)\s*{_Q}(?P<a>[A-Za-z]+){_Q}{_END}", re.IGNORECASE
)
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")
_RESTATED = re.compile(r"\b(?:each|every)\s+(?:word|name)\b|\bthe\s+words\s+(?:in|of)\b", re.IGNORECASE)
_LETTERS_LEFTOVER = re.compile(
    r"[\"“'‘][A-Za-z][\"”'’]|\bletters?\b|\b(?:concatenat|join|combin)\w*|\bends?\b", re.IGNORECASE
)


def _word(w: str) -> str:
    return w.strip(".,;:!?()[]\"'“”‘’`").lower()


def _letter_sentence_claims(s: str) -> tuple[list[tuple[int, str, tuple]], str]:
    """(position, kind, payload) of every claim in one sentence, and the unread rest."""
    unread = Unread(s)
    found: list[tuple[int, str, tuple]] = []

    def grab(m: re.Match, kind: str, *payload) -> None:
        if unread.take(*m.span()):
            found.append((m.start(), kind, payload))

    for m in _LETTERS_ANSWER.finditer(s):
        grab(m, "answer", m.group("a"))
    for m in _PLUS.finditer(s):
        grab(m, "list", re.findall(r"[A-Za-z]", m.group("ls")), m.group("j"))
    for pattern in _LETTER_CLAIMS:
        for m in pattern.finditer(s):
            grab(m, "letter", _word(m.group("w")), m.group("l"))
    for m in _LETTER_LIST.finditer(s):
        grab(m, "list", re.findall(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])", re.sub(r"\band\b", " ", m.group("ls"))), None)
    for m in _JOINED.finditer(s):
        grab(m, "join", m.group("j"))
    found.sort(key=lambda f: f[0])
    return found, unread.leftover()


def check_last_letters(question: str, cot: str) -> Optional[str]:
    """Every word's last letter, in the question's order, each once; joins and answer right.

    Read phrasings: 'the last letter of X is Y', "X's last letter is Y", 'X ends with Y',
    'Y is the last letter of X', 'X -> Y' (quotes optional); a join ('Concatenating them
    is "nk"', 'n + k = nk', 'The letters are n and k') must use the claimed letters, and
    "The answer is X" must be their concatenation. When the question quotes its words
    ('... each word in "Elon Musk" ...'), each of them must be claimed once, in order.
    A sentence that still names a word of the question, a quoted letter, "letter" or
    "concatenate" once its claims are taken out is reported as unreadable.
    """
    quoted = _QUOTED.search(question)
    words = [_word(w) for w in quoted.group(1).split() if _word(w)] if quoted else None
    claims: list[tuple[str, str]] = []  # (word, letter) in order
    joins: list[str] = []
    answers: list[str] = []
    for s in claim_sentences(cot):
        found, leftover = _letter_sentence_claims(s)
        single_letter = re.search(r"[\"“'‘]\w[\"”'’]|\b(?![aAI]\b)[A-Za-z]\b", leftover)
        if not found and _RESTATED.search(s) and not single_letter:
            continue  # "take the last letter of each word ...": the task restated, no claim
        unread = [w for w in (words or []) if re.search(rf"(?<![\w'’]){re.escape(w)}{_END}", leftover, re.IGNORECASE)]
        other = _LETTERS_LEFTOVER.search(leftover)
        if unread or other:
            return f"cannot read {s!r} (unread {(unread[0] if unread else other.group(0))!r})"
        for _, kind, payload in found:
            if kind == "letter":
                claims.append(payload)
            elif kind == "answer":
                answers.append(payload[0])
            elif kind == "join":
                joins.append(payload[0])
            else:
                letters, joined = payload
                done = "".join(y.lower() for _, y in claims)
                if "".join(letters).lower() != done:
                    return f"lists the letters {''.join(letters)!r}, the claimed letters give {done!r}"
                if joined is not None:
                    joins.append(joined)
    if not claims:
        return "states no last letter"
    for k, (word, letter) in enumerate(claims):
        if words is not None and (k >= len(words) or word != words[k]):
            if word in words[:k]:
                return f"repeats {word!r}"
            if word not in words:
                return f"claims a letter for {word!r}, which is not a word of the question"
            return f"claims letters for {[w for w, _ in claims]}, the question's words are {words}"
        if not word or len(letter) != 1 or not letter.isalpha():
            return f"states {letter!r} as the last letter of {word!r}"
        if word[-1] != letter.lower():
            return f"says the last letter of {word!r} is {letter!r}"
    if words is not None and len(claims) < len(words):
        return f"claims letters for {[w for w, _ in claims]}, the question's words are {words}"
    joined = "".join(y.lower() for _, y in claims)
    for j in joins:
        if j.lower() != joined:
            return f"concatenates to {j!r}, the letters give {joined!r}"
    for a in answers:
        if a.lower() != joined:
            return f"answers {a!r}, the letters give {joined!r}"
    return None
