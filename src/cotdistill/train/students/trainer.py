"""The Trainer the students train with: transformers' Seq2SeqTrainer, made resumable
(a resumed run logs and learns what the uninterrupted run does), stopped on a non-finite
loss, and, for the multitask variant, with a loss that weighs each task (batches.py).

Imported only when a student trains: transformers is heavy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import Seq2SeqTrainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from cotdistill.core.errors import UserError

from .batches import weighted_loss

log = logging.getLogger(__name__)

# Saved in every checkpoint folder beside the Trainer's files: the loss sums at that step.
LOSS_STATE = "loss_state_rank{rank}.json"

# A checkpoint save that fails with less than this free on its disk failed for want of space:
# torch's zip writer says only "unexpected pos" or "iostream error", not ENOSPC.
NEARLY_FULL_BYTES = 16 * 2**20


class TrainingDiverged(UserError):
    """The loss (or the gradient norm) became NaN or infinite: no model is saved."""


def check_finite(logs: dict, step: int, learning_rate: float) -> None:
    """TrainingDiverged when a logged loss or gradient norm is not a finite number."""
    for key in ("loss", "eval_loss", "grad_norm"):
        value = logs.get(key)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            raise TrainingDiverged(
                f"train: the {key.replace('_', ' ')} became {value} at step {step} "
                f"(train.learning_rate = {learning_rate:g}): the student diverged, so no "
                "model is saved and nothing is evaluated; lower train.learning_rate"
            )


class EpochSeededSampler(LengthGroupedSampler):
    """transformers' group_by_length order, drawn from (seed, epoch) alone.

    transformers draws an epoch's order from the global torch RNG when the epoch
    starts; a run resumed in the middle of an epoch restores that RNG only after its
    first batch, so it would go on with other batches than the run it continues.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by the Trainer's dataloader each epoch
        self.epoch = epoch

    def __iter__(self):
        digest = hashlib.sha256(f"{self.seed}:{self.epoch}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class StopWhenNotFinite(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):  # before the step's checkpoint
        check_finite(logs or {}, state.global_step, args.learning_rate)


class RestoreLossState(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._restore_loss_state()  # after the Trainer zeroed its sums, before step one


class ResumableTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose resumed run logs what the uninterrupted run logs.

    transformers restarts its loss sums at a resume: the first loss logged after it
    averages only the steps since the resume, and train_loss only the resumed steps.
    Here the sums go into every checkpoint (LOSS_STATE) and come back with it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resumed_from: str | None = None
        self.add_callback(RestoreLossState(self))
        self.add_callback(StopWhenNotFinite())

    def _get_train_sampler(self, train_dataset=None):
        base = super()._get_train_sampler(train_dataset)  # the lengths, as transformers reads them
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededSampler(base.batch_size, base.lengths, seed)

    def train(self, resume_from_checkpoint=None, **kwargs):
        self._resumed_from = resume_from_checkpoint
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _save_checkpoint(self, model, trial):
        # Written before the Trainer's own files: trainer_state.json, written last, marks
        # a complete checkpoint (last_complete_checkpoint), so a complete one has this too.
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        state = {
            "total_loss": self._total_loss_scalar,
            "pending_loss": float(self._tr_loss.item()),
            "last_logged_step": self._globalstep_last_logged,
        }
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / LOSS_STATE.format(rank=self.args.process_index)).write_text(json.dumps(state))
            super()._save_checkpoint(model, trial)
        except Exception as exc:
            if shutil.disk_usage(folder.parent).free >= NEARLY_FULL_BYTES:
                raise
            # A full disk: the half-written folder goes (the rerun resumes from the one
            # before it), and the stage reports the folder in one line (stage.run).
            shutil.rmtree(folder, ignore_errors=True)
            raise OSError(errno.ENOSPC, "No space left on device", str(folder)) from exc

    def _restore_loss_state(self) -> None:
        if not self._resumed_from:
            return
        path = Path(self._resumed_from) / LOSS_STATE.format(rank=self.args.process_index)
        if not path.exists():
            log.warning(
                "%s: no loss sums in this checkpoint (written by an older version); the losses "
                "logged right after the resume and train_loss cover the resumed steps only",
                path.parent,
            )
            return
        state = json.loads(path.read_text())
        self._total_loss_scalar = state["total_loss"]
        self._tr_loss += state["pending_loss"]
        self._globalstep_last_logged = state["last_logged_step"]


class MultitaskTrainer(ResumableTrainer):
    """ResumableTrainer whose loss is the weighted sum of each task's mean token loss
    (batches.MultitaskCollator's `task` column). All tasks go through the model in one
    forward pass: under DDP a second forward before the backward would not work."""

    def __init__(self, *args, weights: Sequence[float], align: Callable, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights, self.align = tuple(weights), align
        self.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it over accumulation

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task = inputs.pop("task")
        outputs = model(**inputs)
        loss = weighted_loss(outputs.logits, inputs["labels"], task, self.weights, self.align)
        return (loss, outputs) if return_outputs else loss
