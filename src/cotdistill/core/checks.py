"""The rules between params keys: what a well-typed params.yaml can still get wrong.

`config.parse_params` runs `check_params` after the types and ranges, so that
`cotdistill check-params`, the pipeline's first stage and every stage refuse the same
files, before the teacher is paid. Each rule reads the params and the plain tables of
catalog/ (never a loader or a model) and raises one ConfigError line that names the keys
and what would be allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from .catalog.datasets import DATASETS, LOCAL_FORMATS
from .catalog.prompts import prompt_path, read_formats, resolve_format
from .catalog.students import STUDENTS
from .catalog.teachers import TEACHERS
from .errors import ConfigError, DataError
from .registry import suggest


def _names(p, where: str) -> None:
    for key, registry in (("model", STUDENTS), ("dataset", DATASETS), ("teacher", TEACHERS)):
        name = getattr(p, key)
        if name not in registry:
            raise ConfigError(f"{where}: {key}: unknown {registry.kind} '{name}'{suggest(name, registry.names())}")


def _source(p, where: str) -> None:
    info = DATASETS.get(p.dataset)
    if p.prepare.source is not None and p.prepare.source not in info.sources:
        raise ConfigError(
            f"{where}: prepare.source: dataset '{info.name}' has no source "
            f"'{p.prepare.source}'; allowed: {', '.join(info.sources)}"
        )
    if p.prepare.source == "local" and not p.prepare.local.path:
        raise ConfigError(f"{where}: prepare.local.path: required when prepare.source is 'local'")
    if p.prepare.source == "local" and p.prepare.local.format is None:
        suffix = Path(p.prepare.local.path).suffix.lower()
        if suffix not in LOCAL_FORMATS:
            raise ConfigError(
                f"{where}: prepare.local.format: cannot tell the format of "
                f"{p.prepare.local.path} from its suffix; set it to one of "
                f"{', '.join(sorted(set(LOCAL_FORMATS.values())))}"
            )


def _ranges(p, where: str) -> None:
    pairs = (
        ("prepare.coin_flip", p.prepare.coin_flip, "people"),
        ("prepare.last_letters", p.prepare.last_letters, "words"),
        ("prepare.multistep_arith", p.prepare.multistep_arith, "ops"),
    )
    for key, opts, unit in pairs:
        for lo, hi in ((f"min_{unit}", f"max_{unit}"), (f"ood_min_{unit}", f"ood_max_{unit}")):
            if getattr(opts, lo) > getattr(opts, hi):
                raise ConfigError(f"{where}: {key}.{lo} must be <= {hi}")
    if p.prepare.data_fraction <= 0:
        raise ConfigError(f"{where}: prepare.data_fraction: must be > 0 and <= 1, got {p.prepare.data_fraction!r}")
    fraction = p.prepare.gsm_symbolic.ood_template_fraction
    if p.dataset == "gsm_symbolic" and p.prepare.n_test_ood > 0 and not 0 < fraction < 1:
        raise ConfigError(
            f"{where}: prepare.gsm_symbolic.ood_template_fraction: {fraction!r} holds out "
            f"{'no' if fraction <= 0 else 'every'} template for test_ood; it must be > 0 and < 1 "
            "(or set prepare.n_test_ood: 0)"
        )


def _teacher_keys(p, where: str) -> None:
    g, backend = p.generate, TEACHERS.get(p.teacher).backend
    env = g.api_key_env
    if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
        # never echo the value: it may be a pasted key
        raise ConfigError(
            f"{where}: generate.api_key_env: must be the NAME of an environment variable "
            "(letters, digits, _), not the key itself"
        )
    if g.base_url is not None and "@" in g.base_url.split("://", 1)[-1].split("/", 1)[0]:
        # user:key@host would be logged, tracked and versioned with the params: never echo it
        raise ConfigError(
            f"{where}: generate.base_url: has credentials before the host (user:key@); "
            "params are logged and versioned, so the key goes in the environment variable "
            "that generate.api_key_env names"
        )
    if backend == "openai" and not (g.base_url or TEACHERS.get(p.teacher).base_url):
        raise ConfigError(
            f"{where}: generate.base_url: teacher '{p.teacher}' has no endpoint; set one "
            "(e.g. http://127.0.0.1:8000/v1)"
        )
    if g.calculator and (backend not in ("hf", "openai") or TEACHERS.get(p.teacher).chat):
        raise ConfigError(
            f"{where}: generate.calculator: the teacher's calculator runs in the hf backend's decoding or in "
            f"rounds of an openai completions server; teacher '{p.teacher}' has backend {backend}"
            + (" with the chat API" if backend == "openai" else "")
            + " (set it to false)"
        )
    only = {"hf": ("quantization", "device_map", "model_path"), "openai": ("base_url", "served_model", "api_key_env")}
    for other, keys in only.items():
        for key in keys:
            if other != backend and getattr(g, key) is not None:
                raise ConfigError(
                    f"{where}: generate.{key}: only for teachers with backend {other}; teacher "
                    f"'{p.teacher}' has backend {backend} (set it to null)"
                )


def _sampling(p, where: str) -> None:
    g = p.generate
    if g.num_samples > 1 and g.temperature == 0:
        raise ConfigError(
            f"{where}: generate.num_samples: {g.num_samples} samples at generate.temperature 0 "
            "are the same greedy CoT each time; set a temperature > 0 or num_samples: 1"
        )
    if g.k_max is not None and g.temperature == 0:
        raise ConfigError(
            f"{where}: generate.k_max: rounds of samples at generate.temperature 0 are the same greedy "
            "CoT each time; set a temperature > 0 (e.g. 0.7) or k_max: null"
        )
    if g.k_max is not None and g.k_max < g.num_samples:
        raise ConfigError(
            f"{where}: generate.k_max: {g.k_max} is below generate.num_samples ({g.num_samples}), the "
            "samples of one round; set k_max >= num_samples"
        )
    if p.evaluate.do_sample and p.evaluate.temperature <= 0:
        raise ConfigError(
            f"{where}: evaluate.temperature must be > 0 when evaluate.do_sample is true "
            f"(greedy decoding is do_sample: false)"
        )


def _prompt(p, where: str) -> None:
    g = p.generate
    path = prompt_path(p.dataset)
    try:
        formats = read_formats(path)
    except DataError as exc:
        raise ConfigError(f"{where}: dataset '{p.dataset}': {exc}") from None
    fmt = resolve_format(p.dataset, g.prompt_format)
    if fmt not in formats:
        raise ConfigError(
            f"{where}: generate.prompt_format: {path.name} has no format '{fmt}'; "
            f"allowed: {', '.join(formats)}, or null (the dataset's: {resolve_format(p.dataset, None)})"
        )
    exemplars = formats[fmt]["exemplars"]
    if g.shots > len(exemplars):
        raise ConfigError(
            f"{where}: generate.shots: {g.shots}, but format '{fmt}' of {path.name} has {len(exemplars)} exemplars"
        )
    if g.shots:
        # Every word is at least one token: a CoT shaped like the shortest exemplar shown
        # cannot fit, and the filter would drop every CoT as truncated.
        shown = exemplars[: g.shots] if g.exemplars == "fixed" else exemplars
        words = min(len(str((ex or {}).get("rationale", "")).split()) for ex in shown)
        if g.max_new_tokens < words:
            raise ConfigError(
                f"{where}: generate.max_new_tokens: {g.max_new_tokens} tokens cannot hold a CoT like "
                f"the exemplars shown (the shortest is {words} words, each at least one token); "
                f"raise it to {words} or more"
            )


def _variants(p, where: str) -> None:
    variants = p.train.variants
    if not variants or len(set(variants)) != len(variants):
        raise ConfigError(f"{where}: train.variants: expected a non-empty list without repeats, got {variants!r}")
    info = DATASETS.get(p.dataset)
    source = p.prepare.source or info.default_source
    if (
        "gold" in variants
        and source not in info.rationale_sources
        and not (source == "local" and p.prepare.local.rationale)
    ):
        has = (
            f"its sources with one: {', '.join(info.rationale_sources)}"
            if info.rationale_sources
            else "no source of it has one"
        )
        raise ConfigError(
            f"{where}: train.variants: 'gold' trains on the dataset's rationales, and dataset "
            f"'{p.dataset}' from source '{source}' has none ({has}"
            f"{'; a local file: prepare.local.rationale' if 'local' in info.sources else ''})"
        )


def _filter(p, where: str) -> None:
    info = DATASETS.get(p.dataset)
    if p.filter.verify_steps and not info.step_checker:
        with_one = ", ".join(n for n, d in DATASETS.items() if d.step_checker)
        raise ConfigError(
            f"{where}: filter.verify_steps: no step checker for dataset '{p.dataset}'; datasets with one: {with_one}"
        )
    f = p.filter
    if f.gold_coverage <= 0:
        raise ConfigError(f"{where}: filter.gold_coverage: must be > 0 and <= 1, got {f.gold_coverage!r}")
    changed = [
        (key, off)
        for key, value, off in (
            ("filter.gold_noise", f.gold_noise, 0.0),
            ("filter.gold_coverage", f.gold_coverage, 1.0),
            ("filter.gold_questions", f.gold_questions, "all"),
        )
        if value != off
    ]
    if changed and "gold" not in p.train.variants:
        key, off = changed[0]
        raise ConfigError(
            f"{where}: {key}: sets the quality of the gold variant's rationales, and train.variants "
            f"({', '.join(p.train.variants)}) has no gold; add gold, or set {key} back to {off}"
        )
    if f.gold_noise > 0 and not info.step_checker:
        with_one = ", ".join(n for n, d in DATASETS.items() if d.step_checker)
        raise ConfigError(
            f"{where}: filter.gold_noise: corrupted rationales are checked by the dataset's step checker, "
            f"and dataset '{p.dataset}' has none; datasets with one: {with_one}"
        )


def _train(p, where: str) -> None:
    t, preset = p.train, STUDENTS.get(p.model)
    if not t.launch.strip():
        raise ConfigError(
            f"{where}: train.launch: empty; the train stage runs under it "
            "(python, or e.g. 'accelerate launch --config_file ...')"
        )
    lora = preset.lora if t.lora is None else t.lora
    quantization = preset.quantization if t.quantization is None else t.quantization
    if quantization != "none" and not lora:
        # Quantized weights cannot be trained directly: only adapters on top of them.
        raise ConfigError(
            f"{where}: train.quantization: {quantization} needs train.lora: true "
            f"(model {preset.name} has lora {'on' if preset.lora else 'off'} by default)"
        )
    if t.model_path is not None and preset.offline:
        hub = ", ".join(n for n, s in STUDENTS.items() if not s.offline)
        raise ConfigError(
            f"{where}: train.model_path: model {preset.name} is built from a config; a local "
            f"checkpoint stands in for a Hub student's ({hub})"
        )
    if t.tokenizer is not None and not preset.from_config:
        raise ConfigError(
            f"{where}: train.tokenizer: only students built from a config train a tokenizer "
            f"({', '.join(n for n, s in STUDENTS.items() if s.from_config)}); "
            f"model {preset.name} brings its own (set it to null)"
        )


def _evaluate(p, where: str) -> None:
    answer_type = DATASETS.get(p.dataset).answer_type
    if p.evaluate.calculator and answer_type != "number":
        raise ConfigError(
            f"{where}: evaluate.calculator: true needs number answers; dataset '{p.dataset}' has "
            f"{answer_type} answers (null: the calculator where the answers are numbers)"
        )


# In order: the names first, since the rules after them look the names up.
def _threads(p, where: str) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if p.threads is not None and p.threads > cores:
        raise ConfigError(
            f"{where}: threads: {p.threads} torch threads, and this machine gives the process "
            f"{cores} CPU core(s); at most {cores} (threads beyond the cores only contend; float "
            "results depend on the count, so compare runs made with the same one)"
        )


RULES: tuple[Callable[..., None], ...] = (
    _names,
    _source,
    _ranges,
    _threads,
    _teacher_keys,
    _sampling,
    _prompt,
    _variants,
    _filter,
    _train,
    _evaluate,
)


def check_params(p, where: str = "params.yaml") -> None:
    """Raise a ConfigError for the first rule that `p` breaks."""
    for rule in RULES:
        rule(p, where)
