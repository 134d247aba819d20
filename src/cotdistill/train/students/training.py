"""Finetune a student with transformers' Seq2SeqTrainer (transformers 5 API): T5 or
causal students, one task or the multitask variant's two (batches.py builds the batches).

Checkpoints go to a folder outside DVC's outputs (DVC deletes a stage's outputs before
it runs), keyed by everything that determines the run, so a killed train stage resumes
from its last checkpoint when it is rerun with the same inputs. A resumed run continues
the interrupted one exactly: the same batches, weights, logged losses and train_loss as
a run that was never stopped (`ResumableTrainer`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from cotdistill.core.config import TrainConfig
from cotdistill.core.errors import DataError

from ..variants import ONE_TASK, SETTING_KEYS
from .batches import training_data

log = logging.getLogger(__name__)

# params.train keys that choose which runs to make and how to launch or watch them,
# not how a student is trained; and a variant's own settings (multitask_alpha), which reach
# it through its data folder (variants.SETTINGS_FILE), so that a new alpha retrains that
# variant only.
NOT_TRAINING = ("variants", "launch", "log_model", "system_metrics", "memory_check", *SETTING_KEYS)

# The settings of one training run: params.train without NOT_TRAINING, after the student
# preset's defaults fill its `None`s (`resolve`).
ResolvedTrain = dataclasses.make_dataclass(
    "ResolvedTrain",
    [(f.name, f.type) for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TRAINING],
    frozen=True,
)
# The resolved `tokenizer` of a student that brings its own (Hub, local folder, GGUF file):
# train.tokenizer names the kind a from-config student trains, which such a student does
# not; job.py adds the loaded tokenizer's class and kind (tokenizer.describe_tokenizer).
CHECKPOINT_TOKENIZER = "checkpoint"


def resolve(train_cfg: TrainConfig, preset) -> ResolvedTrain:
    """params.train for one run: the preset's value for every `None`, the precision this
    machine can train in (bf16 and fp16 fall back to fp32, with a log line), and
    CHECKPOINT_TOKENIZER for a student that brings its own tokenizer."""
    values = {}
    for f in dataclasses.fields(ResolvedTrain):
        v = getattr(train_cfg, f.name)
        values[f.name] = getattr(preset, f.name, None) if v is None else v  # model_path: no preset value
    if not preset.from_config:
        values["tokenizer"] = CHECKPOINT_TOKENIZER
    cuda = torch.cuda.is_available()
    if values["precision"] == "bf16" and not (cuda and torch.cuda.is_bf16_supported()):
        log.warning(
            "train.precision: bf16 is not supported on %s; training in fp32",
            torch.cuda.get_device_name() if cuda else "this CPU-only machine",
        )
        values["precision"] = "fp32"
    if values["precision"] == "fp16" and not cuda:
        log.warning("train.precision: fp16 needs a GPU; training in fp32 on this CPU-only machine")
        values["precision"] = "fp32"
    return ResolvedTrain(**values)


def run_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_damage(folder: Path) -> str | None:
    """What is wrong with a checkpoint folder's weight and state files, or None when each
    one is whole: every safetensors header parses and its tensors fit in the file, every
    torch .pt/.pth file is a complete zip (a file cut short has lost its directory), every
    .json file (trainer_state.json, the loss sums) parses."""
    import zipfile

    from safetensors import safe_open

    for path in sorted(folder.iterdir()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as fh:
                    fh.keys()
            elif path.suffix in (".pt", ".pth") and not zipfile.is_zipfile(path):
                return f"{path.name} is not a complete torch file"
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            return f"{path.name}: {' '.join(str(exc).split())[:200]}"
    return None


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest checkpoint-N folder that was written to the end and is whole. A kill -9
    during a save leaves a folder without trainer_state.json, which the Trainer writes
    last; a file damaged afterwards (a full disk, a bad copy) is found by reading the
    headers, and the next older checkpoint is taken, with a warning that names the file."""
    done = sorted(
        (
            p
            for p in Path(checkpoint_dir).glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
        ),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for folder in done:
        damage = checkpoint_damage(folder)
        if damage is None:
            return str(folder)
        log.warning("%s is damaged (%s): not resuming from it", folder, damage)
    return None


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
    arch,
    callbacks: list | None = None,
    tasks: Sequence = ONE_TASK,
    weights: Sequence[float] = (1.0,),
) -> tuple[dict, list[dict]]:
    """Train to cfg.max_steps (resuming from checkpoint_dir if it holds one); returns the
    run's metrics and the Trainer's log history. `arch`: the student's architecture
    (architectures.Architecture); `tasks` and `weights`: its variant's (variants.Variant),
    the examples being (question, the target of each task)."""
    from transformers import Seq2SeqTrainingArguments

    from .trainer import MultitaskTrainer, ResumableTrainer, check_finite

    if not train_pairs:
        raise DataError("no training examples: the filter kept nothing (see metrics/filter.json)")
    data = training_data(tokenizer, model, train_pairs, val_pairs, cfg, arch, tasks, weights)
    train_ds, val_ds = data.train, data.validation
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
        remove_unused_columns=data.remove_unused_columns,
        label_names=["labels"],
        prediction_loss_only=True,  # validation needs the loss only, not every logit (a 150k vocabulary)
    )
    trainer_class, multitask = ResumableTrainer, {}
    if data.weights is not None:  # several tasks: the weighted sum of their losses
        trainer_class, multitask = MultitaskTrainer, {"weights": data.weights, "align": arch.align}
    trainer = trainer_class(
        **multitask,
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=data.collator,
        processing_class=tokenizer,
        callbacks=callbacks or [],
    )
    last = last_complete_checkpoint(checkpoint_dir)
    result = trainer.train(resume_from_checkpoint=last)
    # The mean loss of every step (transformers' own training_loss covers the resumed steps only).
    train_loss = trainer._total_loss_scalar / max(trainer.state.global_step, 1)
    check_finite({"loss": float(train_loss)}, int(trainer.state.global_step), cfg.learning_rate)
    metrics = {
        "train_loss": round(float(train_loss), 5),
        "steps": int(trainer.state.global_step),
        "epochs": round(float(trainer.state.epoch or 0.0), 3),
        "train_examples": len(train_pairs),
        "resumed_from_step": int(Path(last).name.split("-")[-1]) if last else 0,
        "train_runtime_s": round(float(result.metrics.get("train_runtime", math.nan)), 2),
    }
    if val_ds is not None:
        # The evaluation at the last step when the schedule ran one (eval_steps divides
        # max_steps); evaluating again would log a second eval_loss row for that step.
        at_end = [
            h for h in trainer.state.log_history if "eval_loss" in h and h.get("step") == trainer.state.global_step
        ]
        ev = at_end[-1] if at_end else trainer.evaluate()
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
