"""Does the committed default run come out of the committed code? (`cotdistill verify`)

Clones a commit into a fresh folder, runs `dvc repro` there from nothing (no DVC cache,
no teacher cache: cold, as CI runs it), and compares every outcome it made with what the
commit holds: each stage's outputs by the hashes in dvc.lock, and the files kept in git
(metrics, the report) key by key. A difference fails, naming the file, the key and both
values, wherever the result was made with the same float signature (machine.float_key:
torch, threads, float code paths). A stage whose floats were made with another signature
(another torch, thread count, or another processor in native mode), and every stage
downstream of it, cannot be expected to match: those differences are listed apart, as
not comparable, and never counted as a pass. Outcomes that involve no floats (the
prepared data; the filter's targets when the teacher's generations match) are compared
on any machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .machine import float_key


@dataclass
class Finding:
    stage: str
    path: str
    key: str  # a JSON key path, a line number, or "md5" for a DVC-cached output
    committed: object
    made: object


@dataclass
class Comparison:
    identical: list[str] = field(default_factory=list)  # "stage: path"
    differ: list[Finding] = field(default_factory=list)  # the same float signature: a failure
    not_comparable: list[Finding] = field(default_factory=list)  # another float signature upstream
    other_machine: dict[str, tuple[dict, dict]] = field(default_factory=dict)  # stage -> (committed, made)
    code_changed: list[Finding] = field(default_factory=list)  # deps in the committed lock != this code's
    provenance: list[Finding] = field(default_factory=list)  # machine.cpu alone: named, not compared

    @property
    def ok(self) -> bool:
        return not self.differ and not self.code_changed


def _outs(stage: dict) -> dict[str, str | None]:
    return {o["path"]: o.get("md5") for o in stage.get("outs", [])}


def _flat(obj, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _diff_text(path: str, old: str, new: str) -> list[tuple[str, object, object]]:
    """(key, committed, made) for each difference: JSON by key, CSV and text by line."""
    if path.endswith(".json"):
        try:
            a, b = _flat(json.loads(old)), _flat(json.loads(new))
        except ValueError:
            pass
        else:
            return [
                (k, a.get(k, "<absent>"), b.get(k, "<absent>"))
                for k in sorted(set(a) | set(b))
                if a.get(k, "<absent>") != b.get(k, "<absent>")
            ]
    if path.endswith(".csv"):
        a, b = list(csv.reader(io.StringIO(old))), list(csv.reader(io.StringIO(new)))
        header = a[0] if a else []
        diffs = []
        for i in range(1, max(len(a), len(b))):
            ra, rb = (a[i] if i < len(a) else []), (b[i] if i < len(b) else [])
            for j in range(max(len(ra), len(rb))):
                va, vb = (ra[j] if j < len(ra) else "<absent>"), (rb[j] if j < len(rb) else "<absent>")
                if va != vb:
                    diffs.append((f"row {i} {header[j] if j < len(header) else j}", va, vb))
        return diffs
    la, lb = old.splitlines(), new.splitlines()
    return [
        (f"line {i + 1}", la[i] if i < len(la) else "<absent>", lb[i] if i < len(lb) else "<absent>")
        for i in range(max(len(la), len(lb)))
        if (la[i : i + 1] or [None]) != (lb[i : i + 1] or [None])
    ]


def _machine(text: str | None) -> dict | None:
    try:
        return json.loads(text).get("machine") if text else None
    except (ValueError, AttributeError):
        return None


def compare(committed_lock: dict, made_lock: dict, read_committed, read_made, git_tracked) -> Comparison:
    """Compare a commit's dvc.lock and git-tracked outputs with a fresh run's.

    `read_committed(path)` / `read_made(path)` return a file's text (None when absent);
    `git_tracked(path)` says whether the commit keeps the file in git (DVC's `cache: false`
    outputs), so that its content, not only its hash, can be compared."""
    res = Comparison()
    stages_c, stages_m = committed_lock.get("stages", {}), made_lock.get("stages", {})
    float_stages: set[str] = set()  # stages whose results were made with another float signature
    owner = {p: name for name, st in stages_m.items() for p in _outs(st)}
    for name, made in stages_m.items():
        committed = stages_c.get(name)
        if committed is None:
            res.code_changed.append(Finding(name, "dvc.lock", "stage", "<absent>", "run"))
            continue
        deps_c = {d["path"]: d.get("md5") for d in committed.get("deps", [])}
        for d in made.get("deps", []):
            if d["path"] in deps_c and d["path"] not in owner and deps_c[d["path"]] != d.get("md5"):
                res.code_changed.append(Finding(name, d["path"], "md5", deps_c[d["path"]], d.get("md5")))
        if committed.get("params") != made.get("params"):
            res.code_changed.append(Finding(name, "params.yaml", "params", committed.get("params"), made.get("params")))
        # the stages whose outputs this one reads: an output, a folder of outputs, or a file in one
        upstream = {
            owner[p]
            for d in made.get("deps", [])
            for p in owner
            if p == d["path"] or p.startswith(d["path"] + "/") or d["path"].startswith(p + "/")
        }
        for path in _outs(made):
            if not (git_tracked(path) and path.endswith(".json")):
                continue  # the float signature is recorded in the stage's metrics
            sig_c, sig_m = _machine(read_committed(path)), _machine(read_made(path))
            if sig_c is not None or sig_m is not None:
                if sig_c is None or sig_m is None or float_key(sig_c) != float_key(sig_m):
                    res.other_machine[name] = (sig_c or {}, sig_m or {})
        if name in res.other_machine or upstream & float_stages:
            float_stages.add(name)
        bucket = res.not_comparable if name in float_stages else res.differ
        outs_c, outs_m = _outs(committed), _outs(made)
        for path, md5 in outs_m.items():
            if git_tracked(path):
                old, new = read_committed(path), read_made(path)
                diffs = _diff_text(path, old or "", new or "") if old != new else []
                cpu = [d for d in diffs if d[0] == "machine.cpu"]
                res.provenance += [Finding(name, path, *d) for d in cpu]
                diffs = [d for d in diffs if d[0] != "machine.cpu"]
            else:
                diffs = [("md5", outs_c.get(path, "<absent>"), md5)] if outs_c.get(path) != md5 else []
            if diffs:
                bucket += [Finding(name, path, *d) for d in diffs]
            else:
                res.identical.append(f"{name}: {path}")
    return res


def report(res: Comparison, rev: str, limit: int = 12) -> str:
    lines = []
    if res.code_changed:
        lines.append(f"FAIL: the commit's dvc.lock was not made by its own code and params ({len(res.code_changed)}):")
        lines += [
            f"  {f.stage}: {f.path} committed {f.committed} / this code {f.made}" for f in res.code_changed[:limit]
        ]
        lines.append("  rerun the pipeline (not `dvc commit`) and commit dvc.lock and metrics/ from that run")
    if res.differ:
        lines.append(
            f"FAIL: {len(res.differ)} outcome(s) differ from what {rev} commits, made with the same float signature:"
        )
        lines += [
            f"  {f.stage}: {f.path} [{f.key}] committed {f.committed!r} / made {f.made!r}" for f in res.differ[:limit]
        ]
        if len(res.differ) > limit:
            lines.append(f"  ... and {len(res.differ) - limit} more")
    if res.other_machine:
        lines.append(
            "NOT COMPARED: these stages' floats were made with another signature, so they and the "
            "stages downstream cannot be expected to match here:"
        )
        for stage, (c, m) in res.other_machine.items():
            lines.append(f"  {stage}: committed {json.dumps(float_key(c), sort_keys=True) if c else 'no signature'}")
            lines.append(
                f"  {' ' * len(stage)}  here      {json.dumps(float_key(m), sort_keys=True) if m else 'no signature'}"
            )
        lines.append(f"  {len(res.not_comparable)} difference(s) among them, e.g.:")
        lines += [
            f"    {f.stage}: {f.path} [{f.key}] committed {f.committed!r} / made {f.made!r}"
            for f in res.not_comparable[:limit]
        ]
    for f in res.provenance[:limit]:
        lines.append(
            f"note: {f.path} was committed from {f.committed}, made here on {f.made} "
            "(the same float signature: compared)"
        )
    lines.append(
        f"{len(res.identical)} outcome file(s) identical to {rev}; {len(res.differ)} differ; "
        f"{len(res.not_comparable)} not comparable (other float signature)"
    )
    lines.append(
        "verify: "
        + (
            "FAILED"
            if not res.ok
            else "passed"
            if not res.other_machine
            else "passed for the comparable outcomes only (see NOT COMPARED)"
        )
    )
    return "\n".join(lines)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def run(
    repo: Path,
    rev: str = "HEAD",
    workdir: Path | None = None,
    repro_cmd: tuple[str, ...] = ("dvc", "repro"),
    echo=print,
) -> Comparison:
    """Clone `rev` of `repo` into `workdir` (a temporary folder by default), reproduce its
    pipeline there from nothing, and compare. The stages run with this Python's venv on
    the PATH and the clone's own package first on the path."""
    commit = _git(repo, "rev-parse", rev).strip()
    own = tempfile.mkdtemp(prefix="cotdistill-verify-") if workdir is None else None
    clone = Path(workdir or own) / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(clone)], check=True)
    _git(clone, "checkout", "-q", commit)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(clone / "src")
    echo(f"verify: reproducing {commit[:10]} in {clone} (cold: no DVC cache, no teacher cache)")
    for cmd in (("cotdistill", "check-params"), repro_cmd):
        proc = subprocess.run(list(cmd), cwd=clone, env=env)
        if proc.returncode:
            raise RuntimeError(f"`{' '.join(cmd)}` failed in {clone} (exit {proc.returncode})")
    tracked = set(_git(clone, "ls-files").splitlines())

    def committed(path: str) -> str | None:
        try:
            return _git(clone, "show", f"{commit}:{path}")
        except subprocess.CalledProcessError:
            return None

    def made(path: str) -> str | None:
        p = clone / path
        return p.read_text(encoding="utf-8") if p.is_file() else None

    return compare(
        yaml.safe_load(committed("dvc.lock") or "{}"),
        yaml.safe_load(made("dvc.lock") or "{}"),
        committed,
        made,
        lambda p: p in tracked,
    )
