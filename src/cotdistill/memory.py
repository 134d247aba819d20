"""Will a student's training fit this machine, and run on it at a sane speed?

The student preset's estimate (`StudentPreset.training_memory_gb`, an upper bound) under
the train settings of the run, against the memory actually free: the GPU this process
trains on, or the host's RAM where there is no GPU. The check stage runs it before any
stage's outputs are removed, the train stage again right before it loads the model; a
run that cannot fit stops with one line that gives both numbers and the settings that
would fit.

On a machine without a GPU, the bitsandbytes settings that a preset chose for GPUs (8-bit
/ 4-bit base weights, 8-bit and paged optimizers) are refused the same way, at the same
two places, unless params.yaml asks for them (`check_cpu_bitsandbytes`).

With train.model_path, the estimate is of the folder's model, not the preset's: its
config.json gives the architecture's dims and its safetensors header(s) the exact parameter
count (`read_folder`, no torch), fed into the preset's own formula with the run's train
settings (`folder_preset`). A folder of the other family than the preset's (a T5 folder
under a causal preset, or the reverse) is refused in one line (`check_folder`): the train
stage would load it with the wrong model class.

torch is imported only where a GPU device exists: the check stage runs on every
`dvc repro` and stays cheap on a CPU-only machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .errors import ConfigError, ResourceError
from .paths import shared_path

# The train keys that the estimate reads (the rest do not change the memory).
ESTIMATE_KEYS = ("precision", "batch_size", "gradient_checkpointing", "optimizer", "lora", "quantization")
# train.optimizer values that transformers runs on bitsandbytes' optimizers.
BNB_OPTIMIZERS = ("adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit")
# What a machine without a GPU takes instead of a bitsandbytes setting a preset chose for one.
CPU_INSTEAD = {"quantization": "none", "optimizer": "adamw_torch_fused"}
# Measured for issue 23: model=llama-3.2-1b (8-bit weights, paged_adamw_8bit) without a GPU.
CPU_COST = "52-60 s per step for llama-3.2-1b 8-bit on 2 CPU cores, measured"
# Peak RSS of a process that only imports what the train stage imports (torch, transformers,
# mlflow, peft, the package), GB: benchmarks/memory_estimate.py's baseline, 2 cores, 2026-12-04.
TRAIN_IMPORTS_GB = 0.57


@dataclass(frozen=True)
class Device:
    name: str  # "GPU 0 (NVIDIA H100 80GB HBM3)" or "host RAM (no GPU)"
    free_gb: float
    cuda: bool
    bf16: bool  # the device trains in bf16 (else bf16 falls back to fp32, as training.resolve does)
    # Memory the training process holds besides its model (Python, torch, transformers,
    # mlflow), where the free memory measured does not yet count it (host_process_gb).
    process_gb: float = 0.0


def gpu_device_nodes() -> bool:
    """A GPU driver is present (NVIDIA or ROCm); without one torch cannot see a GPU."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or any(Path("/dev").glob("nvidia[0-9]*")) \
        or Path("/dev/kfd").exists()


def has_gpu() -> bool:
    """torch can train on a GPU here. torch is imported only where a GPU driver exists (the
    check stage stays cheap on a CPU-only machine)."""
    if not gpu_device_nodes():
        return False
    import torch

    return torch.cuda.is_available()


def host_free_gb() -> float | None:
    """RAM available to this process: MemAvailable, capped by the cgroup's limit (containers)."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max" and free is not None:
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return None if free is None else free / 1e9


def this_device() -> Device | None:
    """The device this process trains on: its GPU (LOCAL_RANK under a launcher) with the
    memory free on it, else the host's RAM; None where neither can be measured."""
    if has_gpu():
        import torch

        index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        free, _ = torch.cuda.mem_get_info(index)
        return Device(f"GPU {index} ({torch.cuda.get_device_name(index)})", free / 1e9, True,
                      torch.cuda.is_bf16_supported())
    free = host_free_gb()
    return None if free is None else Device("host RAM (no GPU)", free, False, False, host_process_gb())


def host_process_gb() -> float:
    """What the train stage's process holds in RAM besides its model, where this process's
    free RAM does not count it yet: the check stage (no torch imported) measures before
    that process exists; the train stage measures after its imports, which MemAvailable
    already leaves out."""
    return 0.0 if "torch" in sys.modules else TRAIN_IMPORTS_GB


def settings(train, preset, device: Device) -> dict:
    """The estimate's inputs for a run: each train value, or the preset's where it is None,
    with the precision the device can train in."""
    out = {k: getattr(preset, k) if getattr(train, k) is None else getattr(train, k) for k in ESTIMATE_KEYS}
    if out["precision"] == "bf16" and not device.bf16 or out["precision"] == "fp16" and not device.cuda:
        out["precision"] = "fp32"
    out["grad_accum"] = train.grad_accum or preset.grad_accum
    return out


