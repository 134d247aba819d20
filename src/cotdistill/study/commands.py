"""`cotdistill study`: run a pre-declared study, re-render its page from what is committed,
rerun one of its cells and compare.

`cotdistill study GRID` runs the study (the `run` subcommand, named or not); `study page`
needs no experiment and no DVC cache, only the files committed beside the page;
`study rerun-cell` needs a git checkout and the time of one cell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cotdistill.core.errors import UserError, exit_with


class _RunByDefault(click.Group):
    """`cotdistill study [GRID] [options]`, as before the subcommands came: a first argument
    that names no subcommand belongs to `run`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def load(repo: str, grid_file: str, check_cells: bool = True):
    """(repository root, grid) with the grid's path as the repository names it, so that the
    page reads the same wherever the command ran."""
    import dataclasses

    import yaml

    from .grid import load_grid

    root = Path(repo)
    path = Path(grid_file) if Path(grid_file).is_absolute() else root / grid_file
    try:
        base = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) if check_cells else {}
        grid = load_grid(path, base, check_cells)
    except (UserError, OSError) as exc:
        exit_with(str(exc))
    try:
        shown = path.resolve().relative_to(root.resolve())
    except ValueError:
        shown = path
    return root, dataclasses.replace(grid, path=shown)


def _committed(root: Path, out_dir: str, grid):
    from . import committed

    try:
        committed.check_study(root / out_dir, grid)
        return committed.read(root / out_dir)
    except UserError as exc:
        exit_with(str(exc))


REPO = click.option("--repo", default=".", show_default=True, help="the repository (git + DVC)")
OUT_DIR = click.option(
    "--out-dir",
    default="metrics/study",
    show_default=True,
    help="the page's folder, with the committed outcomes.jsonl and cells.json",
)


@click.group(cls=_RunByDefault)
def study() -> None:
    """Pre-declared studies: run one (`study [run] GRID`), re-render its page from the committed
    outcomes (`study page`), rerun one cell and compare (`study rerun-cell`)."""


@study.command("run")
@click.argument("grid_file", default="studies/cot_distillation.yaml")
@REPO
@OUT_DIR
@click.option("--no-run", is_flag=True, help="only collect finished cells and write the page")
@click.option("--dry-run", is_flag=True, help="list the cells and their `dvc exp run` commands, run nothing")
@click.option("--jobs", type=int, default=None, help="experiments at once (default: the grid's `jobs`)")
@click.option("--cells", "pattern", default=None, help="run only the cells whose name matches this glob")
@click.option("--fresh", is_flag=True, help="rerun cells that finished on an earlier commit")
def run(
    grid_file: str,
    repo: str,
    out_dir: str,
    no_run: bool,
    dry_run: bool,
    jobs: int | None,
    pattern: str | None,
    fresh: bool,
) -> None:
    """Run a pre-declared study (GRID_FILE) as queued DVC experiments and write its page.

    Cells already finished (on any commit, unless --fresh) or still in the queue are not
    queued again, so an interrupted study resumes. Each finished cell's per-question
    outcomes and provenance go to OUT_DIR/outcomes.jsonl and cells.json (commit them with
    the page: a cell whose experiment is gone keeps its committed record); the page
    (OUT_DIR/README.md, with PNG plots) is rendered from those files and reports every
    declared cell.
    """
    import time

    from . import collect as collecting
    from . import committed
    from .page import render
    from .run import queue_args, run_cells

    root, grid = load(repo, grid_file)
    cells = grid.cells()
    if pattern:
        import fnmatch

        cells = [c for c in cells if fnmatch.fnmatch(c.name, pattern)]
        if not cells:
            exit_with(f"--cells {pattern!r} matches no cell of {grid_file}")
    if dry_run:
        for c in cells:
            click.echo(f"[phase {c.phase}] dvc " + " ".join(queue_args(c)))
        return
    found = _committed(root, out_dir, grid)  # before hours of cells: a wrong --out-dir fails now
    start = time.time()
    if not no_run:
        try:
            statuses = run_cells(
                cells, root, jobs or grid.jobs, on_progress=lambda m: click.echo(m, err=True), fresh=fresh
            )
        except RuntimeError as exc:
            exit_with(str(exc))
        for name in sorted(n for n, s in statuses.items() if s != "Success"):
            click.echo(f"cell {name} failed: see `dvc queue logs {name}`", err=True)
        click.echo(f"the study command ran for {(time.time() - start) / 60:.0f} minutes", err=True)
    committed.write(root / out_dir, grid, *collecting.merge(found, collecting.collect(grid, root)))
    res = committed.results(grid, *committed.read(root / out_dir))
    page = render(grid, res, root, out_dir)
    click.echo(f"{page} ({len(res.runs)} students, {len(res.missing)} cells missing)")
    if res.missing:
        sys.exit(1)


