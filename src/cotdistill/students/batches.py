"""From training examples to batches: one task or two (multitask), T5 or causal students.

- T5, one task: `question -> target` rows and transformers' DataCollatorForSeq2Seq.
- Causal, one task: one sequence per example, prompt + completion + EOS (causal.py's
  format); the labels are -100 on the prompt, so the loss covers the completion only.
- multitask (distilling step-by-step, multitask.py), either architecture: each row holds
  one question's label and rationale examples, and the collator puts both in the batch
  (so a batch of n questions has n label and n rationale sequences). The Trainer's loss is
  then `alpha * label + (1 - alpha) * rationale`, each the mean over its task's tokens.

Batches are padded on the right to their longest row (the Trainer groups rows of similar
length, see training.py); padding is masked by position, never by token id, so a pad
token that is also the EOS token (causal.py) still leaves every completion's EOS a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..multitask import LABEL, RATIONALE, task_source
from .causal import completion_text, prompt_text

IGNORE = -100  # label of a position the loss skips (prompt, padding)
TASK_IDS = {LABEL: 0, RATIONALE: 1}  # the multitask batch's `task` column


def seq2seq_encode(tokenizer, sources: list[str], targets: list[str], max_source: int, max_target: int) -> list[dict]:
    src = tokenizer(sources, max_length=max_source, truncation=True)["input_ids"]
    tgt = tokenizer(text_target=[str(t) for t in targets], max_length=max_target, truncation=True)["input_ids"]
    return [{"input_ids": s, "labels": t} for s, t in zip(src, tgt)]


def causal_encode(tokenizer, sources: list[str], targets: list[str], max_source: int, max_target: int) -> list[dict]:
    """prompt + completion + EOS per example; labels: -100 on the prompt, the ids elsewhere.

    Prompt and completion are tokenized apart, as decoding sees them (the prompt alone,
    then generated tokens). The prompt keeps its last max_source tokens (the tokenizer
    truncates on the left), the completion its first max_target - 1 and EOS.
    """
    prompts = tokenizer([prompt_text(s) for s in sources], max_length=max_source, truncation=True)["input_ids"]
    completions = tokenizer([completion_text(t) for t in targets], add_special_tokens=False)["input_ids"]
    rows = []
    for p, c in zip(prompts, completions):
        c = c[: max_target - 1] + [tokenizer.eos_token_id]
        rows.append({"input_ids": p + c, "labels": [IGNORE] * len(p) + c})
    return rows


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
    """Both tasks of every question in the batch: label rows first, then rationale rows,
    with a `task` column (TASK_IDS) that the multitask loss reads."""

    pad_id: int

    def __call__(self, features: list[dict]) -> dict:
        import torch

        rationale = [{"input_ids": f["rationale_input_ids"], "labels": f["rationale_labels"]} for f in features]
        batch = pad_rows(list(features) + rationale, self.pad_id)
        batch["task"] = torch.tensor([TASK_IDS[LABEL]] * len(features) + [TASK_IDS[RATIONALE]] * len(rationale))
        return batch


def task_losses(logits, labels, task, causal: bool):
    """The mean token loss of each task (label, rationale) in a multitask batch."""
    import torch.nn.functional as F

    if causal:  # position t predicts token t + 1
        logits, labels = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    counted = labels != IGNORE
    out = []
    for t in (TASK_IDS[LABEL], TASK_IDS[RATIONALE]):
        mask = counted & (task == t)[:, None]
        out.append((per_token * mask).sum() / mask.sum().clamp(min=1))
    return out


def multitask_loss(logits, labels, task, alpha: float, causal: bool):
    """alpha * label loss + (1 - alpha) * rationale loss (Hsieh et al., 2023)."""
    label, rationale = task_losses(logits, labels, task, causal)
    return alpha * label + (1 - alpha) * rationale


def multitask_trainer(base: type, alpha: float, causal: bool) -> type:
    """`base` (a Trainer class) with the multitask loss. Both tasks go through the model in
    one forward pass: under DDP a second forward before the backward would not work."""

    class MultitaskTrainer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it over accumulation

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            task = inputs.pop("task")
            outputs = model(**inputs)
            loss = multitask_loss(outputs.logits, inputs["labels"], task, alpha, causal)
            return (loss, outputs) if return_outputs else loss

    return MultitaskTrainer


@dataclass(frozen=True)
class TrainingData:
    train: Any  # datasets.Dataset, with a `length` column for length-grouped batches
    validation: Any
    collator: Callable[[list[dict]], dict]
    remove_unused_columns: bool  # the Trainer drops columns the model does not take (DataCollatorForSeq2Seq)
    trainer_class: Callable[[type], type]  # the Trainer class to use, given the base one


def tokenize_pairs(tokenizer, pairs: list[tuple[str, str]], max_source: int, max_target: int):
    """A T5 student's (source, target) pairs as a Dataset of token ids, with the lengths that
    group batches of similar length."""
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


def _dataset(rows: list[dict]):
    from datasets import Dataset

    for r in rows:
        r["length"] = sum(len(v) for k, v in r.items() if k.endswith("input_ids") or k.endswith("labels"))
    return Dataset.from_list(rows)


def training_data(tokenizer, model, train_examples: list[tuple], val_examples: list[tuple], cfg, causal: bool,
                  multitask_alpha: float | None = None) -> TrainingData:
    """The datasets, collator and Trainer class for (source, target) pairs, or for
    multitask (question, answer, rationale) examples when `multitask_alpha` is given."""
    if not causal and multitask_alpha is None:
        from transformers import DataCollatorForSeq2Seq

        def build(pairs):
            return tokenize_pairs(tokenizer, pairs, cfg.max_source_length, cfg.max_target_length)

        return TrainingData(build(train_examples), build(val_examples) if val_examples else None,
                            DataCollatorForSeq2Seq(tokenizer, model=model, padding=True), True, lambda base: base)

    encode = causal_encode if causal else seq2seq_encode

    def enc(sources, targets):
        return encode(tokenizer, list(sources), list(targets), cfg.max_source_length, cfg.max_target_length)

    def build(examples):
        if multitask_alpha is None:
            return _dataset(enc([s for s, _ in examples], [t for _, t in examples]))
        label = enc([task_source(LABEL, q) for q, _, _ in examples], [a for _, a, _ in examples])
        rationale = enc([task_source(RATIONALE, q) for q, _, _ in examples], [r for _, _, r in examples])
        return _dataset([{**lab, "rationale_input_ids": rat["input_ids"], "rationale_labels": rat["labels"]}
                         for lab, rat in zip(label, rationale)])

    pad_id = tokenizer.pad_token_id
    if multitask_alpha is None:
        return TrainingData(build(train_examples), build(val_examples) if val_examples else None,
                            PadCollator(pad_id), False, lambda base: base)
    return TrainingData(build(train_examples), build(val_examples) if val_examples else None,
                        MultitaskCollator(pad_id), False,
                        lambda base: multitask_trainer(base, multitask_alpha, causal))
