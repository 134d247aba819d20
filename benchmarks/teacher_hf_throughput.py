"""Useful tokens/s of the `hf` teacher backend (batching + shared-prefix KV reuse) against
a naive loop that calls `model.generate` one question at a time, same model, questions,
greedy decoding and stop strings, measured side by side in one run.

    python benchmarks/teacher_hf_throughput.py [--questions 32] [--batch-size 16] [--threads N]

"Useful" tokens are the tokens of the completion up to the stop string. Target: >= 5x.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from teacher_common import coin_flip_prompts, generate_config, model_folder
from transformers import AutoModelForCausalLM, AutoTokenizer

from cotdistill.core.catalog.teachers import TeacherPreset
from cotdistill.generate.prompts import STOP_STRINGS
from cotdistill.generate.teachers import Sampling, cut_at_stop
from cotdistill.generate.teachers.backends import make_backend
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all


def useful_tokens(tokenizer, texts: list[str]) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def naive(folder, prompts, max_new_tokens) -> tuple[list[str], float]:
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    texts = []
    t = time.perf_counter()
    for p in prompts:
        enc = tok(p, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                stop_strings=list(STOP_STRINGS),
                tokenizer=tok,
                pad_token_id=tok.eos_token_id,
            )
        text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        texts.append(cut_at_stop(text, STOP_STRINGS)[0].strip())
    return texts, time.perf_counter() - t


def backend_run(folder, prompts, prefix, max_new_tokens, batch_size, prefix_cache) -> tuple[list[str], float]:
    preset = TeacherPreset(name="bench", backend="hf", model=str(folder), params_b=0.135)
    backend = make_backend(preset, generate_config(prefix_cache=prefix_cache), shared_prefix=prefix)
    with tempfile.TemporaryDirectory() as tmp:
        cache = RequestCache(f"{tmp}/c.sqlite")  # empty: every request is computed
        t = time.perf_counter()
        results, _ = generate_all(
            backend, prompts, Sampling(max_new_tokens, stop=STOP_STRINGS), cache, batch_size, 1, progress=False
        )
        wall = time.perf_counter() - t
    return [r[0].text for r in results], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--model-dir", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = model_folder(args.model_dir)
    prompts, prefix = coin_flip_prompts(args.questions, args.shots)
    tok = AutoTokenizer.from_pretrained(folder)
    print(
        f"{len(prompts)} questions, {args.shots} shots (prompt ~{len(tok(prompts[0])['input_ids'])} tokens), "
        f"max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}"
    )
    runs = {
        "naive: one question per generate()": naive(folder, prompts, args.max_new_tokens),
        f"hf backend: batch {args.batch_size}, no prefix reuse": backend_run(
            folder, prompts, prefix, args.max_new_tokens, args.batch_size, False
        ),
        f"hf backend: batch {args.batch_size} + prefix KV reuse": backend_run(
            folder, prompts, prefix, args.max_new_tokens, args.batch_size, True
        ),
    }
    base = None
    for name, (texts, wall) in runs.items():
        n = useful_tokens(tok, texts)
        tps = n / wall
        base = base or tps
        print(f"{name:<45} {n:>6} useful tokens {wall:>8.1f} s {tps:>8.1f} tok/s  x{tps / base:.2f}")
    same = sum(a == b for a, b in zip(runs[next(iter(runs))][0], list(runs.values())[-1][0]))
    print(f"identical completions (naive vs batched + prefix reuse): {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
