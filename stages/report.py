"""report: the paper-style table of every variant's accuracy, as Markdown, plus the data
of the `dvc plots` accuracy chart."""

from pathlib import Path

import _checkout  # noqa: F401

from cotdistill.core import stage
from cotdistill.core.config import load_params
from cotdistill.core.errors import DataError
from cotdistill.core.io import read_json, write_csv, write_text
from cotdistill.report.reporting import ACCURACY_FIELDS, accuracy_table, load_predictions, render_report


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument(
        "--evaluations",
        nargs="+",
        required=True,
        help="metrics/evaluate/<variant>.json files, or a folder of them (train.variants in order)",
    )
    ap.add_argument("--eval-root", default=None, help="folder with <variant>/predictions.jsonl, for the paired tests")
    ap.add_argument("--filter-metrics", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot-data", default=None, help="CSV of accuracy by variant (dvc plots)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    files = []
    for p in map(Path, args.evaluations):
        # A folder may hold evaluations of variants no longer in params: take the current ones.
        files += [p / f"{v}.json" for v in params.train.variants] if p.is_dir() else [p]
    evaluations = [read_json(p) for p in files]
    for path, e in zip(files, evaluations):
        if "variant" not in e:
            raise DataError(f"{path}: not an evaluation file (no 'variant' key)")
    predictions = load_predictions(args.eval_root, [e["variant"] for e in evaluations]) if args.eval_root else None
    write_text(args.out, render_report(params, evaluations, read_json(args.filter_metrics), predictions))
    if args.plot_data:
        write_csv(args.plot_data, accuracy_table(evaluations), ACCURACY_FIELDS)


if __name__ == "__main__":
    stage.run(main)
