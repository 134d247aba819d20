"""Useful tokens/s of the `openai` teacher backend against a local
`transformers serve --continuous-batching`, at concurrency 1 and 16, measured side by
side in one run on the same questions (a fresh request cache for each, so every request
is sent).

    python benchmarks/teacher_openai_concurrency.py [--questions 32] [--no-continuous-batching]

The server runs the offline SmolLM2-135M on 127.0.0.1; on a GPU box point --model-dir at
any model folder (or use vLLM and the `vllm-local` preset for real throughput).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from teacher_common import coin_flip_prompts, generate_config, model_folder

from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.generate.prompts import STOP_STRINGS
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.generate.teachers.local_server import transformers_serve
from cotdistill.generate.teachers.openai_compat import OpenAIBackend


def run(base_url, folder, prompts, concurrency, max_new_tokens) -> tuple[dict, float]:
    cfg = generate_config(
        base_url=base_url, served_model=str(folder), concurrency=concurrency, request_timeout_s=600.0, max_retries=2
    )
    backend = OpenAIBackend(TEACHERS.get("transformers-serve"), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        results, stats = generate_all(
            backend,
            prompts,
            Sampling(max_new_tokens, stop=STOP_STRINGS),
            RequestCache(f"{tmp}/c.sqlite"),
            1,
            1,
            progress=False,
        )
        wall = time.perf_counter() - t
    backend.close()
    return stats.costs(), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--shots", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--continuous-batching", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the server")
    ap.add_argument("--model-dir", default=None)
    args = ap.parse_args()
    folder = model_folder(args.model_dir)
    prompts, _ = coin_flip_prompts(args.questions, args.shots)
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    print(
        f"transformers serve {'--continuous-batching' if args.continuous_batching else '(no continuous batching)'}"
        f", {len(prompts)} questions, {args.shots} shots, max_new_tokens {args.max_new_tokens}"
    )
    with transformers_serve(folder, continuous_batching=args.continuous_batching, env=env) as url:
        run(url, folder, prompts[:2], 2, 4)  # warm-up: load, first-call allocations
        base = None
        for c in args.concurrency:
            stats, wall = run(url, folder, prompts, c, args.max_new_tokens)
            tps = stats["sent"]["completion_tokens"] / wall
            base = base or tps
            print(
                f"concurrency {c:>3}: {stats['requests_sent']} requests "
                f"{stats['sent']['completion_tokens']:>6} tokens "
                f"{wall:>7.1f} s {tps:>7.1f} tok/s  x{tps / base:.2f}  failures {stats['failures']}"
            )


if __name__ == "__main__":
    main()
