"""From training examples to batches: one task or several (multitask), for any student
architecture (architectures.py gives its `encode`, its one-task collator and how its logits
line up with its labels).

- One task: the architecture's rows (T5: `question -> target`; causal: prompt + completion
  + EOS in one sequence, labels -100 on the prompt, causal.py) and its collator.
- Several tasks (the multitask variant, variants.py): each row holds one question's example
  of every task, and the collator puts them all in the batch (so a batch of n questions has
  n label and n rationale sequences). MultitaskTrainer's loss is then the weighted sum of
  each task's mean token loss.

Batches are padded on the right to their longest row (the Trainer groups rows of similar
length, see training.py); padding is masked by position, never by token id, so a pad
token that is also the EOS token (causal.py) still leaves every completion's EOS a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

IGNORE = -100  # label of a position the loss skips (prompt, padding)


def seq2seq_encode(tokenizer, sources: list[str], targets: list[str], max_source: int, max_target: int) -> list[dict]:
    src = tokenizer(sources, max_length=max_source, truncation=True)["input_ids"]
    tgt = tokenizer(text_target=[str(t) for t in targets], max_length=max_target, truncation=True)["input_ids"]
    return [{"input_ids": s, "labels": t} for s, t in zip(src, tgt)]


def pad_rows(rows: Sequence[dict], pad_id: int) -> dict:
    """input_ids (padded with pad_id), attention_mask and labels (padded with -100), right-padded."""
    import torch

    n, width, label_width = len(rows), max(len(r["input_ids"]) for r in rows), max(len(r["labels"]) for r in rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, label_width), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        attention[i, : len(r["input_ids"])] = 1
        labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


@dataclass(frozen=True)
class PadCollator:
    """One-task batches of `input_ids` / `labels` rows (other columns are left out)."""

    pad_id: int

    def __call__(self, features: list[dict]) -> dict:
        return pad_rows(features, self.pad_id)


@dataclass(frozen=True)
class MultitaskCollator:
    """Every task of every question in the batch: the first task's rows, then each other
    task's, with a `task` column (the task's index) that MultitaskTrainer's loss reads."""

    pad_id: int
    others: tuple[str, ...]  # the names of the tasks after the first (their columns' prefix)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        rows, task = list(features), [0] * len(features)
        for i, name in enumerate(self.others, start=1):
            rows += [{"input_ids": f[f"{name}_input_ids"], "labels": f[f"{name}_labels"]} for f in features]
            task += [i] * len(features)
        batch = pad_rows(rows, self.pad_id)
        batch["task"] = torch.tensor(task)
        return batch


def task_losses(logits, labels, task, n_tasks: int, align: Callable) -> list:
    """The mean token loss of each task in a multitask batch; `align(logits, labels)` lines
    each logit up with the label it predicts (the architecture's)."""
    import torch.nn.functional as F

    logits, labels = align(logits, labels)
    per_token = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    counted = labels != IGNORE
    out = []
    for t in range(n_tasks):
        mask = counted & (task == t)[:, None]
        out.append((per_token * mask).sum() / mask.sum().clamp(min=1))
    return out


def weighted_loss(logits, labels, task, weights: Sequence[float], align: Callable):
    """sum of weight * mean token loss over the tasks: alpha * label + (1 - alpha) *
    rationale for the multitask variant (Hsieh et al., 2023)."""
    losses = task_losses(logits, labels, task, len(weights), align)
    return sum(w * loss for w, loss in zip(weights, losses))


@dataclass(frozen=True)
class TrainingData:
    train: Any  # datasets.Dataset, with a `length` column for length-grouped batches
    validation: Any
    collator: Callable[[list[dict]], dict]
    remove_unused_columns: bool  # the Trainer drops columns the model does not take (DataCollatorForSeq2Seq)
    weights: tuple[float, ...] | None  # several tasks: each one's loss weight (MultitaskTrainer)


def _dataset(rows: list[dict]):
    from datasets import Dataset

    for r in rows:
        r["length"] = sum(len(v) for k, v in r.items() if k.endswith("input_ids") or k.endswith("labels"))
    return Dataset.from_list(rows)


def training_data(
    tokenizer,
    model,
    train_examples: list[tuple],
    val_examples: list[tuple],
    cfg,
    arch,
    tasks: Sequence,
    weights: Sequence[float],
) -> TrainingData:
    """The datasets and collator of (question, target of each task) examples for a student
    of architecture `arch` (architectures.Architecture); `tasks` and `weights` are the
    variant's (variants.Variant)."""

    def encode(task_index: int, examples: list[tuple]) -> list[dict]:
        task = tasks[task_index]
        return arch.encode(
            tokenizer,
            [task.source(e[0]) for e in examples],
            [e[task_index + 1] for e in examples],
            cfg.max_source_length,
            cfg.max_target_length,
        )

    def build(examples):
        rows = encode(0, examples)
        for i, task in enumerate(tasks[1:], start=1):
            for row, other in zip(rows, encode(i, examples)):
                row.update({f"{task.name}_input_ids": other["input_ids"], f"{task.name}_labels": other["labels"]})
        return _dataset(rows)

    train, validation = build(train_examples), build(val_examples) if val_examples else None
    if len(tasks) == 1:
        collator, remove_unused_columns = arch.collator(tokenizer, model)
        return TrainingData(train, validation, collator, remove_unused_columns, None)
    return TrainingData(
        train,
        validation,
        MultitaskCollator(tokenizer.pad_token_id, tuple(t.name for t in tasks[1:])),
        False,
        tuple(weights),
    )
