"""Dynamic padding with length-grouped batches against fixed max-length padding.

    python benchmarks/train_padding.py [--steps 20] [--model t5-tiny]

Both arms train the same config-built student (same init, optimizer and batch size) on
the same coin-flip CoT pairs (2-6 people, gold rationales: targets of very different
lengths), with the batches the project's Trainer setup yields:
- grouped: `train_sampling_strategy="group_by_length"` + DataCollatorForSeq2Seq padding to
  the longest row of each batch (what students/training.py does);
- fixed@params: random batches padded to params.yaml's train.max_source_length /
  max_target_length (256 / 256), i.e. tokenizer-style `padding="max_length"`;
- fixed@data: random batches padded to the longest source / target in the data, the
  tightest fixed length possible (a hard baseline).
Prints the share of padding tokens over a whole epoch of batches and the useful (non-pad)
tokens per second of training, side by side, with the ratios. Targets: padding <= 10%
with grouping, throughput >= 1.5x.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    from cotdistill.prepare.datasets.synthetic import coin_flip_example
    from cotdistill.text.rationale import close_rationale

    rng = random.Random(seed)
    rows = [coin_flip_example(rng, rng.randint(2, 6)) for _ in range(n)]
    return [(r["question"], close_rationale(r["gold_rationale"], r["answer"])) for r in rows]


def padding_share(batches) -> float:
    pad = total = 0
    for b in batches:
        for key, mask_value in (("input_ids", None), ("labels", -100)):
            t = b[key]
            is_pad = (t == -100) if mask_value == -100 else (b["attention_mask"] == 0)
            pad += int(is_pad.sum())
            total += t.numel()
    return pad / total


class Arm:
    """One side of the comparison: its model, optimizer and an epoch of batches."""

    def __init__(self, name, model, tokenizer, ds, batch_size, collator, grouped, seed):
        import torch
        from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

        args = Seq2SeqTrainingArguments(
            output_dir=f"/tmp/bench_padding_{name}",
            per_device_train_batch_size=batch_size,
            seed=seed,
            data_seed=seed,
            use_cpu=not torch.cuda.is_available(),
            report_to="none",
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if grouped else "random",
        )
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=ds, data_collator=collator)
        self.batches = list(trainer.get_train_dataloader())
        self.padding = padding_share(self.batches)
        self.model, self.device = model, next(model.parameters()).device
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.useful, self.seconds = 0, 0.0

    def step(self, i: int, timed: bool) -> None:
        import torch

        b = {
            k: v.to(self.device)
            for k, v in self.batches[i % len(self.batches)].items()
            if k in ("input_ids", "attention_mask", "labels")
        }
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        self.model.train()
        self.model(**b).loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if timed:
            self.seconds += time.perf_counter() - t
            self.useful += int(b["attention_mask"].sum()) + int((b["labels"] != -100).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="t5-tiny")
    ap.add_argument("--n", type=int, default=1024, help="training pairs")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per arm")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import DataCollatorForSeq2Seq

    from cotdistill.core.catalog.students import STUDENTS
    from cotdistill.core.config import load_params
    from cotdistill.train.students.architectures import ARCHITECTURES
    from cotdistill.train.students.batches import training_data
    from cotdistill.train.students.t5 import build_from_config
    from cotdistill.train.students.tokenizer import train_tokenizer
    from cotdistill.train.variants import ONE_TASK

    preset = STUDENTS.get(args.model)
    data = pairs(args.n, args.seed)
    tok = train_tokenizer([t for p in data for t in p], preset.tokenizer_vocab_size)
    lengths = SimpleNamespace(max_source_length=512, max_target_length=512)
    ds = training_data(tok, None, data, [], lengths, ARCHITECTURES.get("t5"), ONE_TASK, (1.0,)).train
    src_max = max(len(x) for x in ds["input_ids"])
    tgt_max = max(len(x) for x in ds["labels"])

    def fixed_collator(src_len: int, tgt_len: int):
        def collate(features):
            # Pad sources and targets to fixed lengths (tokenizer-style max_length padding).
            out = DataCollatorForSeq2Seq(tok, padding="max_length", max_length=src_len)(
                [{k: v for k, v in f.items() if k != "labels"} for f in features]
            )
            out["labels"] = torch.tensor([f["labels"] + [-100] * (tgt_len - len(f["labels"])) for f in features])
            return out

        return collate

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml").train

    model_fn = lambda: build_from_config(preset, tok, args.seed)  # noqa: E731
    print(
        f"hardware: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
        f"cuda {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}"
    )
    print(
        f"data: {args.n} coin-flip CoT pairs, source {min(len(x) for x in ds['input_ids'])}-{src_max} tokens, "
        f"target {min(len(x) for x in ds['labels'])}-{tgt_max} tokens; model {args.model}, batch {args.batch_size}"
    )
    grouped = Arm(
        "grouped", model_fn(), tok, ds, args.batch_size, DataCollatorForSeq2Seq(tok, padding=True), True, args.seed
    )
    arms = {
        "grouped + dynamic padding": grouped,
        f"random, fixed {params.max_source_length}/{params.max_target_length} (params)": Arm(
            "fixed_params",
            model_fn(),
            tok,
            ds,
            args.batch_size,
            fixed_collator(params.max_source_length, params.max_target_length),
            False,
            args.seed,
        ),
        f"random, fixed {src_max}/{tgt_max} (data max)": Arm(
            "fixed_data", model_fn(), tok, ds, args.batch_size, fixed_collator(src_max, tgt_max), False, args.seed
        ),
    }
    # Steps alternate between the arms, so that load from other processes hits all alike;
    # timed batches are spread over the whole epoch (grouping orders batches by length).
    n = len(grouped.batches)
    for i in range(args.steps + 2):
        idx = (i * n) // (args.steps + 2)
        for arm in arms.values():
            arm.step(idx, timed=i >= 2)  # two warm-up steps are not timed
    print(f"{'arm':<36}{'padding share':>14}{'useful tok/s':>14}{'steps/s':>9}{'grouped speedup':>17}")
    g = grouped.useful / grouped.seconds
    for label, a in arms.items():
        tok_s = a.useful / a.seconds
        print(f"{label:<36}{100 * a.padding:>13.1f}%{tok_s:>14.0f}{args.steps / a.seconds:>9.2f}{g / tok_s:>16.2f}x")
    ok_pad = grouped.padding <= 0.10
    print(
        f"targets: grouped padding {100 * grouped.padding:.1f}% <= 10%: {'met' if ok_pad else 'NOT met'}; "
        "throughput >= 1.5x: see the speedup column"
    )


if __name__ == "__main__":
    main()
