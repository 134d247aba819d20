"""coin_flip: every claim about the coin (a person's action, its state, a count, a parity,
the yes/no answer) is right where it is made, and together they reach the final state.

A CoT is read sentence by sentence (`_coin_claims`: the claims of one sentence, in order)
and walked through the question's persons (`_Walk`: the state of that walk, one method per
kind of claim).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from cotdistill.prepare.datasets.names import NAMES

from .reading import Unread, claim_sentences

_PERSON_Q = re.compile(r"([A-Z][\w'-]*) (does not flip|flips) the coin\.")

_NUM_WORDS = {
    "no": 0,
    "zero": 0,
    "none": 0,
    "one": 1,
    "a single": 1,
    "only one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3}
_NUM = r"(?:\d+|zero|one|two|three|four|five|six|seven|eight|nine|ten|a\s+single|only\s+one)"
_NEG = (
    r"(?:does\s*n[o']t|doesn't|did\s*n[o']t|didn't|do\s*n[o']t|don't|will\s+not|won't|never|"
    r"chooses\s+not\s+to|chose\s+not\s+to|decides\s+not\s+to|decided\s+not\s+to|is\s+not\s+going\s+to)\b"
)
_OBJ = r"(?:\s+(?:it|the\s+coin|that\s+coin|this\s+coin))?(?:\s+(?:over|again|too|as\s+well|either|also|once))*"
# (each alternation ends at a word boundary, so that "flip" cannot match the start of "flips")
_VERB = r"(?:flip|flips|flipped|flipping|toss|tosses|tossed|turn\w*\s+(?:it|the\s+coin)\s+over|turn\w*\s+over)\b"
_VERB_BASE = r"(?:flip|toss|turn\s+(?:it|the\s+coin)\s+over|touch(?:\s+it|\s+the\s+coin)?)\b"
_SKIP = (
    r"(?:skips|skipped|passes|passed|misses|missed|sits\s+out|sat\s+out)(?:\s+(?:his|her|their|a|the)\s+turn)?"
    r"|(?:leaves|left)\s+(?:it|the\s+coin)(?:\s+(?:alone|as\s+it\s+(?:is|was)|untouched))?"
    r"|(?:does|did)\s+nothing(?:\s+to\s+(?:it|the\s+coin))?|no\s+(?:flip|toss)"
)
_ADV = (
    r"(?:\s*,?\s*(?:then|also|now|next|too|again|finally|first|last|lastly|in\s+turn)\s*,?)?"
    r"(?:\s*[:\-\u2013\u2014]\s*)?"
)
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
_ANSWER = re.compile(
    r"\b(?:so\s+)?(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:?\s*[\"']?(?P<a>yes|no)\b", re.IGNORECASE
)
_BARE_ANSWER = re.compile(
    r"^\W*(?:(?:so|thus|therefore|hence)\s*,?\s*)?(?P<a>yes|no)\b(?=\s*(?:[,.!]|$))", re.IGNORECASE
)
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
_INITIAL = re.compile(
    r"\b(?:starts?|started|starting|begins?|began|initially|at\s+first|originally"
    r"|at\s+the\s+(?:start|beginning)|in\s+the\s+beginning)\b",
    re.IGNORECASE,
)
_FINAL = re.compile(
    r"\b(?:ends?|ended|ending|finally|in\s+the\s+end|at\s+the\s+end|final|end\s+up"
    r"|after\s+(?:all|everyone))\b",
    re.IGNORECASE,
)
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
_NOT_NAMES = {
    "it",
    "coin",
    "he",
    "she",
    "they",
    "nobody",
    "everyone",
    "everybody",
    "each",
    "all",
    "both",
    "someone",
    "somebody",
    "neither",
    "then",
    "also",
    "next",
    "now",
    "finally",
    "first",
    "who",
    "that",
    "this",
    "person",
    "which",
    "one",
    "no",
    "none",
}


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


@dataclass
class _Claim:
    start: int
    end: int
    kind: str  # person | pronoun | state | same | change | count | parity | answer | vacuous | unknown_name
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


class _Claims:
    """The claims found in one sentence so far, each over characters no other claim holds."""

    def __init__(self, sentence: str):
        self.unread = Unread(sentence)
        self.found: list[_Claim] = []

    def add(self, m: re.Match, claim: _Claim, span: Optional[tuple[int, int]] = None) -> bool:
        """Keep `claim` over `span` (default: the match's), unless an earlier claim holds part of it."""
        a, b = span or m.span()
        if not self.unread.take(a, b):
            return False
        claim.start, claim.end = a, b
        self.found.append(claim)
        return True


def _count_claim(m: re.Match) -> _Claim:
    """The count that a `_COUNT` match states ("two people flip it", "flipped twice")."""
    if m.group("n"):
        return _Claim(0, 0, "count", value=_num(m.group("n")), count_kind="nonflips" if m.group("cneg") else "flips")
    if m.group("t") or m.group("f"):
        return _Claim(0, 0, "count", value=_num(m.group("t") or m.group("f")), count_kind="flips")
    if m.group("tw"):
        return _Claim(0, 0, "count", value=_TIMES_WORDS[m.group("tw").lower()], count_kind="flips")
    if m.group("zero"):
        return _Claim(0, 0, "count", value=0, count_kind="flips")
    if m.group("all"):  # "everyone flips it": as many flips as people
        return _Claim(0, 0, "count", value=-1, count_kind="flips")
    return _Claim(0, 0, "count", value=_num(m.group("total")), count_kind="people")


def _state_claim(m: re.Match) -> _Claim:
    """The coin state that a `_STATE` match states, negations and "down" read."""
    heads = m.group("s").lower().startswith("head")
    if m.group("sneg"):
        heads = not heads
    if (m.group("dir") or "").lower() == "down":
        heads = not heads
    return _Claim(0, 0, "state", heads=heads)


def _find_actors(sentence: str, known: frozenset[str], claims: _Claims) -> None:
    """Persons acting: named together, in the passive, alone, as a pronoun; and any other
    capitalised actor, which is an invented person."""
    for m in _GROUP.finditer(sentence):
        members = re.findall(_CAP, m.group("names"))
        if all(x in known for x in members) and claims.unread.take(*m.span()):
            for k, member in enumerate(members):
                claims.found.append(
                    _Claim(m.start() + k, m.start() + k + 1, "person", name=member, flips=_action_flips(m))
                )
    for m in _PASSIVE.finditer(sentence):
        if m.group("name") in known:
            claims.add(m, _Claim(0, 0, "person", name=m.group("name"), flips=not m.group("pneg")))
    for m in _NAME_TOKEN.finditer(sentence):
        if m.group(0) in known:
            tail = _PERSON_TAIL.match(sentence, m.end())
            claims.add(
                tail, _Claim(0, 0, "person", name=m.group(0), flips=_action_flips(tail)), span=(m.start(), tail.end())
            )
    for m in _PRONOUN.finditer(sentence):
        claims.add(m, _Claim(0, 0, "pronoun", flips=_action_flips(m)))
    for m in _CAPITAL_ACTOR.finditer(sentence):
        if m.group(1).lower() not in _NOT_NAMES:
            claims.add(m, _Claim(0, 0, "unknown_name", name=m.group(1)), span=m.span(1))


def _find_coin_facts(sentence: str, claims: _Claims) -> None:
    """Transitions, counts, parities, "same" / "changes" and coin states."""
    for m in _TRANSITION.finditer(sentence):
        if claims.add(m, _Claim(0, 0, "state", heads=m.group("a").lower() == "heads", when="before")):
            claims.found.append(_Claim(m.end(), m.end(), "state", heads=m.group("b").lower() == "heads"))
    for m in _COUNT.finditer(sentence):
        claims.add(m, _count_claim(m))
    for m in _PARITY.finditer(sentence):
        claims.add(m, _Claim(0, 0, "parity", odd=m.group("p").lower() == "odd"))
    for m in _SAME.finditer(sentence):
        claims.add(m, _Claim(0, 0, "same"))
    for m in _CHANGE.finditer(sentence):
        claims.add(m, _Claim(0, 0, "change"))
    for m in _STATE.finditer(sentence):
        claims.add(m, _state_claim(m))


def _mark_initial_and_final(sentence: str, claims: list[_Claim]) -> None:
    """ "starts heads up" / "ends tails up": the marker applies to the next state claim."""
    for c in claims:
        if c.kind == "state" and not c.when:
            last_claim_end = max((d.end for d in claims if d.end <= c.start and d is not c), default=0)
            window = sentence[last_claim_end : c.start]
            if _INITIAL.search(window):
                c.when = "initial"
            elif _FINAL.search(window):
                c.when = "final"


def _put_states_after_persons(sentence: str, claims: list[_Claim]) -> None:
    """ "it is tails up after Mia flips it": the state belongs after the person."""
    for i in range(len(claims) - 1):
        a, b = claims[i], claims[i + 1]
        if a.kind == "state" and b.kind == "person" and _AFTER.search(sentence[a.end : b.start]):
            claims[i], claims[i + 1] = b, a


def _coin_claims(sentence: str, known: frozenset[str]) -> tuple[list[_Claim], str]:
    """The claims of one sentence, in order, and the sentence with them blanked out.

    The kinds are read in a fixed order of precedence (an answer before a state, a person
    before a count), each over characters that no earlier claim holds.
    """
    claims = _Claims(sentence)
    for m in _VACUOUS.finditer(sentence):
        claims.add(m, _Claim(0, 0, "vacuous"))
    for m in _ANSWER.finditer(sentence):
        claims.add(m, _Claim(0, 0, "answer", heads=m.group("a").lower() == "yes"))
    m = _BARE_ANSWER.search(sentence)
    if m:
        claims.add(m, _Claim(0, 0, "answer", heads=m.group("a").lower() == "yes"))
    _find_actors(sentence, known, claims)
    _find_coin_facts(sentence, claims)
    found = sorted(claims.found, key=lambda c: (c.start, c.end))
    _mark_initial_and_final(sentence, found)
    _put_states_after_persons(sentence, found)
    return found, claims.unread.leftover()


@dataclass
class _Walk:
    """A CoT's walk through the question's persons, in order: who it has reached and what it
    has shown so far. Each `take_*` method checks one claim and returns its error, or None."""

    names: list[str]
    flips: list[bool]
    k: int = 0  # persons walked through so far; the current person is names[k - 1]
    cur_action: Optional[bool] = None
    cur_said: bool = False  # the current person has an action or a state
    summary: bool = False  # a count / parity argument about everyone is in progress
    summary_ok: bool = False  # such an argument covered every person
    state_after_last: bool = False  # a coin state was stated after the last step
    last_count: Optional[int] = None

    def heads_after(self, k: int) -> bool:
        return sum(self.flips[:k]) % 2 == 0

    def take(self, c: _Claim, sentence: str) -> Optional[str]:
        """Check one claim of `sentence` against the walk so far, and move the walk on."""
        if c.kind == "vacuous":
            return f"makes a claim that ignores what a person does: {sentence!r}"
        if c.kind == "unknown_name" or (c.kind == "person" and c.name not in self.names):
            return f"names {c.name}, who is not in the question"
        if c.kind == "pronoun":
            if self.k == 0 or self.cur_action is not None or c.flips is None:
                return f"cannot tell who acts in {sentence!r}"
            c = _Claim(c.start, c.end, "person", name=self.names[self.k - 1], flips=c.flips)
        if c.kind == "person":
            return self.take_person(c)
        if c.kind in ("same", "change"):
            return self.take_same_or_change(c, sentence)
        if c.kind == "count":
            return self.take_count(c)
        if c.kind == "parity":
            return self.take_parity(c)
        if c.kind == "answer":
            return self.take_answer(c)
        return self.take_state(c)

    def take_person(self, c: _Claim) -> Optional[str]:
        if self.k > 0 and c.name == self.names[self.k - 1] and not self.summary:
            if c.flips is not None and self.cur_action is not None:
                return f"repeats {c.name}"
        else:
            error = self.next_person(c.name)
            if error:
                return error
        if c.flips is not None:
            if c.flips != self.flips[self.k - 1]:
                return f"says {c.name} {'flips' if c.flips else 'does not flip'} the coin"
            self.cur_action, self.cur_said = c.flips, True
        return None

    def next_person(self, name: str) -> Optional[str]:
        """Move on to `name`, who must be the next person and may come only once the current
        one has an action or a state."""
        if self.k > 0 and not self.cur_said:
            return f"says nothing about {self.names[self.k - 1]}'s action or the coin after it"
        expected = self.names[self.k] if self.k < len(self.names) else "no one"
        if name != expected:
            if name in self.names[: self.k]:
                return f"repeats {name}"
            return f"names {name} where {expected} comes next"
        self.k += 1
        self.cur_action, self.cur_said, self.summary, self.last_count = None, False, False, None
        self.state_after_last = False
        return None

    def take_same_or_change(self, c: _Claim, sentence: str) -> Optional[str]:
        if self.k == 0 or self.summary:
            return f"cannot tell what stays the same or changes in {sentence!r}"
        if (c.kind == "change") != self.flips[self.k - 1]:
            said = "changes" if c.kind == "change" else "stays the same"
            return f"says the coin {said} at {self.names[self.k - 1]}"
        self.cur_said = True
        return None

    def counted_flips(self) -> list[bool]:
        """The flips a count or a parity is about: everyone's in a summary (one that starts
        before any person lasts until the next person), else those walked through so far."""
        self.summary = self.summary or self.k == 0
        return self.flips if self.summary else self.flips[: self.k]

    def take_count(self, c: _Claim) -> Optional[str]:
        pool = self.counted_flips()
        truth = {"flips": sum(pool), "nonflips": len(pool) - sum(pool), "people": len(pool)}[c.count_kind]
        value = len(pool) if c.value == -1 else c.value
        if value != truth:
            return f"says {value} ({c.count_kind}) where there are {truth}"
        self.last_count = value
        return None

    def take_parity(self, c: _Claim) -> Optional[str]:
        """The parity of the last count, else of the counted flips."""
        pool = self.counted_flips()
        value = self.last_count if self.last_count is not None else sum(pool)
        if (value % 2 == 1) != c.odd:
            if self.last_count is not None:
                return f"says {value} is {'odd' if c.odd else 'even'}"
            return f"says the coin is flipped an {'odd' if c.odd else 'even'} number of times"
        if self.last_count is None or self.last_count == sum(pool):
            self.summary_ok = self.summary_ok or self.summary
        return None

    def take_answer(self, c: _Claim) -> Optional[str]:
        final = self.heads_after(len(self.names))
        if c.heads != final:
            return f"answers {'yes' if c.heads else 'no'}, the coin ends {'heads' if final else 'tails'} up"
        return None

    def take_state(self, c: _Claim) -> Optional[str]:
        """A coin state: at the start, before the current person, after it, or at the end."""
        n, k = len(self.names), self.k
        word = "heads" if c.heads else "tails"
        if c.when == "initial":
            return None if c.heads else f"says the coin is tails before {self.names[0]} (it starts heads up)"
        if c.when == "before":
            if c.heads != (self.heads_after(k - 1) if k > 0 else True):
                return f"says the coin is {word} before {self.names[k - 1] if k else self.names[0]}"
            return None
        at = n if (self.summary or c.when == "final") else k
        if c.heads != self.heads_after(at):
            if at == 0:
                return f"says the coin is {word} before {self.names[0]}"
            truth = "heads" if self.heads_after(at) else "tails"
            return f"says {word} after {self.names[at - 1]}, the coin is {truth} up"
        if at == k:
            self.cur_said = True
        if at == n:
            self.state_after_last = True
            if self.summary:
                covers_all = self.last_count is not None and self.last_count == sum(self.flips)
                self.summary_ok = self.summary_ok or covers_all
        return None

    def finish(self) -> Optional[str]:
        """Every person was walked through or summed up, and the end state was stated."""
        if self.k < len(self.names) and not self.summary_ok:
            return f"skips {self.names[self.k]}"
        if self.k > 0 and not self.cur_said and not self.summary_ok:
            return f"says nothing about {self.names[self.k - 1]}'s action or the coin after it"
        if not self.state_after_last:
            return f"states no coin state after {self.names[-1]}"
        return None


def _restates_task(sentence: str, known: frozenset[str]) -> bool:
    """ "we need to find whether the coin is still heads up": a "whether" that names no person
    and is not a vacuous claim restates the task."""
    return (
        bool(re.search(r"\bwhether\b", sentence, re.IGNORECASE))
        and not _VACUOUS.search(sentence)
        and not any(t in known for t in _NAME_TOKEN.findall(sentence))
    )


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
    walk = _Walk([p for p, _ in people], [a == "flips" for _, a in people])
    # Names the dataset draws from: one of them in a CoT but not in the question is invented.
    known = frozenset(NAMES) | frozenset(walk.names)
    for s in claim_sentences(cot):
        if _restates_task(s, known):
            continue
        claims, leftover = _coin_claims(s, known)
        rest = _COIN_LEFTOVER.search(leftover)
        if rest:
            return f"cannot read {s!r} (unread {rest.group(0)!r})"
        for c in claims:
            error = walk.take(c, s)
            if error:
                return error
    return walk.finish()
