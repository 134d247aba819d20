"""Batched decoding of a seq2seq student: greedy, beam search or sampling, with or
without the external calculator.

The calculator is a logits processor, so it rides on `generate`'s own batching, beam
bookkeeping and stopping: after every step it looks at each sequence's newest tokens;
where the text now ends in "<arithmetic expression> =", the true value (computed by the
safe parser in calculator.py) is forced, token by token, before decoding goes on. It is
stateless (it re-derives what to force from the tokens themselves), so beams may be
reordered freely, and finished rows are left to `generate`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .calculator import CalcError, calculate, trailing_expression

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: greedy (default), beam search (num_beams > 1) or sampling."""

    max_new_tokens: int = 128
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_source_length: int = 512
    seed: int = 0


def _token_classes(tokenizer) -> tuple[list[int], list[int]]:
    """(ids of tokens whose text contains '=', ids of tokens that would glue onto a number
    just written: '5', '.5', ',000'), scanned once per tokenizer."""
    cached = getattr(tokenizer, "_cotdistill_calc_ids", None)
    if cached is None:
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        texts = [(i, tokenizer.convert_tokens_to_string([t])) for i, t in enumerate(vocab) if t is not None]
        cached = ([i for i, t in texts if "=" in t],
                  [i for i, t in texts if re.match(r"[0-9]|[.,][0-9]", t)])
        tokenizer._cotdistill_calc_ids = cached
    return cached


def calculator_processor(tokenizer, window: int = 48):
    """A LogitsProcessor that forces the calculator's value after every 'expr ='."""
    import torch
    from transformers import LogitsProcessor

    class CalculatorProcessor(LogitsProcessor):
        def __init__(self):
            ids, glue = _token_classes(tokenizer)
            if not ids:
                log.warning("calculator: no token of this tokenizer writes '='; the calculator never fires")
            self.eq_ids = torch.tensor(ids or [-1], dtype=torch.long)
            self.glue_ids = torch.tensor(glue, dtype=torch.long)
            self.special = set(tokenizer.all_special_ids)
            self.window = window
            self.plans: dict[tuple[int, ...], tuple[int, ...]] = {}  # prefix up to '=' -> forced ids

        def plan(self, prefix: tuple[int, ...]) -> tuple[int, ...]:
            if prefix not in self.plans:
                text = tokenizer.decode([t for t in prefix if t not in self.special])
                forced: tuple[int, ...] = ()
                if text.rstrip().endswith("=") and text[text.rindex("=") + 1:].strip() == "":
                    expr = trailing_expression(text)
                    if expr is not None:
                        try:
                            value = calculate(expr)
                        except CalcError:
                            value = None
                        if value is not None:
                            lead = "" if text.endswith((" ", "\n")) else " "
                            forced = tuple(tokenizer.encode(lead + value, add_special_tokens=False))
                self.plans[prefix] = forced
            return self.plans[prefix]

        def __call__(self, input_ids, scores):
            n = input_ids.shape[1]
            w = min(self.window, n)
            hit = torch.isin(input_ids[:, n - w:], self.eq_ids.to(input_ids.device))
            rows = hit.any(dim=1).nonzero().flatten().tolist()
            if not rows:
                return scores
            # position of the last '=' token in each hit row's window
            last = (w - 1 - hit.flip(1).int().argmax(dim=1)).tolist()
            for r in rows:
                p = n - w + last[r]
                seq = input_ids[r].tolist()
                forced = self.plan(tuple(seq[: p + 1]))
                done = seq[p + 1:]
                if forced and len(done) <= len(forced) and tuple(done) == forced[: len(done)]:
                    if len(done) < len(forced):
                        tok = forced[len(done)]
                        scores[r, :] = float("-inf")
                        scores[r, tok] = 0.0
                    elif len(self.glue_ids):
                        # the value is complete: the student may not append digits to it
                        scores[r, self.glue_ids.to(scores.device)] = float("-inf")
            return scores

    return CalculatorProcessor()


def decode(model, tokenizer, questions: list[str], batch_size: int, max_new_tokens: int = 128,
           num_beams: int = 1, max_source_length: int = 512, progress: bool = True, *,
           options: DecodeOptions | None = None, calculator: bool = False) -> list[str]:
    """Decode `questions` in batches of similar length; outputs come back in input order.

    `options` (if given) overrides max_new_tokens / num_beams / max_source_length.
    T5 is padded on the right with an attention mask, as it was trained.
    """
    import torch
    from tqdm import tqdm
    from transformers import LogitsProcessorList

    opts = options or DecodeOptions(max_new_tokens=max_new_tokens, num_beams=num_beams,
                                    max_source_length=max_source_length)
    tokenizer.padding_side = "right"
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    outputs: list[str] = [""] * len(questions)
    device = next(model.parameters()).device
    processors = LogitsProcessorList([calculator_processor(tokenizer)] if calculator else [])
    gen_kwargs = dict(max_new_tokens=opts.max_new_tokens, num_beams=opts.num_beams, do_sample=opts.do_sample,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if opts.do_sample:
        gen_kwargs.update(temperature=opts.temperature, top_p=opts.top_p)
        torch.manual_seed(opts.seed)
    model.eval()
    with torch.inference_mode():
        for b in tqdm(range(0, len(order), batch_size), desc="decode" + (" +calc" if calculator else ""),
                      unit="batch", disable=not progress):
            idx = order[b : b + batch_size]
            enc = tokenizer([questions[i] for i in idx], return_tensors="pt", padding=True,
                            truncation=True, max_length=opts.max_source_length).to(device)
            out = model.generate(**enc, **gen_kwargs, logits_processor=processors)
            for i, text in zip(idx, tokenizer.batch_decode(out, skip_special_tokens=True)):
                outputs[i] = text.strip()
    return outputs
