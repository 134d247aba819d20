"""Toy arithmetic students, trained in seconds, for the decoding tests and benchmarks.

A t5-mini (or a llama-tiny, the causal one) taught to answer "What is a plus b?" with
"a + b = c. The answer is s.", where c is sometimes off by one or two: the student learns
the format and often writes a wrong sum, so the external calculator has something to fix.
"""

from __future__ import annotations

import random


def addition_pair(rng: random.Random) -> tuple[str, str]:
    """One (question, target): the target's equation is wrong one time in three."""
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a} plus {b}?", f"{a} + {b} = {a + b + rng.choice([0, 1, 2])}. The answer is {a + b}."


def toy_arithmetic_student(steps: int = 60, seed: int = 0):
    """(model, tokenizer): t5-mini after `steps` AdamW steps on 64 addition questions
    (about 3 s on 2 cores), in eval mode."""
    import torch

    from ..catalog.students import STUDENTS
    from .model import load_student

    rng = random.Random(seed)
    pairs = [addition_pair(rng) for _ in range(64)]
    model, tok = load_student(STUDENTS.get("t5-mini"), [s for p in pairs for s in p], seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = rng.sample(pairs, 32)
        enc = tok([s for s, _ in batch], return_tensors="pt", padding=True)
        labels = tok(text_target=[t for _, t in batch], return_tensors="pt", padding=True)["input_ids"]
        labels[labels == tok.pad_token_id] = -100
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok


def toy_causal_arithmetic_student(steps: int = 80, seed: int = 0):
    """(model, tokenizer): llama-tiny after `steps` AdamW steps on the same questions,
    trained on prompt + completion with the loss on the completion (batches.py)."""
    import torch

    from ..catalog.students import STUDENTS
    from .batches import causal_encode, pad_rows
    from .causal import load_student

    rng = random.Random(seed)
    pairs = [addition_pair(rng) for _ in range(64)]
    model, tok = load_student(STUDENTS.get("llama-tiny"), [s for p in pairs for s in p], seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = rng.sample(pairs, 32)
        rows = causal_encode(tok, [s for s, _ in batch], [t for _, t in batch], 256, 256)
        model(**pad_rows(rows, tok.pad_token_id)).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok
