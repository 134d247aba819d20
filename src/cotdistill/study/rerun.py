"""Rerun one declared study cell from a clean checkout and compare its predictions, question
by question, with the outcomes committed beside the page (`cotdistill study rerun-cell`).

The clone runs the cell as the study did: `dvc exp run` with the cell's own `-S` overrides
(run.queue_args), no DVC cache, the stages of the clone (each puts its own src/ first on
the path) with this environment's python and dvc. The repository's `.cache/` (the
teacher's request cache, downloaded packages) is shared as the queued cells shared it,
except the training checkpoints, which would resume the study's own run instead of
training anew.

A difference is a failure only where it cannot come from anything but the code being
non-reproducible: the cell's stages made their floats with the same signature as the
committed ones (machine.float_key) and the pipeline's code is the same as at the commit the
cell ran from. Anything else is reported plainly and not called a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.core.dvcexp import dvc_bin
from cotdistill.core.io import read_json, read_jsonl
from cotdistill.core.machine import float_key

from .committed import Table, machine_blocks, table_from_predictions
from .grid import Cell
from .run import queue_args

CODE = ("src", "stages", "dvc.yaml", "params.yaml")  # what a cell's outcomes are made by, besides its overrides
NOT_SHARED = ("checkpoints",)  # .cache entries a clean rerun must not see


@dataclass
class Count:
    key: tuple[str, str, str]  # (variant, split, decoding)
    identical: int
    different: list[str]  # ids whose correct or invalid flag changed
    only_committed: int
    only_new: int


@dataclass
class Rerun:
    cell: str
    commit: str  # the commit the cell ran from
    rerun_commit: str  # the commit the clone ran
    counts: list[Count]
    committed_machine: dict[str, dict]
    new_machine: dict[str, dict]
    code_changed: list[str] | None = field(default_factory=list)  # None: the cell's commit is not here

    @property
    def differs(self) -> bool:
        return any(c.different or c.only_committed or c.only_new for c in self.counts)

    @property
    def other_signature(self) -> list[str]:
        """Stages whose float signature differs (or is missing on one side)."""
        stages = sorted(set(self.committed_machine) | set(self.new_machine))
        return [
            s
            for s in stages
            if s not in self.committed_machine
            or s not in self.new_machine
            or float_key(self.committed_machine[s]) != float_key(self.new_machine[s])
        ]

    @property
    def failed(self) -> bool:
        return self.differs and bool(self.committed_machine) and not self.other_signature and self.code_changed == []


def _same(a: tuple, b: tuple) -> bool:
    """The same outcome: right or wrong alike, and invalid alike where both recorded it."""
    return a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1])


def compare(committed: Table, made: Table) -> list[Count]:
    """Per (variant, split, decoding): how many questions have the same outcome."""
    out = []
    for key in sorted(set(committed) | set(made)):
        a, b = committed.get(key, {}), made.get(key, {})
        both = sorted(set(a) & set(b))
        different = [i for i in both if not _same(a[i], b[i])]
        out.append(Count(key, len(both) - len(different), different, len(set(a) - set(b)), len(set(b) - set(a))))
    return out


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def code_changes(repo: Path, old: str, new: str) -> list[str] | None:
    """The pipeline files that differ between two commits; None when `old` is not here."""
    try:
        return _git(repo, "diff", "--name-only", old, new, "--", *CODE).split()
    except subprocess.CalledProcessError:
        return None


def _share_caches(root: Path, clone: Path) -> list[str]:
    """Link the repository's .cache entries into the clone, where a queued cell reached them
    through DVC_ROOT (DVC_ROOT itself would also share the checkpoints and the MLflow store)."""
    shared = []
    if (root / ".cache").is_dir():
        (clone / ".cache").mkdir(exist_ok=True)
        for entry in sorted((root / ".cache").iterdir()):
            if entry.name not in NOT_SHARED:
                (clone / ".cache" / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
                shared.append(entry.name)
    return shared


def made_by(clone: Path, cell: Cell) -> tuple[Table, dict[str, dict]]:
    """The clone's predictions and machine signatures of the cell's variants."""
    variants = cell.overrides["train.variants"]
    table = table_from_predictions({v: read_jsonl(clone / "data" / "eval" / v / "predictions.jsonl") for v in variants})
    paths = ["metrics/generate.json"] + [f"metrics/{s}/{v}.json" for v in variants for s in ("train", "evaluate")]
    metrics = {p: read_json(clone / p) for p in paths if (clone / p).exists()}
    return table, machine_blocks(metrics, variants)


def rerun_cell(
    root: Path, cell: Cell, record: dict, committed: Table, rev: str = "HEAD", workdir: Path | None = None, echo=print
) -> Rerun:
    """Clone `rev` of `root`, run the cell there, compare with its committed record and
    outcomes. The temporary clone is removed unless the run failed or `workdir` was given."""
    if cell.kind != "student":
        raise RuntimeError(
            f"{cell.name} is a lever cell: it trains no student, so it has no per-question predictions to compare"
        )
    commit = _git(root, "rev-parse", rev).strip()
    own = None if workdir else Path(tempfile.mkdtemp(prefix="cotdistill-rerun-"))
    base = Path(workdir or own)
    clone = base / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(root), str(clone)], check=True)
    _git(clone, "checkout", "-q", commit)
    shared = _share_caches(root, clone)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(clone / "src")
    log = base / "rerun.log"
    echo(
        f"rerun-cell: {cell.name} from {commit[:10]} in {clone} (shared from {root / '.cache'}: "
        f"{', '.join(shared) or 'nothing'}; log: {log})"
    )
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(
            [dvc_bin(), *queue_args(cell, queue=False)], cwd=clone, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    if proc.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(
            f"`dvc exp run` of {cell.name} failed in {clone} (exit {proc.returncode}; log {log}):\n" + "\n".join(tail)
        )
    table, machine = made_by(clone, cell)
    if own:
        shutil.rmtree(own, ignore_errors=True)
    return Rerun(
        cell.name,
        record["commit"],
        commit,
        compare(committed, table),
        record.get("machine", {}),
        machine,
        code_changes(root, record["commit"], commit),
    )


def _sig(sig: dict | None) -> str:
    if not sig:
        return "not recorded"
    key = float_key(sig)
    where = f" (cpu {sig['cpu']})" if "cpu" not in key else ""  # named, though it decides nothing here
    return ", ".join(f"{k}={v}" for k, v in key.items() if k != "env") + where


def report(r: Rerun, limit: int = 8) -> str:
    lines = [f"cell {r.cell}: ran from {r.commit[:10]}, rerun from {r.rerun_commit[:10]}"]
    if r.code_changed is None:
        lines.append(
            f"  the cell's commit {r.commit[:10]} is not in this repository: whether the code changed is unknown"
        )
    elif r.code_changed:
        lines.append(
            f"  the pipeline's code changed since the cell ran ({len(r.code_changed)} files: "
            + ", ".join(r.code_changed[:limit])
            + (", ..." if len(r.code_changed) > limit else "")
            + ")"
        )
    lines.append("| variant | split | decoding | identical | different | only committed | only rerun |")
    lines.append("|---|---|---|---|---|---|---|")
    for c in r.counts:
        lines.append(
            f"| {' | '.join(c.key)} | {c.identical} | {len(c.different)} | {c.only_committed} | {c.only_new} |"
        )
    for c in r.counts:
        if c.different:
            lines.append(
                f"  {'/'.join(c.key)} differs on: "
                + ", ".join(c.different[:limit])
                + (" ..." if len(c.different) > limit else "")
            )
    for stage in sorted(set(r.committed_machine) | set(r.new_machine)):
        old, new = r.committed_machine.get(stage), r.new_machine.get(stage)
        same = stage not in r.other_signature
        lines.append(
            f"  signature {stage}: "
            + (f"same float signature ({_sig(new)})" if same else f"committed {_sig(old)} / rerun {_sig(new)}")
        )
    if not r.committed_machine:
        lines.append("  the committed cell recorded no machine signature (it ran before signatures were recorded)")
    if not r.differs:
        verdict = "identical: every question has the committed outcome"
    elif r.failed:
        verdict = "FAILED: outcomes differ although the code and the float signature are the same"
    else:
        why = (
            "the committed cell has no signature"
            if not r.committed_machine
            else "made with another float signature (" + ", ".join(r.other_signature) + ")"
            if r.other_signature
            else "the code changed since the cell ran"
            if r.code_changed
            else "the cell's commit is unknown here"
        )
        verdict = f"outcomes differ, not a failure: {why}; the differences above are not comparable as a check"
    lines.append("rerun-cell: " + verdict)
    return "\n".join(lines)
