"""Decoding speed, measured side by side in one run:

1. batched greedy decoding against one question at a time (target: at least 5x faster);
2. decoding with the external calculator against plain batched decoding
   (target: at most 1.5x the time).

    python benchmarks/eval_decoding.py [--model DIR --questions FILE.jsonl] [--n 64]

By default the model is a t5-mini trained here to a stated loss (students/toy.py) to write "a + b = c."
(so the calculator really fires); `--model` times a trained student instead (e.g.
models/cot) on the questions of a prepared split. Each timing is the best of --repeats, the two
sides of a comparison run alternately (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from cotdistill.evaluate.decoding import DecodeOptions, decode
from cotdistill.text.calculator import find_equations
from cotdistill.train.students.toy import addition_pair, toy_arithmetic_student


def side_by_side(repeats: int, fa, fb):
    """Best-of-`repeats` times of fa and fb, run alternately so that load on a shared
    machine hits both alike; returns (time a, output a, time b, output b)."""
    ta, tb, out_a, out_b = [], [], None, None
    for _ in range(repeats):
        t = time.perf_counter()
        out_a = fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        out_b = fb()
        tb.append(time.perf_counter() - t)
    return min(ta), out_a, min(tb), out_b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a trained student folder (default: a toy arithmetic t5-mini)")
    ap.add_argument("--questions", help="JSONL with a 'question' field (with --model)")
    ap.add_argument("--n", type=int, default=64, help="questions decoded")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        model = T5ForConditionalGeneration.from_pretrained(args.model).eval()
        tok = AutoTokenizer.from_pretrained(args.model)
        with open(args.questions, encoding="utf-8") as fh:
            questions = [json.loads(line)["question"] for line in fh if line.strip()]
        name = args.model
    else:
        model, tok = toy_arithmetic_student()
        rng = random.Random(1)
        questions = [addition_pair(rng)[0] for _ in range(512)]
        name = "t5-mini, toy arithmetic (trained to its stated loss)"
    qs = questions[: args.n]
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"model: {name} ({n_params:.1f}M params), {len(qs)} questions, max_new_tokens {args.max_new_tokens}, "
        f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, best of {args.repeats}"
    )

    kw = dict(options=DecodeOptions(max_new_tokens=args.max_new_tokens), progress=False)
    t_batch, batched, t_single, single = side_by_side(
        args.repeats,
        lambda: decode(model, tok, qs, args.batch_size, **kw),
        lambda: [decode(model, tok, [q], 1, **kw)[0] for q in qs],
    )
    same = sum(a == b for a, b in zip(batched, single))
    print(f"batched decoding      {t_batch:8.3f} s   ({len(qs) / t_batch:7.1f} questions/s)")
    print(f"one at a time         {t_single:8.3f} s   ({len(qs) / t_single:7.1f} questions/s)")
    print(f"  speed-up: {t_single / t_batch:.1f}x (target >= 5x); identical outputs: {same}/{len(qs)}")

    t_calc, calc, t_plain, plain = side_by_side(
        args.repeats,
        lambda: decode(model, tok, qs, args.batch_size, calculator=True, **kw),
        lambda: decode(model, tok, qs, args.batch_size, **kw),
    )
    eqs = [e for o in calc for e in find_equations(o)]
    false_plain = sum(not e.holds for o in plain for e in find_equations(o))
    tok_plain = sum(len(tok(o)["input_ids"]) for o in plain)
    tok_calc = sum(len(tok(o)["input_ids"]) for o in calc)
    print(f"plain batched         {t_plain:8.3f} s   ({tok_plain} output tokens)")
    print(f"with the calculator   {t_calc:8.3f} s   ({tok_calc} output tokens)")
    print(
        f"  overhead: {t_calc / t_plain:.2f}x (target <= 1.5x); equations in calculator outputs: {len(eqs)}, "
        f"all true: {all(e.holds for e in eqs)}; false equations without it: {false_plain}; "
        f"outputs changed: {sum(a != b for a, b in zip(plain, calc))}/{len(qs)}"
    )


if __name__ == "__main__":
    main()
