"""Issue 23, item 3: does the calculator's forced value match what a sentencepiece student
was trained on, and does forcing it as the training text would tokenize it help?

With a T5-style sentencepiece vocabulary, the gold rationale's "= 12." tokenizes as '▁',
'12.' (the number glued to its period), while the calculator's `ids` forcing writes the
ids of " 12" encoded alone ('▁12'). `text` forcing (decoding.calculator_processor's
`forcing="text"`) constrains by characters instead: any tokens whose text writes the
value, the student choosing among them by its own scores.

The benchmark (a) trains a sentencepiece vocabulary with the stand-in's T5 conventions
(tests/standins.py `t5_tokenizer`: pad 0, eos 1, unk 2, 100 sentinels, digits merged) on
the multistep_arith train split and counts how often the forced ids differ from the
in-context tokenization of the gold targets, (b) trains a T5 v1.1-shaped student (the
`--preset` config through the project's own builder: gated-GELU) on the gold rationales with the
project's own `train()`, one torch thread, and (c) decodes the in-distribution test
split without the calculator and with it in each forcing mode, greedily, printing the
accuracies with 95% Wilson intervals and the exact McNemar test between the two modes.
Float code paths as the pipeline sets them (machine.apply: portable unless
COTDISTILL_FLOAT_PATHS=native); the signature printed at the end says which.

    python benchmarks/calculator_forcing.py --steps 2400 --out benchmarks/results/calculator_forcing.md
    python benchmarks/calculator_forcing.py --tokenizer project --steps 800   # the preset's byte-level BPE

`--model-dir DIR` keeps the trained student (and its tokenizer) there; run again with
`--load` to decode it without training.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def load_splits(n_train: int, n_test: int, seed: int):
    from cotdistill.core.config import parse_params, read_yaml
    from cotdistill.prepare.datasets.synthetic import load_multistep_arith

    raw = read_yaml(REPO / "params.yaml")
    raw["dataset"] = "multistep_arith"
    raw["seed"] = seed
    raw["prepare"].update(n_train=n_train, n_test=n_test, n_validation=64, n_test_ood=200)
    params = parse_params(raw)
    return params, load_multistep_arith(params)


def sentencepiece_tokenizer(folder: Path, texts: list[str], vocab_size: int):
    """tests/standins.py's T5 tokenizer (its trainer settings and T5 conventions), trained on
    `texts` (the task's train split) beside the stand-in's own corpus (arithmetic word
    problems: alone, the task's few words and numbers up to 100 leave room for ~330 pieces)."""
    from tests import standins

    corpus = standins._corpus
    standins._corpus = lambda: texts + corpus()
    try:
        return standins.t5_tokenizer(folder, vocab_size=vocab_size)
    finally:
        standins._corpus = corpus


def forced_mismatch(tok, targets: list[str]) -> dict:
    """For every 'expression = value' in the gold targets: do the ids the calculator forces
    (`ids` mode: ' ' + value encoded alone) equal the target's own tokens there?"""
    from cotdistill.text.calculator import result_text, trailing_expression

    counts = {"equations": 0, "differ": 0}
    examples: dict[tuple, int] = {}
    for target in targets:
        ids = tok.encode(target, add_special_tokens=False)
        pieces = tok.convert_ids_to_tokens(ids)
        # the character offset where each token ends, from the decoded prefixes
        for m in re.finditer(r"=", target):
            expr = trailing_expression(target[: m.end()])
            if expr is None:
                continue
            value = result_text(expr)
            forced = tok.encode(" " + value, add_special_tokens=False)
            # the target's tokens after this '=': find the '=' token by decoding prefixes
            k = next(i for i in range(len(ids)) if tok.decode(ids[: i + 1]).count("=") == target[: m.end()].count("="))
            own = ids[k + 1 : k + 1 + len(forced)]
            counts["equations"] += 1
            if own != forced:
                counts["differ"] += 1
                key = (tuple(tok.convert_ids_to_tokens(forced)), tuple(pieces[k + 1 : k + 1 + len(forced) + 1]))
                examples[key] = examples.get(key, 0) + 1
    counts["examples"] = sorted(examples.items(), key=lambda kv: -kv[1])[:6]
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--preset", default="t5-mini4")
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument(
        "--tokenizer",
        choices=("sentencepiece", "project"),
        default="sentencepiece",
        help="project: the preset's own byte-level BPE (digits split), for comparison",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--load", action="store_true", help="decode the student in --model-dir, no training")
    ap.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    args = ap.parse_args()

    from cotdistill.core import machine

    machine.apply()  # the project's float code paths (portable unless COTDISTILL_FLOAT_PATHS=native), before torch
    import torch

    torch.set_num_threads(args.threads)
    from cotdistill.core.catalog.students import STUDENTS
    from cotdistill.evaluate.decoding import DecodeOptions, decode
    from cotdistill.evaluate.evaluation import score
    from cotdistill.report.stats import mcnemar_exact, wilson_interval
    from cotdistill.train.students.architectures import ARCHITECTURES
    from cotdistill.train.students.t5 import build_from_config
    from cotdistill.train.students.tokenizer import tokenizer_corpus
    from cotdistill.train.students.training import resolve, train
    from cotdistill.train.variants import gold_rows

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    params, splits = load_splits(args.n_train, args.n_test, args.seed)
    train_rows = splits["train"]
    pairs = [(r["question"], r["target"]) for r in gold_rows(train_rows, [])]
    preset = STUDENTS.get(args.preset)
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="calcforce-"))
    if args.load:
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        tok = AutoTokenizer.from_pretrained(model_dir)
        model = T5ForConditionalGeneration.from_pretrained(model_dir)
    else:
        if args.tokenizer == "project":
            from cotdistill.train.students.tokenizer import train_tokenizer

            tok = train_tokenizer(tokenizer_corpus(train_rows), preset.tokenizer_vocab_size, preset.tokenizer)
        else:
            tok = sentencepiece_tokenizer(model_dir, tokenizer_corpus(train_rows), args.vocab)
        model = build_from_config(preset, tok, seed=args.seed)
    env = " ".join(f"{k}={os.environ[k]}" for k in (machine.MODE_ENV,) if k in os.environ)
    say(f"command: {env + ' ' if env else ''}python benchmarks/calculator_forcing.py {' '.join(sys.argv[1:])}")
    say(
        f"student: {args.preset} config ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), "
        f"{model.config.feed_forward_proj}, tied embeddings: {model.config.tie_word_embeddings}, "
        + (
            f"sentencepiece unigram vocabulary of {len(tok)} tokens ({type(tok).__name__}, stand-in conventions)"
            if args.tokenizer == "sentencepiece"
            else f"the preset's own tokenizer, {len(tok)} tokens"
        )
    )
    say(
        f"data: multistep_arith seed {args.seed}, {len(pairs)} gold-rationale train examples, "
        f"{len(splits['test'])} ID test questions"
    )
    example = pairs[0][1]
    say(f"a target: {example!r} -> {tok.convert_ids_to_tokens(tok.encode(example, add_special_tokens=False))}")

    mm = forced_mismatch(tok, [t for _, t in pairs])
    say(
        f"forced ids ('ids' mode) differ from the target's own tokens after '=' in {mm['differ']} of "
        f"{mm['equations']} training equations ({100 * mm['differ'] / max(1, mm['equations']):.1f}%)"
    )
    for (forced, own), n in mm["examples"]:
        say(f"    {n:5d}x forced {list(forced)} where training has {list(own)}")

    if not args.load:
        cfg = resolve(
            dataclasses.replace(
                params.train,
                max_steps=args.steps,
                save_steps=10**6,
                eval_steps=10**6,
                logging_steps=max(1, args.steps // 10),
            ),
            preset,
        )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as ckpt:
            metrics, history = train(
                model, tok, pairs, [], cfg, Path(ckpt), seed=args.seed, arch=ARCHITECTURES.get(preset.architecture)
            )
        train_s = time.perf_counter() - start
        losses = [round(h["loss"], 3) for h in history if "loss" in h]
        say(
            f"training: {args.steps} steps, batch {cfg.batch_size}, lr {cfg.learning_rate}, {cfg.optimizer}, "
            f"{torch.get_num_threads()} thread(s): {train_s / 60:.1f} min ({train_s / args.steps:.2f} s/step); "
            f"loss {losses}"
        )
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        (model_dir / "training.txt").write_text(lines[-1])
    else:
        say(f"{(model_dir / 'training.txt').read_text()} (trained by an earlier run into {model_dir})")

    tests = splits["test"]
    questions = [r["question"] for r in tests]
    opts = DecodeOptions(max_new_tokens=args.max_new_tokens)
    arms = {
        "no calculator": dict(calculator=False),
        "calculator, forcing ids": dict(calculator=True, forcing="ids"),
        "calculator, forcing text": dict(calculator=True, forcing="text"),
    }
    results = {}
    for name, kw in arms.items():
        start = time.perf_counter()
        outputs = decode(model, tok, questions, 64, opts, progress=False, **kw)
        preds, m = score(tests, outputs, "flexible")
        results[name] = (preds, m, time.perf_counter() - start)
    say()
    say(f"| decoding (ID test, n={len(tests)}, greedy) | correct | accuracy | 95% Wilson | decode s |")
    say("|---|---|---|---|---|")
    for name, (_preds, m, secs) in results.items():
        lo, hi = wilson_interval(m["correct"], m["n"])
        say(
            f"| {name} | {m['correct']}/{m['n']} | {100 * m['correct'] / m['n']:.1f}% | "
            f"{100 * lo:.1f}-{100 * hi:.1f}% | {secs:.0f} |"
        )
    ids_ok = [p["correct"] for p in results["calculator, forcing ids"][0]]
    text_ok = [p["correct"] for p in results["calculator, forcing text"][0]]
    mc = mcnemar_exact(text_ok, ids_ok)
    say()
    say(
        f"exact McNemar, text vs ids forcing: only text right {mc['only_a']}, only ids right {mc['only_b']}, "
        f"p = {mc['p_value']:.3g}"
    )
    differ = sum(a["output"] != b["output"] for a, b in zip(*(results[k][0] for k in list(arms)[1:])))
    say(f"outputs that differ between the two forcing modes: {differ} of {len(tests)}")
    for a, b in zip(*(results[k][0] for k in list(arms)[1:])):
        if a["output"] != b["output"]:
            say(f"    e.g. ids:  {a['output']!r}\n         text: {b['output']!r}  (gold {a['gold']})")
            break
    sig = machine.signature(args.threads)
    say()
    say(
        f"torch threads: {torch.get_num_threads()}; machine: {machine.describe(sig)}; "
        f"python {platform.python_version()}"
    )
    say(f"signature: {sig}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        title = "# Calculator forcing: ids vs text (issue 23, item 3)\n\n"
        args.out.write_text(title + "```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
