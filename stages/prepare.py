"""prepare: load the chosen dataset, split it, write data/prepared/<split>.jsonl."""

from cotdistill import stage
from cotdistill.config import load_params, to_dict
from cotdistill.datasets import DATASETS, SPLITS
from cotdistill.io import atomic_dir, write_json, write_jsonl


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--out", required=True, help="output folder for the split files")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    stage.log_config("prepare", {"dataset": params.dataset, "seed": params.seed, **to_dict(params.prepare)})
    splits = DATASETS.get(params.dataset).load(params)

    train_q = {r["question"] for r in splits["train"]}
    leaked = sorted(r["id"] for name in ("test", "test_ood") for r in splits.get(name, []) if r["question"] in train_q)
    if leaked:
        raise ValueError(f"prepare: {len(leaked)} test questions also appear in train, e.g. {leaked[:5]}")

    with atomic_dir(args.out) as tmp:
        for name in SPLITS:  # every split file exists (maybe empty): dvc.yaml lists them
            write_jsonl(tmp / f"{name}.jsonl", splits.get(name, []))
    write_json(args.metrics, {
        "dataset": params.dataset,
        **{f"n_{name}": len(rows) for name, rows in splits.items()},
        "test_questions_in_train": len(leaked),
    })


if __name__ == "__main__":
    stage.run(main)
