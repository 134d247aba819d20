"""train: finetune one student variant (answer-only baseline, CoT, gold rationales, or the
multitask label + rationale student) and log it to MLflow. Runs as `python stages/train.py`
or under `accelerate launch` (DDP, FSDP, DeepSpeed); with several processes only rank 0 writes
outputs and logs."""

import os
from pathlib import Path

import _checkout  # noqa: F401

from cotdistill.core import stage, tracking
from cotdistill.core.catalog.students import STUDENTS
from cotdistill.core.config import load_params, to_dict
from cotdistill.core.errors import DataError
from cotdistill.core.io import read_jsonl, write_csv, write_json
from cotdistill.core.paths import shared_path
from cotdistill.train.variants import VARIANTS


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--variant", required=True, choices=VARIANTS.names())
    ap.add_argument("--prepared", required=True, help="folder with train.jsonl (the tokenizer's text)")
    ap.add_argument("--data", required=True, help="the variant's targets: train.jsonl, validation.jsonl")
    ap.add_argument("--out", required=True, help="model folder")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--curve", required=True, help="CSV of the training curve (dvc plots)")
    ap.add_argument("--checkpoints", default=".cache/checkpoints", help="resumable checkpoints (repo root)")
    ap.add_argument("--timings", help="how the run went: seconds, resumed step (not an outcome)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    rank = int(os.environ.get("RANK", "0"))  # set by accelerate launch / torchrun
    train_rows = read_jsonl(Path(args.prepared) / "train.jsonl")
    data = Path(args.data)
    rows = {split: read_jsonl(data / f"{split}.jsonl") for split in ("train", "validation")}
    variant = VARIANTS.get(args.variant)
    # (question, the target of each of the variant's tasks)
    train_pairs, val_pairs = (variant.examples(rows[s]) for s in ("train", "validation"))
    if not train_pairs:
        raise DataError(
            f"{data / 'train.jsonl'}: no training examples for variant '{args.variant}' (see metrics/filter.json)"
        )

    # Heavy imports only after the inputs are known to be good.
    from cotdistill.train.students.job import CURVE_FIELDS, Job, train_student
    from cotdistill.train.students.training import resolve

    preset = STUDENTS.get(params.model)
    cfg = resolve(params.train, preset)
    if rank == 0:
        stage.log_config("train", {"variant": args.variant, "model": params.model, **to_dict(cfg)})
    # What MLflow names as the run's data: the variant's targets folder (its DVC md5 is in dvc.lock).
    inputs = (
        tracking.DataInput(
            f"{params.dataset}/{args.variant}",
            args.data,
            "train",
            {"train_rows": len(train_pairs), "validation_rows": len(val_pairs)},
        ),
    )
    job = Job(
        args.variant, params, preset, cfg, rank, stage.set_threads(params.threads), inputs, variant.read_settings(data)
    )

    def write_outputs(metrics: dict, curve: list[dict], timings: dict) -> None:
        write_csv(args.curve, curve, CURVE_FIELDS)
        write_json(args.metrics, metrics)
        stage.write_timings(args.timings, timings)

    train_student(
        job, train_rows, train_pairs, val_pairs, shared_path(args.checkpoints), Path(args.out), on_saved=write_outputs
    )  # rank 0 writes; other ranks return None


if __name__ == "__main__":
    stage.run(main)
