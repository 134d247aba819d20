"""filter: keep teacher CoTs whose extracted answer equals the gold answer, and write the
training targets of every variant in train.variants to <out>/<variant>/{train,validation}.jsonl
(and a variant's settings, such as the multitask loss weight, to <out>/<variant>/tasks.json).
The gold variant's rationales are given the quality filter.gold_noise,
filter.gold_coverage and filter.gold_questions ask for (filter/rationale_quality.py).

A filter that keeps no CoT for a variant built from them (cot, multitask) fails here (after
writing its metrics, with the drops by reason), not later in train@cot."""

from pathlib import Path

import _checkout  # noqa: F401

from cotdistill.core import stage
from cotdistill.core.config import load_params, to_dict
from cotdistill.core.io import atomic_dir, read_jsonl, write_json, write_jsonl
from cotdistill.core.splits import TEACHER_SPLITS
from cotdistill.filter.filtering import add_missing_cot, filter_generations, require_kept
from cotdistill.filter.rationale_quality import degrade
from cotdistill.filter.steps import STEP_CHECKERS
from cotdistill.train.variants import GOLD, SETTINGS_FILE, VARIANTS


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--prepared", required=True, help="folder with train.jsonl and validation.jsonl")
    ap.add_argument("--generations", required=True)
    ap.add_argument("--out", required=True, help="output folder: <variant>/train.jsonl, <variant>/validation.jsonl")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    cfg = params.filter
    stage.log_config("filter", {**to_dict(cfg), "variants": params.train.variants})
    # Where a checker exists it always audits the kept CoTs; verify_steps makes it drop them.
    checker = STEP_CHECKERS.get(params.dataset) if params.dataset in STEP_CHECKERS else None
    generations = read_jsonl(args.generations)
    variants = [VARIANTS.get(v) for v in params.train.variants]
    metrics, rows = {}, {}
    for split in TEACHER_SPLITS:
        records = read_jsonl(Path(args.prepared) / f"{split}.jsonl")
        ids = {r["id"] for r in records}
        gens = [g for g in generations if g["id"] in ids]
        kept, metrics[split] = filter_generations(
            records, gens, cfg.extraction, cfg.max_per_question, cfg.verify_equations, checker, cfg.verify_steps
        )
        teacher_kept = {k["id"] for k in kept} if cfg.gold_questions == "teacher_kept" else None
        if cfg.missing_cot == "answer":
            kept = add_missing_cot(records, kept)
        # questions trained on the answer alone for want of a kept CoT
        metrics[split]["fallbacks"] = sum(bool(k.get("fallback")) for k in kept)
        rows[split] = {v.name: v.rows(records, kept) for v in variants}
        if GOLD in rows[split]:
            rows[split][GOLD], metrics[split]["gold"] = degrade(
                rows[split][GOLD],
                params.dataset,
                cfg.gold_noise,
                cfg.gold_coverage,
                params.seed,
                teacher_kept,
                cfg.missing_cot,
            )
    write_json(args.metrics, {**metrics["train"], "validation": metrics["validation"]})
    if any(v.from_teacher for v in variants):
        require_kept(metrics["train"])
    with atomic_dir(args.out) as tmp:
        for split, by_variant in rows.items():
            for variant, targets in by_variant.items():
                write_jsonl(tmp / variant / f"{split}.jsonl", targets)
        for v in variants:
            settings = v.settings(params.train)
            if settings:
                write_json(tmp / v.name / SETTINGS_FILE, settings)


if __name__ == "__main__":
    stage.run(main)