def estimate_gb(preset, s: dict, lora_r: int) -> float:
    shaped = dataclasses.replace(preset, **{k: s[k] for k in ESTIMATE_KEYS if k != "batch_size"})
    return shaped.training_memory_gb(batch_size=s["batch_size"], lora_r=lora_r)


def _describe(s: dict) -> str:
    weights = s["quantization"] if s["quantization"] != "none" else s["precision"]
    how = f"LoRA on {weights} weights" if s["lora"] else "full finetuning"
    return (f"{s['precision']}, batch {s['batch_size']}, {how}"
            f"{', gradient checkpointing' if s['gradient_checkpointing'] else ''}")


def _flags(changes: dict) -> str:
    return " ".join(f"-S train.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in changes.items())


def fitting_changes(preset, s: dict, free_gb: float, lora_r: int) -> list[tuple[dict, float]]:
    """Changes of the train settings that bring the estimate under `free_gb`, each with its
    estimate: a smaller batch (accumulating to the same examples per step), gradient
    checkpointing, LoRA on 8-bit or 4-bit weights; all of them together where no single
    one fits."""
    def with_(changes: dict) -> float:
        return estimate_gb(preset, {**s, **changes}, lora_r)

    def smaller_batch(base: dict) -> dict | None:
        per_step = s["batch_size"] * s["grad_accum"]
        b = s["batch_size"] // 2
        while b >= 1:
            if with_({**base, "batch_size": b}) <= free_gb:
                return {**base, "batch_size": b, "grad_accum": max(1, per_step // b)}
            b //= 2
        return None

    options: list[dict] = []
    batch = smaller_batch({})
    if batch:
        options.append(batch)
    if not s["gradient_checkpointing"]:
        options.append({"gradient_checkpointing": True})
    for q in ("8bit", "4bit"):
        if s["quantization"] != q and not (s["quantization"] == "4bit" and q == "8bit"):
            options.append({"lora": True, "quantization": q})
    fits = [(c, with_(c)) for c in options if with_(c) <= free_gb]
    if not fits:
        most = {"lora": True, "quantization": "4bit", "gradient_checkpointing": True}
        most = most if with_(most) <= free_gb else smaller_batch(most)
        fits = [(most, with_(most))] if most else []
    # only what changes: a setting the run already has is no advice
    return [({k: v for k, v in c.items() if s.get(k) != v}, gb) for c, gb in fits]


def least_gb(preset, s: dict, lora_r: int) -> float:
    """The estimate under the settings that need the least memory: batch 1, LoRA on 4-bit
    weights, gradient checkpointing."""
    return estimate_gb(preset, {**s, "batch_size": 1, "lora": True, "quantization": "4bit",
                                "gradient_checkpointing": True}, lora_r)


def check_fits(subject: str, preset, train, device: Device | None = None) -> str | None:
    """Raise a one-line ResourceError when training `preset` under `train` (params.train or
    the resolved settings) cannot fit the memory of this machine; returns a note when
    nothing was checked. (train.memory_check: false skips it: the caller's choice.)"""
    if device is None:
        device = this_device()
    if device is None:
        return f"{subject}: memory check skipped: cannot measure this machine's free memory"
    s = settings(train, preset, device)  # the preset's train settings, also for a folder's model
    model_path = getattr(train, "model_path", None)
    shaped = folder_preset(preset, model_path)
    extra = device.process_gb  # the process's own memory: each estimate below is the model's plus this
    room = dataclasses.replace(device, free_gb=device.free_gb - extra, process_gb=0.0)
    need = estimate_gb(shaped, s, train.lora_r)
    if need <= room.free_gb:
        return None
    fits = fitting_changes(shaped, s, room.free_gb, train.lora_r)
    if fits:
        ways = "; ".join(f"{_flags(c)} ({gb + extra:.1f} GB)" for c, gb in fits)
        way_out = f"settings that fit: {ways}"
    else:
        way_out = (f"no setting of this model fits (at least {least_gb(shaped, s, train.lora_r) + extra:.1f} GB at "
                   f"batch 1 with LoRA on 4bit weights)") + ("" if model_path else _smaller_model(preset, room,
                                                                                                  train.lora_r))
    need += extra
    whose = f"{shaped.params_m:,.1f}M parameters at train.model_path; " if shaped is not preset else ""
    own = f", {extra:.1f} GB of it the training process's own" if extra else ""
    raise ResourceError(f"{subject}: training needs about {need:.1f} GB ({whose}{_describe(s)}{own}; an upper "
                        f"bound) but {device.name} has {device.free_gb:.1f} GB free; {way_out}; or "
                        "-S train.memory_check=false to try anyway")


def bitsandbytes_settings(quantization: str | None, optimizer: str | None) -> dict[str, str]:
    """The train settings among these two that run on bitsandbytes, e.g. {'quantization':
    '8bit', 'optimizer': 'paged_adamw_8bit'}; {} where neither does."""
    out = {}
    if quantization not in (None, "none"):
        out["quantization"] = quantization
    if optimizer in BNB_OPTIMIZERS:
        out["optimizer"] = optimizer
    return out


def check_cpu_bitsandbytes(subject: str, preset, train) -> None:
    """Raise a one-line ResourceError when, on this machine without a GPU (has_gpu), the
    student preset's defaults put bitsandbytes in the run: 8-bit / 4-bit base weights or
    a bitsandbytes optimizer chosen for GPUs, which on a CPU train many times slower than
    plain weights and AdamW. A value set in params.train is the user's choice and passes.
    `train`: params.train, whose None means the preset's value. The check stage
    (preflight) and the train stage (students/job.py) both call it."""
    inherited = bitsandbytes_settings(preset.quantization if train.quantization is None else None,
                                      preset.optimizer if train.optimizer is None else None)
    if not inherited or has_gpu():
        return
    chosen = " and ".join(f"train.{k}={v}" for k, v in inherited.items())
    many = len(inherited) > 1
    whose = "are the preset's choices" if many else "is the preset's choice"
    them = "them" if many else "it"
    raise ResourceError(
        f"{subject}: {chosen} {whose} for GPUs and this machine has none: bitsandbytes on a CPU is slow "
        f"({CPU_COST}); " + " ".join(f"-S train.{k}={CPU_INSTEAD[k]}" for k in inherited)
        + f", or set {them} in params.yaml to keep {them}")


def _smaller_model(preset, device: Device, lora_r: int) -> str:
    """'; a smaller model: -S model=X [and settings]': the largest smaller preset of the same
    kind (Hub or from-config) that fits, under its defaults or with changes."""
    from .catalog.students import STUDENTS

    family = preset.name.split("-")[0]
    defaults = SimpleNamespace(grad_accum=None, **dict.fromkeys(ESTIMATE_KEYS))
    smaller = sorted((p for _, p in STUDENTS.items() if p.offline == preset.offline and p.params_m < preset.params_m),
                     key=lambda p: (p.params_m, p.name.startswith(family)), reverse=True)
    for p in smaller:
        s = settings(defaults, p, device)
        if estimate_gb(p, s, lora_r) <= device.free_gb:
            return f"; a smaller model: -S model={p.name}"
        fits = fitting_changes(p, s, device.free_gb, lora_r)
        if fits:
            return f"; a smaller model: -S model={p.name} {_flags(fits[0][0])}"
    return ""


# ------------------------------------------------------------ train.model_path: the folder's model

# Model types of encoder-decoders that the T5 students' class (T5ForConditionalGeneration) loads.
T5_TYPES = ("t5", "mt5", "umt5")
# Parameters far from the preset's (either way, this factor): its batch size and LoRA /
# quantization defaults were chosen for another size, which the check notes.
SIZE_FACTOR = 4.0
# safetensors dtype names -> the precision names of train.precision / WEIGHT_BYTES
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
    n = vocab * d * (1 if c.get("tie_word_embeddings", True) else 2) + enc * (attn + mlp + 2 * d) \
        + dec * (2 * attn + mlp + 3 * d) + 2 * bias + 2 * d
    # The estimate has one layer count for both stacks (each sees 256 tokens): their mean.
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


def check_folder(subject: str, preset, model_path: str | os.PathLike) -> str | None:
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
            f"{_family(preset.architecture)} preset; set model to a preset of the folder's family ({fitting})")
    if folder.params_m and max(folder.params_m / preset.params_m, preset.params_m / folder.params_m) > SIZE_FACTOR:
        lora = (f"LoRA on {preset.quantization} weights" if preset.quantization != "none" else "LoRA") \
            if preset.lora else "full finetuning"
        return (f"{subject}: train.model_path: {folder.path} holds {folder.params_m:,.1f}M parameters and model "
                f"{preset.name} {preset.params_m:,.0f}M: its batch size {preset.batch_size}, {lora} and "
                f"{preset.optimizer} were chosen for its own size; set train.batch_size, train.lora, "
                "train.quantization, train.optimizer for the folder's")
    return None


def folder_preset(preset, model_path: str | os.PathLike | None):
    """`preset` with the size and dims of the model at train.model_path (read_folder), for
    the estimate: the same formula, the preset's train settings (batch size, optimizer,
    LoRA, ...). The preset itself where there is no folder or its config lacks the dims.
    The folder's stored precision does not enter: the train stage loads the weights in
    the training precision (fp32, or bf16 for a LoRA base under bf16) or quantizes them."""
    if not model_path:
        return preset
    folder = read_folder(shared_path(model_path))
    if folder is None or not folder.params_m or not folder.shape:
        return preset
    return dataclasses.replace(preset, params_m=folder.params_m, config={}, tokenizer_vocab_size=0, **folder.shape)
