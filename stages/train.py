"""train: finetune one student variant (answer-only baseline, or CoT) and log it to MLflow."""

import shutil
import time
from pathlib import Path

from cotdistill import stage, tracking
from cotdistill.config import flatten, load_params, to_dict
from cotdistill.io import atomic_dir, read_jsonl, write_json, write_text
from cotdistill.paths import shared_path
from cotdistill.students.presets import STUDENTS
from cotdistill.students.training import VARIANTS, pairs_for_variant, resolve, run_key


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--prepared", required=True, help="folder with train.jsonl, validation.jsonl")
    ap.add_argument("--filtered", required=True, help="folder with the filtered CoTs")
    ap.add_argument("--out", required=True, help="model folder")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--curve", required=True, help="CSV of the training curve (dvc plots)")
    ap.add_argument("--checkpoints", default=".cache/checkpoints", help="resumable checkpoints (repo root)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    preset = STUDENTS.get(params.model)
    cfg = resolve(params.train, preset)
    stage.log_config("train", {"variant": args.variant, "model": params.model, **to_dict(cfg)})

    prepared = Path(args.prepared)
    train_rows = read_jsonl(prepared / "train.jsonl")
    filtered_train = read_jsonl(Path(args.filtered) / "train.jsonl")
    filtered_val = read_jsonl(Path(args.filtered) / "validation.jsonl")
    val_rows = read_jsonl(prepared / "validation.jsonl")
    train_pairs = pairs_for_variant(args.variant, train_rows, filtered_train)
    val_pairs = pairs_for_variant(args.variant, val_rows, filtered_val)

    # Heavy imports only after the inputs are known to be good.
    from cotdistill.students.model import load_student
    from cotdistill.students.training import train

    # One tokenizer for both variants: trained on all text either of them sees.
    texts = [r["question"] for r in train_rows] + [r["answer"] for r in train_rows] + [r["target"] for r in filtered_train]
    model, tokenizer = load_student(preset, texts, params.seed)

    key = run_key({"variant": args.variant, "model": params.model, "seed": params.seed, "train": to_dict(cfg),
                   "data": train_pairs, "val": val_pairs})
    checkpoint_dir = shared_path(args.checkpoints) / key
    run_params = {"variant": args.variant, **flatten(to_dict(params))}
    run_params.update({f"train_resolved.{k}": v for k, v in to_dict(cfg).items()})
    run_id = tracking.start_run(
        args.variant, run_params,
        {"dataset": params.dataset, "teacher": params.teacher, "student": params.model},
    )
    start = time.perf_counter()
    try:
        metrics, history = train(model, tokenizer, train_pairs, val_pairs, cfg, checkpoint_dir, params.seed,
                                 callbacks=[tracking.loss_callback(run_id)])
    except BaseException:
        tracking.end_run(run_id, "FAILED")
        raise
    metrics["wall_s"] = round(time.perf_counter() - start, 2)
    metrics["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    tracking.log_metrics(run_id, {f"train/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})

    with atomic_dir(args.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "run.json", {"mlflow_run_id": run_id, "variant": args.variant, "model": params.model,
                                      "resolved_train": to_dict(cfg), "metrics": metrics})
    rows = [h for h in history if "loss" in h or "eval_loss" in h]
    lines = ["step,loss,eval_loss,learning_rate"]
    lines += [f"{h['step']},{h.get('loss', '')},{h.get('eval_loss', '')},{h.get('learning_rate', '')}" for h in rows]
    write_text(args.curve, "\n".join(lines) + "\n")
    write_json(args.metrics, metrics)
    tracking.end_run(run_id)
    # The run succeeded: its checkpoints are no longer needed to resume it.
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


if __name__ == "__main__":
    stage.run(main)
