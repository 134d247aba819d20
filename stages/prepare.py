"""prepare: load the chosen dataset, split it, write data/prepared/<split>.jsonl.

Also writes data/prepared/report.json: the ids behind every contamination count and the
location of every malformed row counted in the metrics.
"""

import _checkout  # noqa: F401

from cotdistill.core import stage
from cotdistill.core.config import load_params, to_dict
from cotdistill.core.io import atomic_dir, write_json, write_jsonl
from cotdistill.core.splits import SPLITS
from cotdistill.generate.prompts import exemplar_questions, prompt_path
from cotdistill.prepare.datasets.prepare import prepare_dataset


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument(
        "--prompt", default=None, help="the dataset's prompt file, whose exemplars are checked (default: the package's)"
    )
    ap.add_argument("--out", required=True, help="output folder for the split files")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    stage.log_config("prepare", {"dataset": params.dataset, "seed": params.seed, **to_dict(params.prepare)})
    prompt = args.prompt or prompt_path(params.dataset)
    prepared = prepare_dataset(params, exemplar_questions(prompt))

    with atomic_dir(args.out) as tmp:
        for name in SPLITS:  # every split file exists (maybe empty): dvc.yaml lists them
            write_jsonl(tmp / f"{name}.jsonl", prepared.splits[name])
        write_json(tmp / "report.json", prepared.report)
    write_json(args.metrics, prepared.metrics)


if __name__ == "__main__":
    stage.run(main)
