"""report: the paper-style table of every variant's accuracy, as Markdown."""

from pathlib import Path

from cotdistill import stage
from cotdistill.config import load_params
from cotdistill.io import read_json, write_text
from cotdistill.reporting import render_report


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--evaluations", nargs="+", required=True,
                    help="metrics/evaluate/<variant>.json files, or a folder of them (train.variants in order)")
    ap.add_argument("--filter-metrics", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    files = []
    for p in map(Path, args.evaluations):
        # A folder may hold evaluations of variants no longer in params: take the current ones.
        files += [p / f"{v}.json" for v in params.train.variants] if p.is_dir() else [p]
    evaluations = [read_json(p) for p in files]
    write_text(args.out, render_report(params, evaluations, read_json(args.filter_metrics)))


if __name__ == "__main__":
    stage.run(main)
