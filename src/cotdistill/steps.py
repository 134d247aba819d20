"""Step checkers: verify the intermediate claims of a CoT on tasks whose steps are checkable.

The answer filter only checks a CoT's final answer; a small teacher that is shown the
answer often copies it and rationalises with wrong steps. A step checker reads the claims a CoT
makes along the way (a coin's state after each person, the last letter of each word) and
returns a one-line description of the first wrong, missing or unreadable step, or None
when every step is right, so that a kept CoT can be wholly correct.

Both checkers read a CoT as a sequence of claims found by a small set of phrasings, and
then require that nothing checkable is left over: a sentence that still mentions a
person, a coin state, a flip, a count or a parity (coin flip), or a word of the question
or a letter (last letters) after its claims are taken out is reported as unreadable. A
wrong claim in an unforeseen phrasing is therefore dropped, never kept unread; the cost is
that a right one in such a phrasing is dropped too.

Checkers are registered per dataset name: `STEP_CHECKERS.get(name)(question, cot)`; the
datasets with one are marked `step_checker` in catalog/datasets.py (params validation
reads that table, not this module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from .datasets.names import NAMES
from .registry import Registry

StepChecker = Callable[[str, str], Optional[str]]
STEP_CHECKERS: Registry[StepChecker] = Registry("step checker")

# Sentence ends; a semicolon also ends a claim ("Tom doesn't flip it; it stays tails").
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_LIST_MARK = re.compile(r"^\s*(?:step\s*)?(?:\d+|[a-e])\s*[.):]?\s*$|^\s*[-*\u2022]\s*$", re.IGNORECASE)
# "Step 1: Mia flips it", "2) Tom ...": a list marker before a claim is not a count
_LIST_PREFIX = re.compile(r"^\s*(?:step\s*\d+\s*[.):]?|\d+\s*[.)]|\d+\s*:(?=\s*[A-Z]))\s*", re.IGNORECASE)

# ------------------------------------------------------------------ coin flip

_PERSON_Q = re.compile(r"([A-Z][\w'-]*) (does not flip|flips) the coin\.")

_NUM_WORDS = {"no": 0, "zero": 0, "none": 0, "one": 1, "a single": 1, "only one": 1, "two": 2, "three": 3,
              "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3}
_NUM = r"(?:\d+|zero|one|two|three|four|five|six|seven|eight|nine|ten|a\s+single|only\s+one)"
_NEG = (r"(?:does\s*n[o']t|doesn't|did\s*n[o']t|didn't|do\s*n[o']t|don't|will\s+not|won't|never|"
        r"chooses\s+not\s+to|chose\s+not\s+to|decides\s+not\s+to|decided\s+not\s+to|is\s+not\s+going\s+to)\b")
_OBJ = r"(?:\s+(?:it|the\s+coin|that\s+coin|this\s+coin))?(?:\s+(?:over|again|too|as\s+well|either|also|once))*"
# (each alternation ends at a word boundary, so that "flip" cannot match the start of "flips")
_VERB = r"(?:flip|flips|flipped|flipping|toss|tosses|tossed|turn\w*\s+(?:it|the\s+coin)\s+over|turn\w*\s+over)\b"
_VERB_BASE = r"(?:flip|toss|turn\s+(?:it|the\s+coin)\s+over|touch(?:\s+it|\s+the\s+coin)?)\b"
_SKIP = (r"(?:skips|skipped|passes|passed|misses|missed|sits\s+out|sat\s+out)(?:\s+(?:his|her|their|a|the)\s+turn)?"
         r"|(?:leaves|left)\s+(?:it|the\s+coin)(?:\s+(?:alone|as\s+it\s+(?:is|was)|untouched))?"
         r"|(?:does|did)\s+nothing(?:\s+to\s+(?:it|the\s+coin))?|no\s+(?:flip|toss)")
_ADV = (r"(?:\s*,?\s*(?:then|also|now|next|too|again|finally|first|last|lastly|in\s+turn)\s*,?)?"
        r"(?:\s*[:\-\u2013\u2014]\s*)?")
_ACTION = rf"(?P<neg>{_NEG}(?:\s+{_VERB_BASE}{_OBJ})?)|(?P<skip>{_SKIP})|(?P<pos>{_VERB}{_OBJ})"
_STATE_WORD = r"(?P<s>heads|tails|head|tail)"
_STATE = re.compile(
    r"(?P<sneg>\bno\s+longer\s+|\bnot\s+|n't\s+|\bnever\s+)?"
    r"(?:(?:be|on|facing|showing|landing\s+on|lands?\s+on|landed\s+on|with|at)\s+)?(?:the\s+)?"
    rf"\b{_STATE_WORD}\b(?:\s*(?:-|\s)\s*(?:side\s+|face\s+)?(?P<dir>up|down))?(?:\s+side(?:\s+up)?)?",
    re.IGNORECASE,
)
_TRANSITION = re.compile(
    r"\b(?:from\s+)?(?P<a>heads|tails)(?:\s*(?:-|\s)\s*up)?\s*(?:\bto\b|\binto\b|->|→|=>)\s*(?P<b>heads|tails)"
    r"(?:\s*(?:-|\s)\s*up)?",
    re.IGNORECASE,
)
_SAME = re.compile(
    r"\b(?:stays|stay|remains|remain|is|was|keeps|kept)\s+(?:the\s+)?(?:same|unchanged)(?:\s+as\s+before)?"
    r"|\b(?:does|did)\s*(?:n[o']t|not)\s+change|\bdoesn't\s+change|\bdidn't\s+change|\bno\s+change|\bunchanged",
    re.IGNORECASE,
)
_CHANGE = re.compile(r"\b(?:changes|changed|is\s+reversed|is\s+turned\s+over)\b", re.IGNORECASE)
_ANSWER = re.compile(r"\b(?:so\s+)?(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:?\s*[\"']?(?P<a>yes|no)\b",
                     re.IGNORECASE)
_BARE_ANSWER = re.compile(r"^\W*(?:(?:so|thus|therefore|hence)\s*,?\s*)?(?P<a>yes|no)\b(?=\s*(?:[,.!]|$))",
                          re.IGNORECASE)
_VACUOUS = re.compile(
    r"\bwhether\b[^.;]*?\bor\s+not\b|\bregardless\b|\bno\s+matter\b|\beither\s+way\b|\bin\s+any\s+case\b"
    r"|\banyway\b|\birrespective\b|\bin\s+either\s+case\b|\bboth\s+ways\b",
    re.IGNORECASE,
)
_COUNT = re.compile(
    rf"\b(?P<n>{_NUM})\s+(?:people|persons|person|players|player|of\s+them)\s+(?P<cneg>{_NEG}\s+)?"
    r"(?:flip|flips|flipped|toss|tosses|tossed)(?:\s+(?:it|the\s+coin))?"
    r"|\b(?:flipped|tossed|turned\s+over)\s+(?:a\s+total\s+of\s+)?(?P<t>" + _NUM + r")\s+times?\b"
    r"|\b(?:flipped|tossed|turned\s+over)\s+(?P<tw>once|twice|thrice)\b"
    rf"|\b(?P<f>{_NUM})\s+(?:flips|tosses|flip|times)\b"
    r"|\b(?P<zero>no\s+one|nobody|none\s+of\s+them|no\s+person)\s+(?:flips|flipped|tosses|tossed)"
    r"(?:\s+(?:it|the\s+coin))?"
    r"|\b(?P<all>everyone|everybody|all\s+of\s+them|each\s+of\s+them|every\s+person)\s+(?:flips|flipped)"
    r"(?:\s+(?:it|the\s+coin))?"
    rf"|\bthere\s+(?:are|were)\s+(?P<total>{_NUM})\s+(?:people|persons|players)\b",
    re.IGNORECASE,
)
_PARITY = re.compile(
    r"\b(?:(?:is|was|gets|got|been|being)\s+)?(?:(?:flipped|tossed)\s+)?(?:an?\s+)?(?P<p>even|odd)\b"
    r"(?:\s+number)?(?:\s+of\s+(?:times|flips|people|persons))?(?:\s+times)?",
    re.IGNORECASE,
)
_INITIAL = re.compile(r"\b(?:starts?|started|starting|begins?|began|initially|at\s+first|originally"
                      r"|at\s+the\s+(?:start|beginning)|in\s+the\s+beginning)\b", re.IGNORECASE)
_FINAL = re.compile(r"\b(?:ends?|ended|ending|finally|in\s+the\s+end|at\s+the\s+end|final|end\s+up"
                    r"|after\s+(?:all|everyone))\b", re.IGNORECASE)
_AFTER = re.compile(r"\b(?:after|once|when|since|because)\s*$", re.IGNORECASE)
_PRONOUN = re.compile(rf"\b(?:he|she|they){_ADV}\s+(?:{_ACTION})", re.IGNORECASE)
# What a sentence may still contain once its claims are taken out.
_COIN_LEFTOVER = re.compile(
    r"\b(?:heads?|tails?|flip\w*|toss\w*|turn\w*|skip\w*|pass\w*|even|odd|once|twice|thrice|times|same|change\w*"
    r"|unchanged|opposite|reverse\w*|not|never|no|yes|none|nobody|\d+|zero|one|two|three|four|five|six|seven"
    r"|eight|nine|ten|parity)\b|n't\b",
    re.IGNORECASE,
)
_CAPITAL_ACTOR = re.compile(r"\b([A-Z][a-z]+)\s+(?:" + _ACTION + r")")
_NOT_NAMES = {"it", "coin", "he", "she", "they", "nobody", "everyone", "everybody", "each", "all", "both",
              "someone", "somebody", "neither", "then", "also", "next", "now", "finally", "first", "who", "that",
              "this", "person", "which", "one", "no", "none"}


@dataclass
class _Claim:
    start: int
    end: int
    kind: str  # person | state | same | change | count | parity | answer | vacuous | unknown_name
    name: str = ""
    flips: Optional[bool] = None  # person: the stated action (None: not stated)
    heads: Optional[bool] = None  # state / answer
    when: str = ""  # state: "initial" | "final" | "before" | ""
    value: int = 0  # count
    count_kind: str = ""  # count: flips | nonflips | people
    odd: Optional[bool] = None  # parity


def _num(word: str) -> int:
    w = re.sub(r"\s+", " ", word.lower())
    return int(w) if w.isdigit() else _NUM_WORDS[w]


def _action_flips(m: re.Match) -> Optional[bool]:
    if m.group("neg") or m.group("skip"):
        return False
    return True if m.group("pos") else None


_CAP = r"\b[A-Z][a-z]+\b"
# "Mia and Tom flip it", "Mia, Tom and Ana all flip the coin"
_GROUP = re.compile(
    rf"(?P<names>{_CAP}(?:'s)?(?:\s*,\s*{_CAP}(?:'s)?)*\s*,?\s+(?:and|&)\s+{_CAP}(?:'s)?)\s+"
    rf"(?:both\s+|all\s+|each\s+)?(?:{_ACTION})"
)
_PASSIVE = re.compile(
    rf"\b(?i:it|the\s+coin)\s+(?:is|was|gets|got)\s+(?P<pneg>not\s+)?(?:flipped|tossed|turned\s+over)"
    rf"\s+by\s+(?P<name>{_CAP})"
)
_NAME_TOKEN = re.compile(_CAP)
# what may follow a person's name: "'s turn", an adverb, an action
_PERSON_TAIL = re.compile(rf"(?:'s(?:\s+turn)?)?{_ADV}\s*(?:{_ACTION})?")


def _coin_claims(sentence: str, known: frozenset[str]) -> tuple[list[_Claim], str]:
    """The claims of one sentence, in order, and the sentence with them blanked out."""
    claims: list[_Claim] = []
    taken = [False] * len(sentence)

    def free(a: int, b: int) -> bool:
        return not any(taken[a:b])

    def take(a: int, b: int) -> None:
        for i in range(a, b):
            taken[i] = True

    def add(m: re.Match, claim: _Claim, span: Optional[tuple[int, int]] = None) -> bool:
        a, b = span or m.span()
        if not free(a, b):
            return False
        take(a, b)
        claim.start, claim.end = a, b
        claims.append(claim)
        return True

    for m in _VACUOUS.finditer(sentence):
        add(m, _Claim(0, 0, "vacuous"))
    for m in _ANSWER.finditer(sentence):
        add(m, _Claim(0, 0, "answer", heads=m.group("a").lower() == "yes"))
    m = _BARE_ANSWER.search(sentence)
    if m:
        add(m, _Claim(0, 0, "answer", heads=m.group("a").lower() == "yes"))

    for m in _GROUP.finditer(sentence):
        members = re.findall(_CAP, m.group("names"))
        if all(x in known for x in members) and free(*m.span()):
            take(*m.span())
            for k, member in enumerate(members):
                claims.append(_Claim(m.start() + k, m.start() + k + 1, "person", name=member, flips=_action_flips(m)))
    for m in _PASSIVE.finditer(sentence):
        if m.group("name") in known:
            add(m, _Claim(0, 0, "person", name=m.group("name"), flips=not m.group("pneg")))
    for m in _NAME_TOKEN.finditer(sentence):
        if m.group(0) in known:
            tail = _PERSON_TAIL.match(sentence, m.end())
            add(tail, _Claim(0, 0, "person", name=m.group(0), flips=_action_flips(tail)), span=(m.start(), tail.end()))
    for m in _PRONOUN.finditer(sentence):
        add(m, _Claim(0, 0, "pronoun", flips=_action_flips(m)))
    for m in _CAPITAL_ACTOR.finditer(sentence):
        if m.group(1).lower() not in _NOT_NAMES:
            add(m, _Claim(0, 0, "unknown_name", name=m.group(1)), span=m.span(1))
    for m in _TRANSITION.finditer(sentence):
        if add(m, _Claim(0, 0, "state", heads=m.group("a").lower() == "heads", when="before")):
            claims.append(_Claim(m.end(), m.end(), "state", heads=m.group("b").lower() == "heads"))
    for m in _COUNT.finditer(sentence):
        if m.group("n"):
            kind = "nonflips" if m.group("cneg") else "flips"
            add(m, _Claim(0, 0, "count", value=_num(m.group("n")), count_kind=kind))
        elif m.group("t") or m.group("f"):
            add(m, _Claim(0, 0, "count", value=_num(m.group("t") or m.group("f")), count_kind="flips"))
        elif m.group("tw"):
            add(m, _Claim(0, 0, "count", value=_TIMES_WORDS[m.group("tw").lower()], count_kind="flips"))
        elif m.group("zero"):
            add(m, _Claim(0, 0, "count", value=0, count_kind="flips"))
        elif m.group("all"):  # "everyone flips it": as many flips as people
            add(m, _Claim(0, 0, "count", value=-1, count_kind="flips"))
        else:
            add(m, _Claim(0, 0, "count", value=_num(m.group("total")), count_kind="people"))
    for m in _PARITY.finditer(sentence):
        add(m, _Claim(0, 0, "parity", odd=m.group("p").lower() == "odd"))
    for m in _SAME.finditer(sentence):
        add(m, _Claim(0, 0, "same"))
    for m in _CHANGE.finditer(sentence):
        add(m, _Claim(0, 0, "change"))
    for m in _STATE.finditer(sentence):
        heads = m.group("s").lower().startswith("head")
        if m.group("sneg"):
            heads = not heads
        if (m.group("dir") or "").lower() == "down":
            heads = not heads
        add(m, _Claim(0, 0, "state", heads=heads))
    claims.sort(key=lambda c: (c.start, c.end))
    # "starts heads up" / "ends tails up": the marker applies to the next state claim.
    for c in claims:
        if c.kind == "state" and not c.when:
            before = sentence[: c.start]
            last_claim_end = max((d.end for d in claims if d.end <= c.start and d is not c), default=0)
            window = before[last_claim_end:]
            if _INITIAL.search(window):
                c.when = "initial"
            elif _FINAL.search(window):
                c.when = "final"
    # "it is tails up after Mia flips it": the state belongs after the person.
    for i in range(len(claims) - 1):
        a, b = claims[i], claims[i + 1]
        if a.kind == "state" and b.kind == "person" and _AFTER.search(sentence[a.end: b.start]):
            claims[i], claims[i + 1] = b, a
    leftover = "".join(" " if t else ch for ch, t in zip(sentence, taken))
    return claims, leftover


def check_coin_flip(question: str, cot: str) -> Optional[str]:
    """Every claim about the coin is right, and together they reach the final state.

    Rationale format (datasets/synthetic.py, prompts/coin_flip.yaml): "The coin starts
    heads up. Mia flips it, so it is tails up. Tom does not flip it, so it stays tails up."
    Also read: other verbs ("skips his turn", "leaves it"), negated states ("no longer
    heads up"), transitions ("from heads to tails"), "stays the same", persons named
    together ("Mia and Tom flip it"), and a parity argument ("Two people flip the coin, an
    even number, so it stays heads up").

    Accepted when: the persons named are the question's, in its order, each once; every
    stated action, state, count, parity and yes/no answer is true at the point it is made;
    every person named has an action or a state; and either every person is walked
    through, or a count/parity argument covers them; and a coin state is stated after the
    last step. Anything else (a skipped or invented person, a claim that holds "whether
    Ana flips or not", a sentence with an unread claim) is rejected.
    """
    people = _PERSON_Q.findall(question)
    if not people:
        return "cannot read the people of the question"
    names = [p for p, _ in people]
    flips = [a == "flips" for _, a in people]
    n = len(names)
    # Names the dataset draws from: one of them in a CoT but not in the question is invented.
    known = frozenset(NAMES) | frozenset(names)

    def heads_after(k: int) -> bool:
        return sum(flips[:k]) % 2 == 0

    k = 0  # persons walked through so far; the current person is names[k - 1]
    cur_action: Optional[bool] = None
    cur_said = False  # the current person has an action or a state
    summary = False  # a count / parity argument about everyone is in progress
    summary_ok = False
    state_after_last = False  # a coin state was stated after the last step
    last_count: Optional[int] = None
    for sentence in _SENTENCE.split(cot):
        s = _LIST_PREFIX.sub("", sentence.strip())
        if not s or _LIST_MARK.match(s):
            continue
        if s.endswith("?"):
            continue  # a restated question is not a claim
        if re.search(r"\bwhether\b", s, re.IGNORECASE) and not _VACUOUS.search(s) \
                and not any(t in known for t in _NAME_TOKEN.findall(s)):
            continue  # "we need to find whether the coin is still heads up"
        claims, leftover = _coin_claims(s, known)
        rest = _COIN_LEFTOVER.search(leftover)
        if rest:
            return f"cannot read {s!r} (unread {rest.group(0)!r})"
        for c in claims:
            if c.kind == "vacuous":
                return f"makes a claim that ignores what a person does: {s!r}"
            if c.kind == "unknown_name" or (c.kind == "person" and c.name not in names):
                return f"names {c.name}, who is not in the question"
            if c.kind == "pronoun":
                if k == 0 or cur_action is not None or c.flips is None:
                    return f"cannot tell who acts in {s!r}"
                c = _Claim(c.start, c.end, "person", name=names[k - 1], flips=c.flips)
            if c.kind == "person":
                if k > 0 and c.name == names[k - 1] and not summary:
                    if c.flips is not None and cur_action is not None:
                        return f"repeats {c.name}"
                else:
                    if k > 0 and not cur_said:
                        return f"says nothing about {names[k - 1]}'s action or the coin after it"
                    expected = names[k] if k < n else "no one"
                    if c.name != expected:
                        if c.name in names[:k]:
                            return f"repeats {c.name}"
                        return f"names {c.name} where {expected} comes next"
                    k += 1
                    cur_action, cur_said, summary, last_count = None, False, False, None
                    state_after_last = False
                if c.flips is not None:
                    if c.flips != flips[k - 1]:
                        return f"says {c.name} {'flips' if c.flips else 'does not flip'} the coin"
                    cur_action, cur_said = c.flips, True
                continue
            if c.kind in ("same", "change"):
                if k == 0 or summary:
                    return f"cannot tell what stays the same or changes in {s!r}"
                if (c.kind == "change") != flips[k - 1]:
                    return f"says the coin {'changes' if c.kind == 'change' else 'stays the same'} at {names[k - 1]}"
                cur_said = True
                continue
            if c.kind == "count":
                summary = summary or k == 0
                pool = flips if (summary or k == 0) else flips[:k]
                truth = {"flips": sum(pool), "nonflips": len(pool) - sum(pool), "people": len(pool)}[c.count_kind]
                if c.value == -1:
                    c.value = len(pool)
                if c.value != truth:
                    return f"says {c.value} ({c.count_kind}) where there are {truth}"
                last_count = c.value
                continue
            if c.kind == "parity":
                summary = summary or k == 0
                pool = flips if summary else flips[:k]
                value = last_count if last_count is not None else sum(pool)
                if (value % 2 == 1) != c.odd:
                    return f"says {value} is {'odd' if c.odd else 'even'}" if last_count is not None \
                        else f"says the coin is flipped an {'odd' if c.odd else 'even'} number of times"
                if last_count is None or last_count == sum(pool):
                    summary_ok = summary_ok or summary
                continue
            if c.kind == "answer":
                if c.heads != heads_after(n):
                    end = "heads" if heads_after(n) else "tails"
                    return f"answers {'yes' if c.heads else 'no'}, the coin ends {end} up"
                continue
            # a coin state
            word = "heads" if c.heads else "tails"
            if c.when == "initial":
                if not c.heads:
                    return f"says the coin is tails before {names[0]} (it starts heads up)"
                continue
            if c.when == "before":
                truth = heads_after(k - 1) if k > 0 else True
                if c.heads != truth:
                    return f"says the coin is {word} before {names[k - 1] if k else names[0]}"
                continue
            at = n if (summary or c.when == "final") else k
            if c.heads != heads_after(at):
                if at == 0:
                    return f"says the coin is {word} before {names[0]}"
                return f"says {word} after {names[at - 1]}, the coin is {'heads' if heads_after(at) else 'tails'} up"
            if at == k:
                cur_said = True
            if at == n:
                state_after_last = True
                if summary:
                    summary_ok = summary_ok or (last_count is not None and last_count == sum(flips))
    if k < n and not summary_ok:
        return f"skips {names[k]}"
    if k > 0 and not cur_said and not summary_ok:
        return f"says nothing about {names[k - 1]}'s action or the coin after it"
    if not state_after_last:
        return f"states no coin state after {names[-1]}"
    return None


# ------------------------------------------------------------------ last letters

_Q = r"[\"“”'‘’`]?"  # an optional quote around a word or a letter
_W = r"(?P<w>[A-Za-z][A-Za-z'’-]*)"
_L = r"(?P<l>[A-Za-z]+)"
_END = r"(?![\w'’])"
_LETTER_CLAIMS = [
    # The last letter of "Elon" is "n". / The last letter in Elon: n / The last letters of "Elon" are "n".
    re.compile(rf"\bthe\s+last\s+letters?\s+(?:of|in)\s+(?:the\s+(?:word|name)\s+)?{_Q}{_W}{_Q}"
               rf"(?:\s+is|\s+are|\s*[=:,])\s*"
               rf"(?:the\s+letter\s+|an?\s+)?{_Q}{_L}{_Q}{_END}", re.IGNORECASE),
    # Elon's last letter is n.
    re.compile(rf"(?<![\w'’]){_Q}{_W}{_Q}(?:'s|’s)\s+last\s+letter\s+is\s*:?\s*(?:the\s+letter\s+|an?\s+)?"
               rf"{_Q}{_L}{_Q}{_END}", re.IGNORECASE),
    # Elon ends with n. / Elon ends in the letter n.
    re.compile(rf"(?<![\w'’]){_Q}{_W}{_Q}\s+(?:ends|ended)\s+(?:with|in)\s+(?:the\s+letter\s+|an?\s+)?"
               rf"{_Q}{_L}{_Q}{_END}", re.IGNORECASE),
    # n is the last letter of Elon.
    re.compile(rf"(?<![\w'’]){_Q}{_L}{_Q}\s+is\s+the\s+last\s+letter\s+(?:of|in)\s+{_Q}{_W}{_Q}{_END}",
               re.IGNORECASE),
    # Elon -> n / Elon: n / Elon = n
    re.compile(rf"(?<![\w'’])"
               rf"(?!(?:answer|final|result|concatenation|concatenated|joined|combined|together|letters|so)\b)"
               rf"{_Q}{_W}{_Q}\s*(?:->|→|=>|:|=)\s*{_Q}{_L}{_Q}{_END}", re.IGNORECASE),
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
_LETTERS_ANSWER = re.compile(rf"\b(?:the\s+)?(?:final\s+)?answer(?:\s+is\s*:?|\s*:)\s*{_Q}(?P<a>[A-Za-z]+){_Q}{_END}",
                             re.IGNORECASE)
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")
_RESTATED = re.compile(r"\b(?:each|every)\s+(?:word|name)\b|\bthe\s+words\s+(?:in|of)\b", re.IGNORECASE)
_LETTERS_LEFTOVER = re.compile(r"[\"“'‘][A-Za-z][\"”'’]|\bletters?\b|\b(?:concatenat|join|combin)\w*|\bends?\b",
                               re.IGNORECASE)


def _word(w: str) -> str:
    return w.strip(".,;:!?()[]\"'“”‘’`").lower()


def _letter_sentence_claims(s: str) -> tuple[list[tuple[int, str, tuple]], str]:
    """(position, kind, payload) of every claim in one sentence, and the unread rest."""
    taken = [False] * len(s)
    found: list[tuple[int, str, tuple]] = []

    def grab(m: re.Match, kind: str, *payload) -> None:
        a, b = m.span()
        if not any(taken[a:b]):
            taken[a:b] = [True] * (b - a)
            found.append((a, kind, payload))

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
    return found, "".join(" " if t else ch for ch, t in zip(s, taken))


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
    for sentence in _SENTENCE.split(cot):
        s = _LIST_PREFIX.sub("", sentence.strip())
        if not s or _LIST_MARK.match(s) or s.endswith("?"):
            continue
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


STEP_CHECKERS.register("coin_flip", check_coin_flip)
STEP_CHECKERS.register("last_letters", check_last_letters)


_EQUATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/×x÷−])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
_OP_SYMBOL = {"×": "*", "x": "*", "÷": "/", "−": "-"}


def check_multistep_arith(question: str, cot: str) -> Optional[str]:
    """One equation per operation of the question, in order, each true and starting from
    the previous result: "7 + 5 = 12. 12 - 3 = 9." (operands of + and * in either order).

    Words around the equations are free; an equation that is false, out of order, uses
    a number the question does not give at that step, or is one too many is a wrong step.
    """
    from .datasets.arithmetic import apply, parse_question

    parsed = parse_question(question)
    if parsed is None:
        return "cannot read the operations of the question"
    value, ops = parsed
    found = [(float(a), _OP_SYMBOL.get(op, op), float(b), float(c)) for a, op, b, c in _EQUATION.findall(cot)]
    for k, (op, n) in enumerate(ops):
        if k >= len(found):
            return f"stops after {k} of {len(ops)} operations"
        a, got_op, b, c = found[k]
        result = apply(value, op, n)
        if got_op != op:
            return f"step {k + 1} uses {got_op} where the question asks for {op}"
        if (a, b) != (value, n) and not (op in "+*" and (b, a) == (value, n)):
            return f"step {k + 1} computes {a:g} {got_op} {b:g}; the question gives {value} {op} {n}"
        if c != result:
            return f"step {k + 1} says {a:g} {got_op} {b:g} = {c:g}; it is {result}"
        value = result
    if len(found) > len(ops):
        return f"writes {len(found)} equations for {len(ops)} operations"
    return None


STEP_CHECKERS.register("multistep_arith", check_multistep_arith)
