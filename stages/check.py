"""check: validate the whole params.yaml before any other stage runs, check that this
machine has what the stages to run need, and fingerprint the one input that DVC cannot
see by itself: the file that prepare.local.path names.

dvc.yaml runs this stage on every `dvc repro` and `dvc exp run` (always_changed), and
prepare depends on its output: a mistake anywhere in params.yaml, even in a key that no
stage reads, stops the pipeline here with one line; so does a Hub checkpoint or dataset
that is neither cached nor reachable, or a student whose training cannot fit the memory
(preflight.py), before DVC removes any stage's outputs. An edit to the local data file
reruns prepare.
"""

import logging
from pathlib import Path

import _checkout  # noqa: F401

from cotdistill.core import stage
from cotdistill.core.config import load_params, read_yaml
from cotdistill.core.io import file_digest, write_json
from cotdistill.core.paths import shared_path
from cotdistill.core.preflight import preflight, read_pipeline, stages_to_run


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--out", required=True, help="JSON fingerprint of the inputs outside the DAG")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    # Only what the stages that will run need: a stage whose params dvc.lock records
    # unchanged keeps its outputs (e.g. generations made where the teacher was).
    run = stages_to_run(read_yaml(args.params), *read_pipeline(Path(args.params).resolve().parent))
    for note in preflight(params, online=True, run=run):
        logging.getLogger("check").info(note)
    local = params.prepare.local.path if params.prepare.source == "local" else None
    # Only the file in use counts: an edit to a file that no stage reads reruns nothing.
    write_json(
        args.out,
        {
            "prepare.local.path": local,
            "sha256": file_digest(shared_path(local), "prepare.local.path") if local else None,
        },
    )


if __name__ == "__main__":
    stage.run(main)
