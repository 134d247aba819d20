"""Seconds per training step of a causal student on this machine: SmolLM2-135M (the
offline GGUF student, `model=smollm2-135m`) with LoRA adapters, or fully finetuned.

Batches are built as the train stage builds them (students/batches.py: prompt +
completion + EOS, loss on the completion), padded to `--tokens` tokens per row, and one
AdamW step is timed after a warm-up step.

    python benchmarks/causal_step.py --batch 8 --tokens 128 --steps 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per row (prompt + completion)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="full finetuning instead of LoRA")
    ap.add_argument("--lora-r", type=int, default=16)
    args = ap.parse_args()

    import torch

    from cotdistill.core.catalog.students import STUDENTS
    from cotdistill.train.students.batches import pad_rows
    from cotdistill.train.students.causal import apply_lora, load_student
    from cotdistill.train.students.causal import encode as causal_encode

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, tok = load_student(STUDENTS.get(args.model), [], seed=0)
    load_s = time.perf_counter() - start
    if not args.full:
        model = apply_lora(model, args.lora_r, 2 * args.lora_r, 0.05, gradient_checkpointing=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=2e-4)
    question = "A coin is heads up. Ann flips the coin. Bo does not flip the coin. Is the coin still heads up?"
    cot = ("Ann flips the coin, so it is tails up. Bo does not flip it, so it stays tails up. " * 8).strip()
    rows = causal_encode(tok, [question] * args.batch, [cot] * args.batch, args.tokens // 2, args.tokens)
    rows = [{k: v[: args.tokens] for k, v in r.items()} for r in rows]
    batch = pad_rows(rows, tok.pad_token_id)
    model.train()
    times = []
    for step in range(args.steps + 1):
        t = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step:  # the first step allocates and warms up
            times.append(time.perf_counter() - t)
    result = {
        "model": args.model,
        "mode": "full" if args.full else f"LoRA r={args.lora_r} (q_proj, v_proj)",
        "trainable_params_m": round(sum(p.numel() for p in trainable) / 1e6, 3),
        "batch": args.batch,
        "tokens_per_row": batch["input_ids"].shape[1],
        "completion_tokens": int((batch["labels"] != -100).sum()),
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 1),
        "step_s": [round(x, 1) for x in times],
        "mean_step_s": round(sum(times) / len(times), 1),
        "tokens_per_s": round(batch["input_ids"].numel() / (sum(times) / len(times)), 1),
        "load_average_1min": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "final_loss": round(float(loss), 3),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
