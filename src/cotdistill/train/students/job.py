"""One student's training run, end to end: build or load the model, train it inside its
MLflow run, save it.

The train stage reads the inputs and writes the metrics; this module does everything in
between. Under `accelerate launch` every rank runs it and trains its replica; only rank 0
logs to MLflow and writes the model folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cotdistill.core import machine, memory, model_folder, quantization, tracking
from cotdistill.core.config import Params, flatten, to_dict
from cotdistill.core.io import atomic_dir, write_json, write_text
from cotdistill.core.paths import shared_path

from ..variants import SETTING_KEYS, VARIANTS
from .architectures import ARCHITECTURES
from .tokenizer import describe_tokenizer, tokenizer_corpus
from .training import CHECKPOINT_TOKENIZER, ResolvedTrain, run_key, train

log = logging.getLogger(__name__)
RUN_ID_FILE = "mlflow_run_id"  # in the checkpoint folder: a resumed run logs to the same run
CURVE_FIELDS = ("step", "loss", "eval_loss", "learning_rate")  # the training curve (dvc plots)
# How this run went, not what it made: they go to the timings file and MLflow, never into
# the metrics or the model folder (outcomes), which the same inputs make byte for byte.
TIMING_KEYS = ("wall_s", "train_runtime_s", "resumed_from_step")


@dataclass(frozen=True)
class Job:
    variant: str
    params: Params
    preset: object  # catalog.students.StudentPreset
    cfg: ResolvedTrain
    rank: int  # 0: the process that logs and saves
    threads: int  # torch CPU threads in use (recorded: float results depend on it)
    inputs: tuple = ()  # tracking.DataInput: the data the run trains on (MLflow dataset inputs)
    settings: dict = field(default_factory=dict)  # the variant's, from its data folder (Variant.read_settings)


def train_student(
    job: Job,
    train_rows: list[dict],
    train_pairs: list[tuple[str, ...]],
    val_pairs: list[tuple[str, ...]],
    checkpoints: Path,
    out: Path,
    on_saved: Callable[[dict, list[dict], dict], None] | None = None,
) -> tuple[dict, list[dict], dict] | None:
    """Train `job` on its variant's examples, (question, the target of each task), and save
    the student to `out`; returns its metrics, training curve and timings (rank 0; None on
    the other ranks).

    `train_rows` (the prepared train split) train a from-config student's tokenizer.
    Checkpoints go to checkpoints/<run key>/, so that a killed run resumes from its last
    one. `on_saved(metrics, curve, timings)` writes the stage's other outputs; only once it has
    returned does the MLflow run end and are the checkpoints removed, so that a failure
    anywhere before leaves a run that the rerun resumes (not a finished run and a new one).
    """
    import torch

    params, preset, cfg = job.params, job.preset, job.cfg
    arch = ARCHITECTURES.get(preset.architecture)
    variant = VARIANTS.get(job.variant)
    # the float signature too: a checkpoint made with other threads or float code paths must
    # not be resumed into this run, whose weights would then depend on that history
    key = run_key(
        {
            "variant": job.variant,
            "model": params.model,
            "seed": params.seed,
            "threads": params.threads,
            "floats": machine.float_key(machine.signature(job.threads)),
            "train": to_dict(cfg),
            "data": train_pairs,
            "val": val_pairs,
            **job.settings,
        }
    )
    checkpoint_dir = checkpoints / key
    # Full finetuning keeps fp32 weights under bf16 autocast (the Trainer's mixed precision);
    # a frozen LoRA base is loaded in bf16 to halve its memory.
    dtype = torch.bfloat16 if (cfg.precision == "bf16" and cfg.lora) else None
    # Each rank writes its own copy of a from-config base (identical: same seed), so that
    # processes never write the same files at once.
    base_dir = None
    if cfg.lora and preset.offline:
        base_dir = checkpoint_dir / ("base" if job.rank == 0 else f"base-rank{job.rank}")
    # Before loading: a run that cannot fit, or that would crawl on a CPU with the preset's
    # bitsandbytes settings, stops in one line (the check stage's own checks, in case this
    # stage runs alone). Under a launcher of several processes, its sharding decides the
    # memory per GPU.
    subject = f"model {preset.name}"
    memory.check_cpu_bitsandbytes(subject, preset, params.train)
    if cfg.model_path:  # a folder of the other family would load into the wrong model class
        model_folder.check_folder(subject, preset, cfg.model_path)
    if params.train.memory_check and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        note = memory.check_fits(subject, preset, cfg)
        if note:
            log.warning(note)
    quantization.quiet_bitsandbytes(bool(memory.bitsandbytes_settings(cfg.quantization, cfg.optimizer)))
    model, tokenizer = arch.load_student(
        preset,
        tokenizer_corpus(train_rows),
        params.seed,
        cfg.quantization,
        dtype,
        base_dir,
        cfg.tokenizer,
        cfg.model_path,
    )
    if cfg.tokenizer == CHECKPOINT_TOKENIZER:  # run.json and MLflow name the tokenizer it brought
        cfg = dataclasses.replace(cfg, tokenizer=f"{CHECKPOINT_TOKENIZER}: {describe_tokenizer(tokenizer)}")
        job = dataclasses.replace(job, cfg=cfg)
        log.info("tokenizer: %s", cfg.tokenizer)
    if cfg.lora:
        model = arch.apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.gradient_checkpointing)

    main_process = job.rank == 0
    run_id, monitor, callbacks = None, None, []
    if main_process:
        tracking.close_orphans()  # runs left RUNNING by a killed train stage, this one's or another's
        run_id = _open_run(checkpoint_dir, job)
        monitor = tracking.system_metrics(run_id) if params.train.system_metrics else None
        callbacks = [tracking.loss_callback(run_id)]
    start = time.perf_counter()
    try:
        metrics, history = train(
            model,
            tokenizer,
            train_pairs,
            val_pairs,
            cfg,
            checkpoint_dir,
            params.seed,
            arch,
            callbacks,
            variant.tasks,
            variant.weights(job.settings),
        )
        if not main_process:
            return None
        if monitor:
            tracking.stop_system_metrics(monitor)
            monitor = None
        timings = {k: metrics.pop(k) for k in TIMING_KEYS if k in metrics}
        timings["wall_s"] = round(time.perf_counter() - start, 2)
        metrics["machine"] = machine.signature(job.threads)
        _save(job, model, tokenizer, metrics, key, run_id, base_dir, dtype, out)
        curve = [{k: h[k] for k in CURVE_FIELDS if k in h} for h in history if "loss" in h or "eval_loss" in h]
        if on_saved:
            on_saved(metrics, curve, timings)
        # Last, so that a rerun after a failure above does not log the summary twice.
        tracking.log_metrics(
            run_id, {f"train/{k}": v for k, v in {**metrics, **timings}.items() if isinstance(v, (int, float))}
        )
    except BaseException as exc:
        if main_process:
            if monitor:
                tracking.stop_system_metrics(monitor)
            # Ctrl-C (or SIGTERM, see stage.run) stops a run that can resume: KILLED, as
            # MLflow names a run stopped from outside; the checkpoints stay for the rerun.
            tracking.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    # Every output is written: the run is over, and its checkpoints are no longer needed.
    tracking.end_run(run_id)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return metrics, curve, timings


def _save(
    job: Job, model, tokenizer, metrics: dict, key: str, run_id: str, base_dir: Path | None, dtype, out: Path
) -> None:
    """Write the model folder (atomically) and, with train.log_model, copy it into MLflow.

    The folder is an outcome: run.json names the run by its key (what determines it), not
    by its MLflow run id, which differs on every rerun; evaluate finds the run by the key."""
    params, cfg, preset = job.params, job.cfg, job.preset
    arch = ARCHITECTURES.get(preset.architecture)
    with atomic_dir(out) as tmp:
        if "final_dir" in metrics:  # FSDP / DeepSpeed: the gathered full model
            shutil.copytree(metrics.pop("final_dir"), tmp, dirs_exist_ok=True)
            tokenizer.save_pretrained(tmp)
            metrics["saved_as"] = "full"
        else:
            base = str(base_dir) if base_dir else str(shared_path(cfg.model_path)) if cfg.model_path else preset.hub_id
            metrics["saved_as"] = arch.save_trained(model, tokenizer, tmp, cfg.lora_save, base, dtype)
        write_json(
            tmp / "run.json",
            {
                "run_key": key,
                "variant": job.variant,
                "model": params.model,
                "architecture": preset.architecture,
                **{k: job.settings.get(k) for k in SETTING_KEYS},
                "resolved_train": to_dict(cfg),
                # the processor is named in the stage's metrics: weights made
                # alike on two CPUs (machine.PORTABLE) make the same folder
                "metrics": {k: v for k, v in metrics.items() if k != "machine"},
            },
        )
    if params.train.log_model:
        tracking.log_folder(run_id, str(out))


def _open_run(checkpoint_dir: Path, job: Job) -> str:
    """The MLflow run of this training: the killed run's own when resuming, else a new one."""
    id_file = checkpoint_dir / RUN_ID_FILE
    if id_file.exists() and tracking.reopen_run(id_file.read_text().strip()):
        return id_file.read_text().strip()
    params = job.params
    run_params = {"variant": job.variant, **flatten(to_dict(params))}
    run_params.update({f"train_resolved.{k}": v for k, v in to_dict(job.cfg).items()})
    made_with = {k: str(v) for k, v in flatten({"machine": machine.signature(job.threads)}).items()}
    run_id = tracking.start_run(
        job.variant,
        run_params,
        {
            "dataset": params.dataset,
            "teacher": params.teacher,
            "student": params.model,
            tracking.MODEL_KEY_TAG: checkpoint_dir.name,
            **made_with,
        },
        datasets=job.inputs,
    )
    tracking.claim_run(run_id)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_text(id_file, run_id)
    return run_id
