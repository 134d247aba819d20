"""evaluate: decode the test splits with one trained student and score its answers."""

from pathlib import Path

from cotdistill import stage, tracking
from cotdistill.config import load_params, to_dict
from cotdistill.io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl

TEST_SPLITS = {"test": "id", "test_ood": "ood"}  # file stem -> metric prefix


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--model", required=True, help="trained model folder")
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--out", required=True, help="folder for predictions.jsonl")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    cfg = params.evaluate
    stage.log_config("evaluate", {"variant": args.variant, **to_dict(cfg)})
    splits = {}
    for stem in TEST_SPLITS:
        path = Path(args.prepared) / f"{stem}.jsonl"
        rows = read_jsonl(path) if path.exists() else []
        if rows:
            splits[stem] = rows[: cfg.max_examples] if cfg.max_examples else rows
    run = read_json(Path(args.model) / "run.json")

    from transformers import AutoTokenizer

    from cotdistill.evaluation import decode, score
    from cotdistill.students.model import load_trained

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = load_trained(args.model)  # a full model or LoRA adapters, on the GPU if there is one

    metrics = {"variant": args.variant}
    with atomic_dir(args.out) as tmp:
        all_preds = []
        for stem, rows in splits.items():
            outputs = decode(model, tokenizer, [r["question"] for r in rows], cfg.batch_size,
                             cfg.max_new_tokens, cfg.num_beams, run["resolved_train"]["max_source_length"])
            preds, m = score(rows, outputs, cfg.extraction)
            all_preds += [{"split": stem, **p} for p in preds]
            metrics[TEST_SPLITS[stem]] = m
        write_jsonl(tmp / "predictions.jsonl", all_preds)
    write_json(args.metrics, metrics)

    flat = {f"{prefix}/{k}": v for prefix in TEST_SPLITS.values() if prefix in metrics
            for k, v in metrics[prefix].items()}
    tracking.log_metrics(run["mlflow_run_id"], flat)
    # Params are immutable in MLflow; the evaluation settings may change per rerun.
    tracking.set_tags(run["mlflow_run_id"], {f"evaluate.{k}": v for k, v in to_dict(cfg).items()})


if __name__ == "__main__":
    stage.run(main)
