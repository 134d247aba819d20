"""Run a study's cells as queued DVC experiments, and read their results back.

`dvc exp run --queue -n <cell> -S key=value ...` stages one experiment per cell; `dvc queue
start -j N` runs them in temporary clones (from the last commit: commit before running).
Cells already finished on the current commit are not queued again, so an interrupted
study resumes where it stopped, and DVC's run cache restores every stage whose inputs it
has seen before (the answer and gold students of later teacher modes, for example).
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from cotdistill.core.dvcexp import dvc_bin, dvc_env, experiments
from cotdistill.core.dvcexp import run_dvc as _dvc

from .grid import Cell

log = logging.getLogger(__name__)


def format_value(value: Any) -> str:
    """A params value as `dvc exp run -S key=<value>` reads it (Hydra override syntax)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    text = str(value)
    # plain words pass as they are; anything with spaces, commas (a sweep!) or quotes is quoted
    if re.fullmatch(r"[A-Za-z0-9_./\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def queue_args(cell: Cell, queue: bool = True) -> list[str]:
    """`dvc exp run --queue` for one cell (without --queue: run it in this workspace, as
    `study rerun-cell` does in a clean clone); a lever cell runs the DAG only up to the
    filter (it measures the teacher and trains nothing)."""
    args = ["exp", "run", *(["--queue"] if queue else []), "-n", cell.name]
    args += ["filter"] if cell.kind == "lever" else []
    for key, value in cell.overrides.items():
        args += ["-S", f"{key}={format_value(value)}"]
    return args


def finished(cell: Cell, exp: dict | None) -> bool:
    """A student cell is done when every variant has its evaluation; a lever cell when the
    filter has measured the teacher."""
    if not exp:
        return False
    if cell.kind == "lever":
        return "metrics/filter.json" in exp["metrics"]
    return all(f"metrics/evaluate/{v}.json" in exp["metrics"] for v in cell.overrides["train.variants"])


def queue_status(repo: Path) -> tuple[dict[str, str], int | None]:
    """Name -> status (Queued, Running, Success, Failed) from `dvc queue status`, and the
    number of live workers (active + idle; None when DVC did not say)."""
    out, workers = {}, None
    for line in _dvc(["queue", "status"], repo).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] in ("Queued", "Running", "Success", "Failed"):
            out[parts[1]] = parts[-1]
        found = re.match(r"Worker status: (\d+) active, (\d+) idle", line.strip())
        if found:
            workers = int(found[1]) + int(found[2])
    return out, workers


def _uncached_patterns(repo: Path) -> list[re.Pattern]:
    """The outputs dvc.yaml declares with `cache: false` (metrics and plots git keeps), as
    patterns: a foreach stage's `${item}` matches any one path part."""
    import yaml

    spec = repo / "dvc.yaml"
    stages = (yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("stages", {}) if spec.exists() else {}
    out = []
    for stage in stages.values():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                if isinstance(entry, dict):
                    for path, opts in entry.items():
                        if isinstance(opts, dict) and opts.get("cache") is False:
                            parts = re.split(r"\$\{[^}]+\}", path)
                            out.append(re.compile("[^/]+".join(re.escape(x) for x in parts)))
    return out


def missing_lock_outputs(repo: Path) -> list[str]:
    """The outputs of the committed dvc.lock whose objects the DVC cache lacks (outputs
    dvc.yaml keeps out of the cache, `cache: false`, are in git). A queued experiment
    starts from that lock, and when DVC's run cache restores one of its stages it loads the
    lock's objects: in a fresh clone that never ran the default pipeline the cell fails
    ("failed to load directory ('data', 'prepared')")."""
    import yaml

    lock = repo / "dvc.lock"
    if not lock.exists():
        return []
    cache = Path(_dvc(["cache", "dir"], repo).stdout.strip() or repo / ".dvc/cache")
    cache = cache if cache.is_absolute() else repo / cache
    in_git = _uncached_patterns(repo)
    missing = []
    for stage in (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            md5 = out.get("md5")
            if any(p.fullmatch(out["path"]) for p in in_git):
                continue
            if md5 and not (cache / "files" / "md5" / md5[:2] / md5[2:]).exists():
                missing.append(out["path"])
    return sorted(set(missing))


def run_cells(
    cells: Iterable[Cell],
    repo: Path,
    jobs: int,
    poll_s: float = 10.0,
    on_progress: Callable[[str], None] = print,
    fresh: bool = False,
) -> dict[str, str]:
    """Queue the cells not yet finished (on any commit; with `fresh`, on the current
    commit), run them, and wait.

    Every cell is queued at once, in phase order, so each runs from the commit the study
    started on, whatever is committed meanwhile. The queue runs first in, first out:
    `jobs` workers take the phase-1 cells (which train the answer and gold students)
    before the phase-2 cells of the same task and seed, which find those students in the
    run cache. Returns name -> final status; a failed cell does not stop the others (its
    log: `dvc queue logs <name>`).
    """
    cells = sorted(cells, key=lambda c: c.phase)
    done = experiments(repo, all_commits=not fresh)
    waiting = {n for n, s in queue_status(repo)[0].items() if s in ("Queued", "Running")}
    todo = [c for c in cells if not finished(c, done.get(c.name))]
    # a cell still in the queue (from an interrupted `cotdistill study`) is waited for, not queued again
    queue = [c for c in todo if c.name not in waiting]
    for phase in sorted({c.phase for c in cells}):
        on_progress(
            f"phase {phase}: {sum(c.phase == phase for c in todo)} of "
            f"{sum(c.phase == phase for c in cells)} cells to run"
        )
    if not todo:
        return {}
    missing = missing_lock_outputs(repo)
    if missing:
        raise RuntimeError(
            f"the DVC cache lacks the committed dvc.lock's outputs ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}), which queued experiments load when the run cache "
            "restores a stage: run `make repro` (or `dvc pull`) first"
        )
    _dvc(["queue", "remove", "--failed"], repo, check=False)
    for cell in queue:
        _dvc(queue_args(cell), repo)
    # The workers are daemons that outlive the call: their output goes to `dvc queue
    # logs`, not to a pipe this process would wait on until they end.
    subprocess.run(
        [dvc_bin(), "queue", "start", "-j", str(jobs)],
        cwd=repo,
        env=dvc_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    names = {c.name for c in todo}
    start, idle_polls = time.time(), 0
    while True:
        time.sleep(poll_s)
        status, workers = queue_status(repo)
        current = {n: s for n, s in status.items() if n in names}
        active = [n for n, s in current.items() if s in ("Queued", "Running")]
        # a worker that could not start (no `dvc` on its PATH, a broken venv) dies at once
        # and leaves every cell Queued: say so instead of waiting for ever. A Running cell
        # has a live worker, whatever the count says (DVC asks the workers, and a worker
        # busy on loaded cores can miss the question: it read "0 active" mid-cell).
        stuck = [n for n, s in current.items() if s == "Queued"]
        running = any(s == "Running" for s in current.values())
        idle_polls = idle_polls + 1 if stuck and not running and workers == 0 else 0
        if idle_polls >= 3:
            raise RuntimeError(
                f"no DVC queue worker is running but {len(stuck)} cell(s) wait in the queue: "
                f"`dvc queue start -v` in {repo} shows why the workers stop"
            )
        ended = [n for n, s in current.items() if s in ("Success", "Failed")]
        on_progress(
            f"{len(ended)}/{len(names)} cells done, {len(active)} queued or running, {time.time() - start:.0f} s"
        )
        if not active:
            return current
