"""The external calculator as a logits processor: while a model writes, the value after
every "expr =" is computed (by the safe parser in calculator.py) and forced, token by token,
in full, and then the number is closed: the model may not extend it with digits, nor with
a '.', ',' or '/' followed by digits, however many steps it tries. It is stateless (it
re-derives everything from the tokens themselves), so beams may be reordered freely.

The students decode with it (evaluate/decoding.py: evaluate.calculator) and so does the
hf teacher (generate.calculator). How the value is forced (`forcing`): "text", the
default, allows any tokens whose text writes the value, the model choosing among them by
its own scores; "ids" forces the ids of ' ' + value encoded alone. With a sentencepiece
vocabulary the training text "= 12." is '▁12.', where "ids" forces '▁12' and a student,
never trained on '▁12' there, goes astray (benchmarks/results/calculator_forcing.md). An
expression the calculator rejects (too large, say) forces nothing, and decoding goes on.
Nor does one whose arithmetic reaches back to a token the calculator cannot read (a
sentencepiece '<unk>' for '^', '%' or '{', a sentinel '<extra_id_N>'): it never joins the
text on either side of such a token.
"""

from __future__ import annotations

import logging

from .calculator import CalcError, is_arithmetic_run, result_text, trailing_expression

log = logging.getLogger(__name__)


_SEPARATORS = (".", ",", "/")  # after a number, followed by digits, they would extend it
FORCINGS = ("ids", "text")
# How decode() forces the value: "text", measured against "ids" on a sentencepiece student
# in benchmarks/results/calculator_forcing.md (30.5% against 2.0%, exact McNemar p=1.6e-15).
CALCULATOR_FORCING = "text"


def _token_texts(tokenizer) -> list[str]:
    """Each token's text as it renders after a digit (so that a leading space, 'Ġ5' or
    '▁5', renders as one), special tokens as nothing; scanned once per tokenizer."""
    cached = getattr(tokenizer, "_cotdistill_calc_texts", None)
    if cached is None:
        anchor = tokenizer.encode("1", add_special_tokens=False)
        head = tokenizer.decode(anchor)
        ids = list(range(len(tokenizer)))
        texts = tokenizer.batch_decode([anchor + [i] for i in ids], skip_special_tokens=True)
        cached = [t[len(head) :] if t.startswith(head) else t for t in texts]
        tokenizer._cotdistill_calc_texts = cached
    return cached


def _extends_number(text: str) -> bool:
    """Whether `text`, written right after a number, would extend it ('5', '.5', ',000')."""
    # Any digit, not only 0-9: '42²' or '42٣' would change the number as much as '425'.
    return text[:1].isdigit() or (text[:1] in _SEPARATORS and text[1:2].isdigit())


