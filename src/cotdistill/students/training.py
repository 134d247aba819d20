"""Finetune a student with transformers' Seq2SeqTrainer (transformers 5 API).

Checkpoints go to a folder outside DVC's outputs (DVC deletes a stage's outputs before
it runs), keyed by everything that determines the run, so a killed train stage resumes
from its last checkpoint when it is rerun with the same inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch

@dataclasses.dataclass(frozen=True)
class ResolvedTrain:
    """Training settings after the preset's defaults fill the `None`s of params.train."""

    max_steps: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    max_source_length: int
    max_target_length: int
    eval_steps: int
    save_steps: int
    logging_steps: int
    precision: str
    gradient_checkpointing: bool
    optimizer: str
    tokenizer: str
    lora: bool
    quantization: str
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_save: str


def resolve(train_cfg, preset) -> ResolvedTrain:
    values = {}
    for f in dataclasses.fields(ResolvedTrain):
        v = getattr(train_cfg, f.name)
        values[f.name] = getattr(preset, f.name) if v is None else v
    if values["quantization"] != "none" and not values["lora"]:
        # Quantized weights cannot be trained directly: only adapters on top of them.
        raise ValueError(f"train.quantization: {values['quantization']} needs train.lora: true "
                         f"(model {preset.name} has lora {'on' if preset.lora else 'off'} by default)")
    # bf16 needs hardware support; on a CPU or an older GPU train in fp32 instead.
    if values["precision"] == "bf16" and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        values["precision"] = "fp32"
    if values["precision"] == "fp16" and not torch.cuda.is_available():
        values["precision"] = "fp32"
    return ResolvedTrain(**values)


def tokenize_pairs(tokenizer, pairs: list[tuple[str, str]], max_source: int, max_target: int):
    from datasets import Dataset

    sources = tokenizer([s for s, _ in pairs], max_length=max_source, truncation=True)
    targets = tokenizer(text_target=[t for _, t in pairs], max_length=max_target, truncation=True)
    rows = {
        "input_ids": sources["input_ids"],
        "attention_mask": sources["attention_mask"],
        "labels": targets["input_ids"],
    }
    rows["length"] = [len(a) + len(b) for a, b in zip(rows["input_ids"], rows["labels"])]
    return Dataset.from_dict(rows)


def run_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest checkpoint-N folder that was written to the end (a kill -9 during a
    save leaves a folder without trainer_state.json, which the Trainer writes last)."""
    done = [p for p in Path(checkpoint_dir).glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def replicas_identical(model) -> bool | None:
    """Under torch.distributed: do all ranks hold the same weights? (None when single.)"""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, h.hexdigest())
    return len(set(digests)) == 1


def train(
    model,
    tokenizer,
    train_pairs: list[tuple[str, str]],
    val_pairs: list[tuple[str, str]],
    cfg: ResolvedTrain,
    checkpoint_dir: Path,
    seed: int,
    callbacks: list | None = None,
) -> tuple[dict, list[dict]]:
    """Train to cfg.max_steps (resuming from checkpoint_dir if it holds one); returns the
    run's metrics and the Trainer's log history."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    if not train_pairs:
        raise ValueError("no training examples: the filter kept nothing (see metrics/filter.json)")
    train_ds = tokenize_pairs(tokenizer, train_pairs, cfg.max_source_length, cfg.max_target_length)
    val_ds = tokenize_pairs(tokenizer, val_pairs, cfg.max_source_length, cfg.max_target_length) if val_pairs else None
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    args = Seq2SeqTrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of max_steps
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        optim=cfg.optimizer,
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        activation_checkpointing=cfg.gradient_checkpointing,
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if val_ds is not None else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, padding=True),
        processing_class=tokenizer,
        callbacks=callbacks or [],
    )
    last = last_complete_checkpoint(checkpoint_dir)
    result = trainer.train(resume_from_checkpoint=last)
    metrics = {
        "train_loss": round(float(result.training_loss), 5),
        "steps": int(trainer.state.global_step),
        "epochs": round(float(trainer.state.epoch or 0.0), 3),
        "train_examples": len(train_pairs),
        "resumed_from_step": int(Path(last).name.split("-")[-1]) if last else 0,
        "train_runtime_s": round(float(result.metrics.get("train_runtime", math.nan)), 2),
    }
    if val_ds is not None:
        ev = trainer.evaluate()
        metrics["eval_loss"] = round(float(ev["eval_loss"]), 5)
    metrics["world_size"] = int(args.world_size)
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        # Sharded weights: every rank takes part in gathering the full state dict, which
        # rank 0 writes; the stage copies that folder instead of saving `model` itself.
        trainer.save_model(str(checkpoint_dir / "final"))
        metrics["final_dir"] = str(checkpoint_dir / "final")
    else:
        same = replicas_identical(model)
        if same is not None:
            metrics["replicas_identical"] = same
    if hasattr(model, "get_nb_trainable_parameters"):  # peft: counts 4-bit packed weights right
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    metrics["params_m"] = round(total / 1e6, 2)
    metrics["trainable_params_m"] = round(trainable / 1e6, 3)
    return metrics, trainer.state.log_history
