"""Toy arithmetic students, trained in seconds, for the decoding tests and benchmarks.

A t5-mini (or a llama-tiny, the causal one) taught to answer "What is a plus b?" with
"a + b = c. The answer is s.", where c is sometimes off by one or two: the student learns
the format and often writes a wrong sum, so the external calculator has something to fix.

Each toy trains until a stated loss, not for a fixed number of steps: MKL, oneDNN and
ATen pick their float code paths per processor, so a fixed step count reaches a
different loss (and sometimes not the format) on another CPU. The targets sit where the
format and stopping are learnt with margin and the 64 questions are not yet memorised
(below it a toy writes odd outputs on new questions); the step cap is about 5x what is
needed, and a toy that misses its target raises rather than handing a half-trained
model to a test.
"""

from __future__ import annotations

import logging
import random
from typing import Callable

log = logging.getLogger(__name__)

LEARNING_RATE = 3e-3
BATCH = 32
WINDOW = 10  # the target is on the mean loss of the last WINDOW steps: one batch's loss is noisy
# Words of the tails that make training questions of many lengths: the decoding tests batch
# a long question with short ones, which a toy that only saw one length does not answer
# in its format (the causal one repeated "The answer answer answer ...").
FILLER = "please add the two numbers they are small and easy so take your time then say what it is".split()


class ToyTrainingError(RuntimeError):
    """A toy student did not reach its target loss within its step cap."""


def addition_pair(rng: random.Random) -> tuple[str, str]:
    """One (question, target): the target's equation is wrong one time in three."""
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a} plus {b}?", f"{a} + {b} = {a + b + rng.choice([0, 1, 2])}. The answer is {a + b}."


def toy_pairs(rng: random.Random, n: int = 64) -> list[tuple[str, str]]:
    """n training pairs; half the questions end with a sentence of 2-12 filler words."""
    pairs = []
    for _ in range(n):
        q, t = addition_pair(rng)
        if rng.random() < 0.5:
            q += " " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(2, 12))).capitalize() + "."
        pairs.append((q, t))
    return pairs


def train_to_target(
    model, batch_loss: Callable, pairs: list, rng: random.Random, target_loss: float, max_steps: int, name: str
) -> int:
    """AdamW steps on random batches of `pairs` until the mean loss of the last WINDOW
    steps is below `target_loss`; returns the steps taken, leaves the model in eval mode.
    Raises ToyTrainingError after `max_steps` steps without reaching it."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    model.train()
    losses: list[float] = []
    mean = float("nan")
    for step in range(1, max_steps + 1):
        loss = batch_loss(rng.sample(pairs, BATCH))
        loss.backward()
        # lr 3e-3 with no warmup: clipping keeps an early spike from undoing the format
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        mean = sum(losses[-WINDOW:]) / len(losses[-WINDOW:])
        if step >= WINDOW and mean < target_loss:
            model.eval()
            log.info(
                "toy %s: mean loss %.3f of the last %d steps after %d steps (target %.2f)",
                name,
                mean,
                WINDOW,
                step,
                target_loss,
            )
            return step
    raise ToyTrainingError(
        f"toy {name}: the mean loss of the last {WINDOW} steps is {mean:.3f} after {max_steps} steps, "
        f"above the target {target_loss}: it has not learnt the format its tests rely on"
    )


def toy_arithmetic_student(seed: int = 0, target_loss: float = 0.6, max_steps: int = 300):
    """(model, tokenizer): t5-mini trained on 64 addition questions until its mean loss is
    below `target_loss` (about 40 steps, 4 s on one thread), in eval mode."""
    from cotdistill.core.catalog.students import STUDENTS

    from .t5 import load_student

    rng = random.Random(seed)
    pairs = toy_pairs(rng)
    model, tok = load_student(STUDENTS.get("t5-mini"), [s for p in pairs for s in p], seed=seed)

    def batch_loss(batch):
        enc = tok([s for s, _ in batch], return_tensors="pt", padding=True)
        labels = tok(text_target=[t for _, t in batch], return_tensors="pt", padding=True)["input_ids"]
        labels[labels == tok.pad_token_id] = -100
        return model(**enc, labels=labels).loss

    train_to_target(model, batch_loss, pairs, rng, target_loss, max_steps, "t5-mini")
    return model, tok


def toy_causal_arithmetic_student(seed: int = 0, target_loss: float = 1.0, max_steps: int = 300):
    """(model, tokenizer): llama-tiny trained on the same questions, on prompt + completion
    with the loss on the completion (batches.py), until its mean loss is below
    `target_loss` (about 50 steps, 20-40 s on one thread), in eval mode."""
    from cotdistill.core.catalog.students import STUDENTS

    from .batches import pad_rows
    from .causal import encode, load_student

    rng = random.Random(seed)
    pairs = toy_pairs(rng)
    model, tok = load_student(STUDENTS.get("llama-tiny"), [s for p in pairs for s in p], seed=seed)

    def batch_loss(batch):
        rows = encode(tok, [s for s, _ in batch], [t for _, t in batch], 256, 256)
        return model(**pad_rows(rows, tok.pad_token_id)).loss

    train_to_target(model, batch_loss, pairs, rng, target_loss, max_steps, "llama-tiny")
    return model, tok
