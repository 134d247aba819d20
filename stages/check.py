"""check: validate the whole params.yaml before any other stage runs, and fingerprint the
one input that DVC cannot see by itself: the file that prepare.local.path names.

dvc.yaml runs this stage on every `dvc repro` and `dvc exp run` (always_changed), and
prepare depends on its output: a mistake anywhere in params.yaml, even in a key that no
stage reads, stops the pipeline here with one line, and an edit to the local data file
reruns prepare.
"""

from cotdistill import stage
from cotdistill.config import load_params
from cotdistill.io import file_digest, write_json
from cotdistill.paths import shared_path


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--out", required=True, help="JSON fingerprint of the inputs outside the DAG")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    local = params.prepare.local.path if params.prepare.source == "local" else None
    # Only the file in use counts: an edit to a file that no stage reads reruns nothing.
    write_json(args.out, {"prepare.local.path": local,
                          "sha256": file_digest(shared_path(local), "prepare.local.path") if local else None})


if __name__ == "__main__":
    stage.run(main)
