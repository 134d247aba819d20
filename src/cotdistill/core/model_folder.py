"""What a save_pretrained folder at train.model_path holds, read without torch.

Its config.json gives the architecture's family and dims, its safetensors header(s) the
exact parameter count (`read_folder`: no weights read, so the check stage stays cheap).
`folder_preset` puts that size and those dims into the student preset for the memory
estimate (memory.py), with the preset's train settings; `check_folder` refuses a folder of
the other family than the preset's (a T5 folder under a causal preset, or the reverse) in
one line: the train stage would load it with the wrong model class.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .paths import shared_path

if TYPE_CHECKING:
    from .catalog.students import StudentPreset

# Model types of encoder-decoders that the T5 students' class (T5ForConditionalGeneration) loads.
T5_TYPES = ("t5", "mt5", "umt5")
# Parameters far from the preset's (either way, this factor): its batch size and LoRA /
# quantization defaults were chosen for another size, which the check notes.
SIZE_FACTOR = 4.0
# safetensors dtype names -> the precision names of train.precision / memory.WEIGHT_BYTES
_SAFETENSORS_DTYPES = {"F32": "fp32", "BF16": "bf16", "F16": "fp16", "F64": "fp64", "I8": "8bit", "U8": "8bit"}
_CONFIG_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass(frozen=True)
class Folder:
    """What a save_pretrained folder holds, read from its config.json and safetensors
    header(s) without torch."""

    path: Path
    model_type: str | None
    architecture: str | None  # t5 (encoder-decoder) | causal (decoder-only) | None: config.json does not say
    params_m: float | None  # None: neither the weights' headers nor the config give it
    exact: bool  # params_m counted from the safetensors header(s), not computed from the config
    dtype: str | None  # stored precision (fp32, bf16, ...), from the headers or config.json
    shape: dict  # StudentPreset fields for the estimate: d_model, num_layers, num_heads, vocab_size


def _safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            return [path / f for f in sorted(set(weight_map.values()))]
        except (OSError, ValueError, AttributeError, TypeError):
            return []  # a damaged index: the config's count stands in
    return [path / "model.safetensors"] if (path / "model.safetensors").is_file() else []


def safetensors_header(file: Path) -> dict:
    """The JSON header of a safetensors file (tensor name -> dtype, shape, offsets): an
    8-byte little-endian length, then that many bytes of JSON; the weights are not read."""
    with open(file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def _count_header(files: list[Path]) -> tuple[float, str | None] | None:
    total, by_dtype = 0, {}
    try:
        for file in files:
            for name, t in safetensors_header(file).items():
                if name == "__metadata__":
                    continue
                n = math.prod(t["shape"])
                total += n
                by_dtype[t["dtype"]] = by_dtype.get(t["dtype"], 0) + n
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None  # a damaged or partial file: the config's count stands in
    if not total:
        return None
    dtype = max(by_dtype, key=by_dtype.get)
    return total / 1e6, _SAFETENSORS_DTYPES.get(dtype, dtype.lower())


def _t5_shape(c: dict) -> tuple[dict, float]:
    """T5 (v1.0 and v1.1) dims for the estimate and the parameter count they make."""
    d, ff, heads = c.get("d_model", 512), c.get("d_ff", 2048), c.get("num_heads", 8)
    inner = heads * c.get("d_kv", d // max(heads, 1))
    enc = c.get("num_layers", 6)
    dec = c.get("num_decoder_layers") or enc
    vocab = c.get("vocab_size", 32128)
    gated = str(c.get("feed_forward_proj", "relu")).startswith("gated")
    attn, mlp = 4 * d * inner, (3 if gated else 2) * d * ff
    bias = c.get("relative_attention_num_buckets", 32) * heads  # first layer of each stack's self-attention
    n = (
        vocab * d * (1 if c.get("tie_word_embeddings", True) else 2)
        + enc * (attn + mlp + 2 * d)
        + dec * (2 * attn + mlp + 3 * d)
        + 2 * bias
        + 2 * d
    )
    # The estimate has one layer count for both stacks: their mean.
    return dict(d_model=d, num_layers=math.ceil((enc + dec) / 2), num_heads=heads, vocab_size=vocab), n


def _causal_shape(c: dict) -> tuple[dict, float]:
    """Llama / Qwen / Mistral-style and GPT-2-style decoder dims and their parameter count."""
    gpt2 = "n_embd" in c
    h = c.get("n_embd") or c.get("hidden_size", 768)
    layers = c.get("n_layer") or c.get("num_hidden_layers", 12)
    heads = c.get("n_head") or c.get("num_attention_heads", 12)
    vocab = c.get("vocab_size", 50257)
    if gpt2:
        ff = c.get("n_inner") or 4 * h
        per_layer = 4 * h * h + 4 * h + 2 * h * ff + ff + h + 4 * h
        n = vocab * h + c.get("n_positions", 1024) * h + layers * per_layer + 2 * h
        tied = c.get("tie_word_embeddings", True)
    else:
        ff = c.get("intermediate_size", 4 * h)
        head_dim = c.get("head_dim") or h // max(heads, 1)
        kv = c.get("num_key_value_heads") or heads
        attn = 2 * h * heads * head_dim + 2 * h * kv * head_dim
        per_layer = attn + 3 * h * ff + 2 * h
        n = vocab * h + layers * per_layer + h
        tied = c.get("tie_word_embeddings", False)
    n += 0 if tied else vocab * h
    return dict(d_model=h, num_layers=layers, num_heads=heads, vocab_size=vocab), n


def read_folder(path: str | os.PathLike) -> Folder | None:
    """The model in a save_pretrained folder (train.model_path), from its config.json and
    safetensors header(s) only: no torch, no weights read, so the check stage stays cheap.
    None where there is no readable config.json (hub.local_folder says so first)."""
    path = Path(path)
    try:
        c = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(c, dict):
        return None
    model_type = c.get("model_type")
    if c.get("is_encoder_decoder") or model_type in T5_TYPES:
        architecture = "t5"
    elif model_type or any(str(a).endswith("ForCausalLM") for a in c.get("architectures") or []):
        architecture = "causal"
    else:
        architecture = None
    shape, computed = ({}, None)
    if architecture == "t5" and "d_model" in c:
        shape, computed = _t5_shape(c)
    elif architecture == "causal" and ("hidden_size" in c or "n_embd" in c):
        shape, computed = _causal_shape(c)
    counted = _count_header(_safetensors_files(path))
    stored = c.get("dtype") or c.get("torch_dtype")
    dtype = counted[1] if counted else _CONFIG_DTYPES.get(str(stored), stored)
    params_m = counted[0] if counted else (computed / 1e6 if computed else None)
    return Folder(path, model_type, architecture, params_m, bool(counted), dtype, shape)


def _family(architecture: str) -> str:
    return "t5 (encoder-decoder)" if architecture == "t5" else "causal (decoder-only)"


def check_folder(subject: str, preset: StudentPreset, model_path: str | os.PathLike) -> str | None:
    """Raise a one-line ConfigError when the folder at train.model_path holds a model of the
    other family than the preset's (the train stage would load it with the preset's model
    class); returns a note when its size is far from the preset's, whose batch size and
    LoRA / quantization defaults were chosen for its own size. Silent where config.json
    does not say (the stage's load will)."""
    folder = read_folder(shared_path(model_path))
    if folder is None or folder.architecture is None:
        return None
    if folder.architecture != preset.architecture:
        from .catalog.students import STUDENTS

        fitting = ", ".join(n for n, p in STUDENTS.items() if not p.offline and p.architecture == folder.architecture)
        raise ConfigError(
            f"{subject}: train.model_path: {folder.path} holds a {folder.model_type or folder.architecture} model, "
            f"of the {_family(folder.architecture)} family, and model {preset.name} is a "
            f"{_family(preset.architecture)} preset; set model to a preset of the folder's family ({fitting})"
        )
    if folder.params_m and max(folder.params_m / preset.params_m, preset.params_m / folder.params_m) > SIZE_FACTOR:
        lora = (
            (f"LoRA on {preset.quantization} weights" if preset.quantization != "none" else "LoRA")
            if preset.lora
            else "full finetuning"
        )
        return (
            f"{subject}: train.model_path: {folder.path} holds {folder.params_m:,.1f}M parameters and model "
            f"{preset.name} {preset.params_m:,.0f}M: its batch size {preset.batch_size}, {lora} and "
            f"{preset.optimizer} were chosen for its own size; set train.batch_size, train.lora, "
            "train.quantization, train.optimizer for the folder's"
        )
    return None


def folder_preset(preset: StudentPreset, model_path: str | os.PathLike | None) -> StudentPreset:
    """`preset` with the size and dims of the model at train.model_path (read_folder), for
    memory.estimate_gb: the same formula, the preset's train settings (batch size,
    optimizer, LoRA, ...). The preset itself where there is no folder or its config lacks the dims.
    The folder's stored precision does not enter: the train stage loads the weights in
    the training precision (fp32, or bf16 for a LoRA base under bf16) or quantizes them."""
    if not model_path:
        return preset
    folder = read_folder(shared_path(model_path))
    if folder is None or not folder.params_m or not folder.shape:
        return preset
    return dataclasses.replace(preset, params_m=folder.params_m, config={}, tokenizer_vocab_size=0, **folder.shape)
