"""evaluate: decode the test splits with one trained student and score its answers.

Number-answer datasets are decoded twice (unless evaluate.calculator is false): plainly
and with the external calculator (the paper's), and both are scored. A multitask student
is scored on its label task (what it answers at test time); its rationale task is decoded
and scored too, as a diagnostic (metrics["rationale"], rationale_predictions.jsonl).
"""

import time
from pathlib import Path

import _checkout  # noqa: F401

from cotdistill.core import machine, stage, tracking
from cotdistill.core.config import flatten, load_params, to_dict
from cotdistill.core.io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl
from cotdistill.core.splits import TEST_SPLITS
from cotdistill.evaluate.evaluation import tracked_metrics
from cotdistill.train.variants import VARIANTS, Task


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--model", required=True, help="trained model folder")
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--out", required=True, help="folder for predictions.jsonl")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--timings", help="how the run went: seconds (not an outcome)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    variant = VARIANTS.get(args.variant)
    cfg = params.evaluate
    stage.log_config("evaluate", {"variant": args.variant, **to_dict(cfg)})
    splits = {}
    for stem in TEST_SPLITS:
        path = Path(args.prepared) / f"{stem}.jsonl"
        rows = read_jsonl(path) if path.exists() else []
        if rows:
            splits[stem] = rows[: cfg.max_examples] if cfg.max_examples else rows
    from cotdistill.train.students.weights import check_model_folder

    check_model_folder(args.model)  # one line naming a missing or damaged file, not a traceback
    run = read_json(Path(args.model) / "run.json")
    answer_types = {r["answer_type"] for rows in splits.values() for r in rows}
    # params validation refused calculator: true on a dataset of other answers
    calculator = cfg.calculator is not False and answer_types == {"number"}

    from cotdistill.evaluate.evaluation import DecodeOptions, evaluate_splits
    from cotdistill.train.students.architectures import ARCHITECTURES

    threads = stage.set_threads(params.threads)
    arch = ARCHITECTURES.get(run.get("architecture", "t5"))  # T5 students saved before causal ones had none
    tokenizer = arch.load_tokenizer(args.model)
    model = arch.load_trained(args.model)  # a full model or LoRA adapters, on the GPU if there is one
    options = DecodeOptions(
        max_new_tokens=cfg.max_new_tokens,
        num_beams=cfg.num_beams,
        do_sample=cfg.do_sample,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=params.seed,
        max_source_length=cfg.max_source_length or run["resolved_train"]["max_source_length"],
    )

    def evaluate(task: Task):
        def source(q: str) -> str:  # a multitask student reads the task's prefix first
            return arch.source(task.source(q))

        return evaluate_splits(
            model,
            tokenizer,
            splits,
            options,
            cfg.batch_size,
            cfg.extraction,
            calculator,
            source=source,
            stop_strings=arch.stop_strings,
        )

    scored, *diagnostics = variant.tasks
    start = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        preds, split_metrics = evaluate(scored)
        write_jsonl(tmp / "predictions.jsonl", preds)
        for task in diagnostics:  # the multitask student's rationale task
            task_preds, split_metrics[task.name] = evaluate(task)
            write_jsonl(tmp / f"{task.name}_predictions.jsonl", task_preds)
    wall_s = round(time.perf_counter() - start, 2)
    metrics = {"variant": args.variant, "machine": machine.signature(threads), **split_metrics}
    write_json(args.metrics, metrics)
    stage.write_timings(args.timings, {"wall_s": wall_s})

    flat = tracked_metrics(metrics)
    run_id = _mlflow_run(run, args.variant, params)
    tracking.log_metrics(run_id, {**flat, "evaluate/wall_s": wall_s})
    tracking.log_to_group(run_id, args.variant, flat)  # the DVC experiment's parent run
    tracking.log_inputs(
        run_id,
        [
            tracking.DataInput(
                f"{params.dataset}/{stem}", str(Path(args.prepared) / f"{stem}.jsonl"), stem, {"rows": len(rows)}
            )
            for stem, rows in splits.items()
        ],
    )
    # Params are immutable in MLflow; the evaluation settings may change per rerun.
    tracking.set_tags(run_id, {f"evaluate.{k}": v for k, v in to_dict(cfg).items()})


def _mlflow_run(run: dict, variant: str, params) -> str:
    """The MLflow run that trained this model (found by its run key); a new run when the
    store has none, e.g. a model restored from DVC's cache into a fresh clone."""
    run_id = run.get("mlflow_run_id") or tracking.find_run(run["run_key"])  # the id: folders of older versions
    if run_id:
        return run_id
    import logging

    logging.getLogger("evaluate").warning(
        "no MLflow run trained model key %s in %s: logging this evaluation to a new run",
        run["run_key"],
        tracking.tracking_uri(),
    )
    run_id = tracking.start_run(
        variant,
        {"variant": variant, **flatten(to_dict(params))},
        {
            "dataset": params.dataset,
            "teacher": params.teacher,
            "student": params.model,
            tracking.MODEL_KEY_TAG: run["run_key"],
        },
    )
    tracking.end_run(run_id)
    return run_id


if __name__ == "__main__":
    stage.run(main)
