"""train: finetune one student variant (answer-only baseline, CoT, or gold rationales) and
log it to MLflow. Runs as `python stages/train.py` or under `accelerate launch` (DDP,
FSDP, DeepSpeed); with several processes only rank 0 writes outputs and logs."""

import os
import shutil
import time
from pathlib import Path

from cotdistill import stage, tracking
from cotdistill.config import flatten, load_params, to_dict
from cotdistill.io import atomic_dir, read_jsonl, write_json, write_text
from cotdistill.paths import shared_path
from cotdistill.students.presets import STUDENTS
from cotdistill.students.training import resolve, run_key
from cotdistill.targets import VARIANTS

RUN_ID_FILE = "mlflow_run_id"  # in the checkpoint folder: a resumed run logs to the same run


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--variant", required=True, choices=VARIANTS.names())
    ap.add_argument("--prepared", required=True, help="folder with train.jsonl (the tokenizer's text)")
    ap.add_argument("--data", required=True, help="the variant's targets: train.jsonl, validation.jsonl")
    ap.add_argument("--out", required=True, help="model folder")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--curve", required=True, help="CSV of the training curve (dvc plots)")
    ap.add_argument("--checkpoints", default=".cache/checkpoints", help="resumable checkpoints (repo root)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    preset = STUDENTS.get(params.model)
    cfg = resolve(params.train, preset)
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.log_config("train", {"variant": args.variant, "model": params.model, **to_dict(cfg)})

    train_rows = read_jsonl(Path(args.prepared) / "train.jsonl")
    data = Path(args.data)
    train_pairs = [(r["question"], r["target"]) for r in read_jsonl(data / "train.jsonl")]
    val_pairs = [(r["question"], r["target"]) for r in read_jsonl(data / "validation.jsonl")]
    if not train_pairs:
        raise ValueError(f"{data / 'train.jsonl'}: no training examples for variant '{args.variant}' "
                         "(see metrics/filter.json)")

    # Heavy imports only after the inputs are known to be good.
    import torch

    from cotdistill.students.model import apply_lora, load_student, save_trained, tokenizer_corpus
    from cotdistill.students.training import train

    key = run_key({"variant": args.variant, "model": params.model, "seed": params.seed, "threads": params.threads,
                   "train": to_dict(cfg),
                   "data": train_pairs, "val": val_pairs})
    checkpoint_dir = shared_path(args.checkpoints) / key
    threads = stage.set_threads(params.threads)
    # Full finetuning keeps fp32 weights under bf16 autocast (the Trainer's mixed precision);
    # a frozen LoRA base is loaded in bf16 to halve its memory.
    dtype = torch.bfloat16 if (cfg.precision == "bf16" and cfg.lora) else None
    # Each rank writes its own copy of a from-config base (identical: same seed), so that
    # processes never write the same files at once.
    rank = int(os.environ.get("RANK", "0"))
    base_dir = None
    if cfg.lora and preset.offline:
        base_dir = checkpoint_dir / ("base" if rank == 0 else f"base-rank{rank}")
    model, tokenizer = load_student(preset, tokenizer_corpus(train_rows), params.seed, cfg.quantization, dtype,
                                    base_dir, cfg.tokenizer)
    if cfg.lora:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.gradient_checkpointing)

    run_id, monitor, callbacks = None, None, []
    if main_process:
        run_id = _open_run(checkpoint_dir, args.variant, params, cfg)
        monitor = tracking.system_metrics(run_id) if params.train.system_metrics else None
        callbacks = [tracking.loss_callback(run_id)]
    start = time.perf_counter()
    try:
        metrics, history = train(model, tokenizer, train_pairs, val_pairs, cfg, checkpoint_dir, params.seed,
                                 callbacks=callbacks)
    except BaseException:
        if main_process:
            monitor and tracking.stop_system_metrics(monitor)
            tracking.end_run(run_id, "FAILED")
        raise
    if not main_process:
        return
    if monitor:
        tracking.stop_system_metrics(monitor)
    metrics["wall_s"] = round(time.perf_counter() - start, 2)
    metrics["torch_threads"] = threads
    tracking.log_metrics(run_id, {f"train/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})

    with atomic_dir(args.out) as tmp:
        base = str(base_dir) if base_dir else preset.hub_id
        if "final_dir" in metrics:  # FSDP / DeepSpeed: the gathered full model
            shutil.copytree(metrics.pop("final_dir"), tmp, dirs_exist_ok=True)
            tokenizer.save_pretrained(tmp)
            metrics["saved_as"] = "full"
        else:
            metrics["saved_as"] = save_trained(model, tokenizer, tmp, cfg.lora_save, base, dtype)
        write_json(tmp / "run.json", {"mlflow_run_id": run_id, "variant": args.variant, "model": params.model,
                                      "resolved_train": to_dict(cfg), "metrics": metrics})
    if params.train.log_model:
        tracking.log_folder(run_id, args.out)
    rows = [h for h in history if "loss" in h or "eval_loss" in h]
    lines = ["step,loss,eval_loss,learning_rate"]
    lines += [f"{h['step']},{h.get('loss', '')},{h.get('eval_loss', '')},{h.get('learning_rate', '')}" for h in rows]
    write_text(args.curve, "\n".join(lines) + "\n")
    write_json(args.metrics, metrics)
    tracking.end_run(run_id)
    # The run succeeded: its checkpoints are no longer needed to resume it.
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _open_run(checkpoint_dir: Path, variant: str, params, cfg) -> str:
    """The MLflow run of this training: the killed run's own when resuming, else a new one."""
    id_file = checkpoint_dir / RUN_ID_FILE
    if id_file.exists() and tracking.reopen_run(id_file.read_text().strip()):
        return id_file.read_text().strip()
    run_params = {"variant": variant, **flatten(to_dict(params))}
    run_params.update({f"train_resolved.{k}": v for k, v in to_dict(cfg).items()})
    run_id = tracking.start_run(variant, run_params,
                                {"dataset": params.dataset, "teacher": params.teacher, "student": params.model})
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_text(id_file, run_id)
    return run_id


if __name__ == "__main__":
    stage.run(main)