def _token_classes(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """Token ids, scanned once per tokenizer: (those whose text contains '=', those that
    would extend a number just written: '5', '.5', ',000', '/4', those that would extend a
    number ending in a separator: '5'). A token is read as it renders after a digit, so
    that a leading space ('Ġ5', '▁5') starts a new word and is allowed."""
    cached = getattr(tokenizer, "_cotdistill_calc_classes", None)
    if cached is None:
        after = _token_texts(tokenizer)
        cached = (
            [i for i, a in enumerate(after) if "=" in a],
            [i for i, a in enumerate(after) if _extends_number(a)],
            [i for i, a in enumerate(after) if a[:1].isdigit()],
        )
        tokenizer._cotdistill_calc_classes = cached
    return cached


class _TextSteps:
    """For `forcing="text"`, per tokenizer: which tokens may come next when `remaining` is
    still to be written. A token qualifies when its text is a non-empty prefix of
    `remaining` after which the rest can still be written, or when it starts with all of
    `remaining` and what it adds would not extend the number ('12.' for '12', never '125'
    or '12.5'). Special tokens (they render as nothing) never qualify."""

    def __init__(self, tokenizer):
        import torch

        special = set(tokenizer.all_special_ids)
        texts = _token_texts(tokenizer)
        self.by_text: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            if t and i not in special:
                self.by_text.setdefault(t, []).append(i)
        self.sorted = sorted(self.by_text)
        self.done: dict[str, bool] = {"": True}
        self.steps: dict[str, "torch.Tensor"] = {}

    def _longer(self, remaining: str) -> list[int]:
        """Tokens whose text starts with all of `remaining` and does not extend the number."""
        from bisect import bisect_left

        out = []
        for k in range(bisect_left(self.sorted, remaining), len(self.sorted)):
            text = self.sorted[k]
            if not text.startswith(remaining):
                break
            if not _extends_number(text[len(remaining) :]):
                out += self.by_text[text]
        return out

    def writable(self, remaining: str) -> bool:
        """Whether some run of tokens writes `remaining` (and perhaps a closing separator)."""
        if remaining not in self.done:
            self.done[remaining] = bool(self._longer(remaining)) or any(
                remaining[:k] in self.by_text and self.writable(remaining[k:]) for k in range(1, len(remaining))
            )
        return self.done[remaining]

    def allowed(self, remaining: str):
        """The token ids allowed next, as a tensor."""
        import torch

        if remaining not in self.steps:
            ids = [
                i
                for k in range(1, len(remaining))
                if self.writable(remaining[k:])
                for i in self.by_text.get(remaining[:k], [])
            ]
            self.steps[remaining] = torch.tensor(sorted(set(ids + self._longer(remaining))), dtype=torch.long)
        return self.steps[remaining]


def _text_steps(tokenizer) -> _TextSteps:
    cached = getattr(tokenizer, "_cotdistill_calc_steps", None)
    if cached is None:
        cached = tokenizer._cotdistill_calc_steps = _TextSteps(tokenizer)
    return cached


def _reaches_start(text: str, expr: str) -> bool:
    """Whether only spaces and arithmetic lie before `expr`, the expression just before the
    final '=' of `text`: its run of arithmetic may have gone on before `text` begins (a
    '<unk>' there may have been a digit or an operator: '5 - 3 * 4' read as the prose
    dash of '- 3 * 4')."""
    body = text.rstrip()[:-1].rstrip()
    gap = body[: len(body) - len(expr)]
    return not gap.strip() or is_arithmetic_run(gap)


def calculator_processor(tokenizer, start: int = 0, forcing: str = CALCULATOR_FORCING):
    """A LogitsProcessor that forces the calculator's value after every 'expr =' and then
    keeps that number closed. Tokens before position `start` (a causal student's prompt)
    are context only: an '=' there is never answered.

    `forcing`: "ids" forces the ids of ' ' + value as the tokenizer encodes it alone, one
    by one. "text" constrains by characters: each step allows the tokens whose text keeps
    what is written consistent with ' ' + value (a prefix of what remains, or all of it
    and then no digit: '▁', '12.' or '▁12.' for ' 12'), keeping the student's own scores
    among them; a value no run of tokens can write (a character the vocabulary lacks) is
    forced as "ids" forces it. Either way the number is then kept closed. The default is
    CALCULATOR_FORCING ("text"; benchmarks/results/calculator_forcing.md)."""
    import torch
    from transformers import LogitsProcessor

    if forcing not in FORCINGS:
        raise ValueError(f"forcing must be one of {FORCINGS}, not {forcing!r}")

    class CalculatorProcessor(LogitsProcessor):
        def __init__(self):
            eq, glue, glue_after_sep = _token_classes(tokenizer)
            if not eq:
                log.warning("calculator: no token of this tokenizer writes '='; the calculator never fires")
            self.eq_ids = torch.tensor(eq or [-1], dtype=torch.long)
            self.glue = torch.tensor(glue, dtype=torch.long)
            self.glue_after_sep = torch.tensor(glue_after_sep, dtype=torch.long)
            self.special = set(tokenizer.all_special_ids)
            # Special tokens that stand for unseen text: '<unk>' and sentinels, not pad, bos or eos.
            self.opaque = self.special - {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
            self.plans: dict[tuple[int, ...], tuple[int, ...]] = {}  # prefix up to '=' -> forced ids
            self.texts: dict[tuple[int, ...], str] = {}  # prefix up to '=' -> forced text ("text" forcing)
            if forcing == "text":
                self.steps = _text_steps(tokenizer)
                self.rendered = _token_texts(tokenizer)

        def plan(self, prefix: tuple[int, ...]) -> tuple[int, ...]:
            """The ids to force after `prefix`, which ends in '='. Only the text after its last
            opaque token is read (the run of arithmetic stops there anyway), and an expression
            that reaches back to that token forces nothing: dropping the token would glue
            '123456789<unk>12 / 7' into 12345678912 / 7."""
            if prefix not in self.plans:
                cut = max((i for i, t in enumerate(prefix) if t in self.opaque), default=-1)
                text = tokenizer.decode([t for t in prefix[cut + 1 :] if t not in self.special])
                expr = trailing_expression(text)
                if expr is not None and cut >= 0 and _reaches_start(text, expr):
                    expr = None
                forced: tuple[int, ...] = ()
                if expr is not None:
                    try:
                        value = result_text(expr)
                        lead = "" if text.endswith((" ", "\n")) else " "
                        forced = tuple(tokenizer.encode(lead + value, add_special_tokens=False))
                        if forcing == "text" and self.steps.writable(lead + value):
                            self.texts[prefix] = lead + value
                    except CalcError:
                        pass  # nothing to force: the student goes on unaided
                self.plans[prefix] = forced
            return self.plans[prefix]

        def by_text(self, r: int, text: str, done: list[int], scores) -> None:
            """`forcing="text"`: constrain row `r`, `done` written since the '=', to tokens
            that go on writing `text`; once it is written, keep the number closed."""
            written = ""
            for t in done:  # no further than the value and a separator: the rest cannot reopen it
                written += self.rendered[t] if t < len(self.rendered) else ""
                if len(written) > len(text) + 2:
                    break
            if len(written) < len(text):
                if not text.startswith(written):
                    return  # the row wrote something else (the processor was not applied throughout)
                allowed = self.steps.allowed(text[len(written) :]).to(scores.device)
                keep = scores[r, allowed].clone()
                scores[r, :] = float("-inf")
                scores[r, allowed] = keep
            elif written.startswith(text):
                banned = self.closing(written[len(text) :])
                if banned is not None and len(banned):
                    scores[r, banned.to(scores.device)] = float("-inf")

        def closing(self, after: str | None):
            """Token ids that would extend a value followed by `after` (None: something else)."""
            if after == "":  # nothing, or tokens that render as nothing: the number is still open
                return self.glue
            return self.glue_after_sep if after in _SEPARATORS else None

        def banned_after(self, forced: tuple[int, ...], tail: list[int]):
            """Token ids that would extend the forced number, `tail` written after it."""
            if not tail:
                return self.glue
            if len(tail) > 2:
                # Only tokens that render as nothing, or one lone separator, keep the number
                # open; three of those in a row do not occur, and this spares a decode per step.
                return None
            value = tokenizer.decode(list(forced))
            written = tokenizer.decode(list(forced) + tail)
            return self.closing(written[len(value) :] if written.startswith(value) else None)

        def __call__(self, input_ids, scores):
            hit = torch.isin(input_ids, self.eq_ids.to(input_ids.device))
            hit[:, :start] = False
            rows = hit.any(dim=1).nonzero().flatten().tolist()
            if not rows:
                return scores
            # position of the last '=' token in each row (the whole row: a value is never cut)
            last = (input_ids.shape[1] - 1 - hit.flip(1).int().argmax(dim=1)).tolist()
            for r in rows:
                seq = input_ids[r].tolist()
                prefix = tuple(seq[: last[r] + 1])
                forced = self.plan(prefix)
                done = seq[last[r] + 1 :]
                if prefix in self.texts:
                    self.by_text(r, self.texts[prefix], done, scores)
                    continue
                if not forced or tuple(done[: len(forced)]) != forced[: len(done)]:
                    continue
                if len(done) < len(forced):
                    scores[r, :] = float("-inf")
                    scores[r, forced[len(done)]] = 0.0
                else:
                    banned = self.banned_after(forced, done[len(forced) :])
                    if banned is not None and len(banned):
                        scores[r, banned.to(scores.device)] = float("-inf")
            return scores

    return CalculatorProcessor()