@study.command()
@click.argument("grid_file")
@REPO
@OUT_DIR
@click.option(
    "--check", is_flag=True, help="write nothing: exit 1 if OUT_DIR/README.md is not what the committed outcomes make"
)
def page(grid_file: str, repo: str, out_dir: str, check: bool) -> None:
    """Re-render a study's page (and plots) from the outcomes committed beside it, with no
    DVC experiment or cache: every table and test is recomputed from the per-question
    outcomes."""
    from .committed import CELLS, results
    from .page import page_text, render

    root, grid = load(repo, grid_file, check_cells=False)
    cells, tables = _committed(root, out_dir, grid)
    if not cells:
        exit_with(
            f"{root / out_dir / CELLS}: no committed cells (run `cotdistill study {grid_file} --out-dir {out_dir}`)"
        )
    res = results(grid, cells, tables)
    if not check:
        click.echo(render(grid, res, root, out_dir))
        return
    import difflib

    path = root / out_dir / "README.md"
    made, kept = page_text(grid, res, out_dir), path.read_text(encoding="utf-8") if path.exists() else ""
    if made == kept:
        click.echo(f"{path}: what its committed outcomes make")
        return
    diff = list(difflib.unified_diff(kept.splitlines(), made.splitlines(), "committed", "recomputed", lineterm=""))
    click.echo("\n".join(diff[:60] + (["..."] if len(diff) > 60 else [])))
    click.echo(f"{path}: NOT what its committed outcomes make (rerun without --check to rewrite it)", err=True)
    sys.exit(1)


@study.command("rerun-cell")
@click.argument("grid_file")
@click.argument("cell_name")
@REPO
@OUT_DIR
@click.option("--rev", default="HEAD", show_default=True, help="the commit whose code reruns the cell")
@click.option("--workdir", default=None, help="clone here instead of a temporary folder (kept afterwards)")
def rerun_cell(grid_file: str, cell_name: str, repo: str, out_dir: str, rev: str, workdir: str | None) -> None:
    """Rerun one declared cell from a clean clone of REV and compare its predictions question by
    question with the committed ones. Exit 1 when they differ although the code (the commit
    the cell ran from) and the float signature are the same; another signature or changed
    code is reported, not failed."""
    import difflib
    import subprocess

    from .rerun import report
    from .rerun import rerun_cell as rerunning

    root, grid = load(repo, grid_file)
    names = {c.name: c for c in grid.cells()}
    if cell_name not in names:
        close = difflib.get_close_matches(cell_name, names, n=1)
        exit_with(f"{grid_file} declares no cell '{cell_name}'" + (f"; did you mean '{close[0]}'?" if close else ""))
    cells, tables = _committed(root, out_dir, grid)
    if cell_name not in cells:
        exit_with(f"{root / out_dir}: no committed outcomes of {cell_name} to compare with")
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", out_dir], capture_output=True, text=True
    ).stdout.strip()
    if dirty:
        click.echo(f"rerun-cell: {out_dir} has uncommitted changes: comparing with the files as they are", err=True)
    try:
        res = rerunning(
            root.resolve(),
            names[cell_name],
            cells[cell_name],
            tables.get(cell_name, {}),
            rev,
            Path(workdir) if workdir else None,
            echo=lambda m: click.echo(m, err=True),
        )
    except (RuntimeError, UserError, subprocess.CalledProcessError) as exc:
        exit_with(str(exc))
    click.echo(report(res))
    sys.exit(1 if res.failed else 0)
