"""Will a student's training fit this machine, and run on it at a sane speed?

The training-memory estimate of a student preset (`estimate_gb`, an upper bound) under the
train settings of the run, its sequence lengths included, against the memory actually free:
the GPU this process trains on, or the host's RAM where there is no GPU. The check stage
runs it before any stage's outputs are removed, the train stage again right before it
loads the model; a run that cannot fit stops with one line that gives both numbers and
the settings that would fit.

On a machine without a GPU, the bitsandbytes settings that a preset chose for GPUs (8-bit
/ 4-bit base weights, 8-bit and paged optimizers) are refused the same way, at the same
two places, unless params.yaml asks for them (`check_cpu_bitsandbytes`).

With train.model_path, the estimate is of the folder's model, not the preset's: the same
formula with the folder's size and dims (model_folder.folder_preset) under the run's train
settings.

torch is imported only where a GPU device exists: the check stage runs on every
`dvc repro` and stays cheap on a CPU-only machine.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from .errors import ResourceError
from .model_folder import folder_preset

if TYPE_CHECKING:
    from .catalog.students import StudentPreset

# The train keys that the estimate reads where the preset has a default (the rest do not
# change the memory), and those it reads from the run alone.
ESTIMATE_KEYS = ("precision", "batch_size", "gradient_checkpointing", "optimizer", "lora", "quantization")
LENGTH_KEYS = ("max_source_length", "max_target_length")
# The lengths of an estimate under a preset's own defaults (`defaults_gb`, `cotdistill
# presets`): params.yaml's train.max_source_length / max_target_length.
DEFAULT_LENGTHS = {"max_source_length": 256, "max_target_length": 256}
# Bytes per base-weight parameter for each storage format (NF4 with double quantization
# stores 4 bits plus about 0.13 bits of scales).
WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "8bit": 1.0, "4bit": 0.52}
# Optimizer state bytes per trainable parameter (Adafactor's factored moments: about 1).
OPTIMIZER_BYTES = {
    "adafactor": 1,
    "adamw_torch": 8,
    "adamw_torch_fused": 8,
    "adamw_bnb_8bit": 2,
    "paged_adamw_8bit": 2,
    "paged_adamw_32bit": 8,
}
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
    return (
        Path("/proc/driver/nvidia/gpus").is_dir() or any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()
    )


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
        return Device(
            f"GPU {index} ({torch.cuda.get_device_name(index)})", free / 1e9, True, torch.cuda.is_bf16_supported()
        )
    free = host_free_gb()
    return None if free is None else Device("host RAM (no GPU)", free, False, False, host_process_gb())


def host_process_gb() -> float:
    """What the train stage's process holds in RAM besides its model, where this process's
    free RAM does not count it yet: the check stage (no torch imported) measures before
    that process exists; the train stage measures after its imports, which MemAvailable
    already leaves out."""
    return 0.0 if "torch" in sys.modules else TRAIN_IMPORTS_GB


def settings(train, preset: StudentPreset, device: Device) -> dict:
    """The estimate's inputs for a run: each train value, or the preset's where it is None,
    with the precision the device can train in, and the run's sequence lengths."""
    out = {k: getattr(preset, k) if getattr(train, k) is None else getattr(train, k) for k in ESTIMATE_KEYS}
    if out["precision"] == "bf16" and not device.bf16 or out["precision"] == "fp16" and not device.cuda:
        out["precision"] = "fp32"
    out["grad_accum"] = train.grad_accum or preset.grad_accum
    out.update({k: getattr(train, k) for k in LENGTH_KEYS})
    return out


def dims(preset: StudentPreset) -> tuple[int, int, int]:
    """(d_model, layers per stack, heads): from `config` for a from-config preset, else its fields."""
    c = preset.config
    return (
        c.get("d_model", c.get("hidden_size", preset.d_model)),
        c.get("num_layers", c.get("num_hidden_layers", preset.num_layers)),
        c.get("num_heads", c.get("num_attention_heads", preset.num_heads)),
    )


def lora_params_m(preset: StudentPreset, r: int = 16) -> float:
    """Trainable LoRA parameters on the attention q and v projections, millions.

    T5: encoder self-attention, decoder self- and cross-attention, 3 attention blocks
    per layer pair; a causal LM: 1 per layer (GPT-2's fused qkv projection takes about
    as many). Each with q and v of about d_model x d_model.
    """
    d, layers, _ = dims(preset)
    blocks = 3 if preset.architecture == "t5" else 1
    return blocks * layers * 2 * r * (d + d) / 1e6


def estimate_gb(preset: StudentPreset, s: dict, lora_r: int) -> float:
    """Rough peak accelerator memory for training `preset` (or folder_preset's) under the
    settings `s` (`settings`), in GB.

    Base weights in their storage format (fp32 / bf16 / 8-bit / NF4); for full
    finetuning, gradients in the training precision, fp32 master weights under mixed
    precision and the optimizer state; for LoRA, only the adapters carry fp32 weights,
    gradients and optimizer state. Activations per layer follow Korthikanti et al.
    (2022): s*b*h*(34 + 5*a*s/h) bytes in 16-bit, or only each layer's input (2*s*b*h)
    under gradient checkpointing, and once more for the layer being backpropagated
    (its activations' gradients), at train.max_source_length + max_target_length tokens
    (a T5 encoder and decoder each see one, the decoder with a cross-attention block more;
    a causal LM sees both in one sequence); the logits over the vocabulary (a causal LM
    computes them at every position); plus 10%. An upper bound: dynamic padding makes most
    batches shorter. Only the model's training: the process that runs it (Python, torch,
    transformers) is Device.process_gb.
    """
    n = preset.params_m * 1e6
    precision = s["precision"]
    half = precision in ("bf16", "fp16")
    wfmt = s["quantization"] if s["quantization"] != "none" else precision
    opt = OPTIMIZER_BYTES.get(s["optimizer"], 8)
    if s["lora"]:
        trainable = lora_params_m(preset, lora_r) * 1e6
        static = n * WEIGHT_BYTES[wfmt] + trainable * (4 + 4 + opt)
    else:
        wb = WEIGHT_BYTES[precision]
        static = n * (wb + wb + (4 if half else 0) + opt)
    d, layers, heads = dims(preset)
    b = s["batch_size"]
    source, target = s["max_source_length"], s["max_target_length"]
    act_bytes = 1 if half else 2  # the formula is for 16-bit activations
    act, largest = 0.0, 0.0
    causal = preset.architecture == "causal"
    for stack, length in enumerate((source + target,) if causal else (source, target)):
        per_sbh = 34 + 5 * heads * length / max(d, 1)
        if stack == 1:
            # A T5 decoder layer has a second attention block, cross-attention over the
            # encoder's output: Korthikanti's attention share again, 11 + 5*a*s/h
            # (measured for issue 23: without it T5 folders trained above the estimate).
            per_sbh += 11 + 5 * heads * source / max(d, 1)
        full = length * b * d * per_sbh * act_bytes
        act += layers * 2 * length * b * d * act_bytes + full if s["gradient_checkpointing"] else layers * full
        largest = max(largest, full)
    # The layer being backpropagated also holds the gradients of its activations (at
    # most as large as they are); under checkpointing that doubles the one layer held
    # (measured for issue 23: a checkpointed Llama folder trained 0.4 GB above without it).
    act += largest
    # The logits over the vocabulary (the decoder's; a causal LM's at every position):
    # 16-bit logits (2 * act_bytes bytes: 2 in 16-bit, 4 in fp32), their fp32 copy in the
    # loss (in fp32: the log-softmax's output) and its gradient, 4 + 4 bytes.
    vocab = preset.tokenizer_vocab_size or preset.vocab_size or 32128
    act += b * (source + target if causal else target) * vocab * (2 * act_bytes + 8)
    return round((static + act) * 1.1 / 1e9, 2)


def defaults_gb(preset: StudentPreset, batch_size: int | None = None, lora_r: int = 16) -> float:
    """The estimate under the preset's own train defaults (its batch size unless given) at
    DEFAULT_LENGTHS: what `cotdistill presets` lists."""
    s = {k: getattr(preset, k) for k in ESTIMATE_KEYS}
    return estimate_gb(preset, {**s, "batch_size": batch_size or preset.batch_size, **DEFAULT_LENGTHS}, lora_r)


def _describe(s: dict) -> str:
    weights = s["quantization"] if s["quantization"] != "none" else s["precision"]
    how = f"LoRA on {weights} weights" if s["lora"] else "full finetuning"
    return (
        f"{s['precision']}, batch {s['batch_size']}, {how}"
        f"{', gradient checkpointing' if s['gradient_checkpointing'] else ''}"
    )


def _flags(changes: dict) -> str:
    return " ".join(f"-S train.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in changes.items())


def fitting_changes(preset: StudentPreset, s: dict, free_gb: float, lora_r: int) -> list[tuple[dict, float]]:
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


def least_gb(preset: StudentPreset, s: dict, lora_r: int) -> float:
    """The estimate under the settings that need the least memory: batch 1, LoRA on 4-bit
    weights, gradient checkpointing."""
    return estimate_gb(
        preset, {**s, "batch_size": 1, "lora": True, "quantization": "4bit", "gradient_checkpointing": True}, lora_r
    )


def check_fits(subject: str, preset: StudentPreset, train, device: Device | None = None) -> str | None:
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
        way_out = (
            f"no setting of this model fits (at least {least_gb(shaped, s, train.lora_r) + extra:.1f} GB at "
            f"batch 1 with LoRA on 4bit weights)"
        ) + ("" if model_path else _smaller_model(preset, room, train))
    need += extra
    whose = f"{shaped.params_m:,.1f}M parameters at train.model_path; " if shaped is not preset else ""
    own = f", {extra:.1f} GB of it the training process's own" if extra else ""
    raise ResourceError(
        f"{subject}: training needs about {need:.1f} GB ({whose}{_describe(s)}{own}; an upper "
        f"bound) but {device.name} has {device.free_gb:.1f} GB free; {way_out}; or "
        "-S train.memory_check=false to try anyway"
    )


def bitsandbytes_settings(quantization: str | None, optimizer: str | None) -> dict[str, str]:
    """The train settings among these two that run on bitsandbytes, e.g. {'quantization':
    '8bit', 'optimizer': 'paged_adamw_8bit'}; {} where neither does."""
    out = {}
    if quantization not in (None, "none"):
        out["quantization"] = quantization
    if optimizer in BNB_OPTIMIZERS:
        out["optimizer"] = optimizer
    return out


def check_cpu_bitsandbytes(subject: str, preset: StudentPreset, train) -> None:
    """Raise a one-line ResourceError when, on this machine without a GPU (has_gpu), the
    student preset's defaults put bitsandbytes in the run: 8-bit / 4-bit base weights or
    a bitsandbytes optimizer chosen for GPUs, which on a CPU train many times slower than
    plain weights and AdamW. A value set in params.train is the user's choice and passes.
    `train`: params.train, whose None means the preset's value. The check stage
    (preflight) and the train stage (students/job.py) both call it."""
    inherited = bitsandbytes_settings(
        preset.quantization if train.quantization is None else None,
        preset.optimizer if train.optimizer is None else None,
    )
    if not inherited or has_gpu():
        return
    chosen = " and ".join(f"train.{k}={v}" for k, v in inherited.items())
    many = len(inherited) > 1
    whose = "are the preset's choices" if many else "is the preset's choice"
    them = "them" if many else "it"
    raise ResourceError(
        f"{subject}: {chosen} {whose} for GPUs and this machine has none: bitsandbytes on a CPU is slow "
        f"({CPU_COST}); "
        + " ".join(f"-S train.{k}={CPU_INSTEAD[k]}" for k in inherited)
        + f", or set {them} in params.yaml to keep {them}"
    )


def _smaller_model(preset: StudentPreset, device: Device, train) -> str:
    """'; a smaller model: -S model=X [and settings]': the largest smaller preset of the same
    kind (Hub or from-config) that fits, under its defaults or with changes, at the run's
    sequence lengths."""
    from .catalog.students import STUDENTS

    lora_r = train.lora_r
    family = preset.name.split("-")[0]
    lengths = {k: getattr(train, k) for k in LENGTH_KEYS}
    defaults = SimpleNamespace(grad_accum=None, **dict.fromkeys(ESTIMATE_KEYS), **lengths)
    smaller = sorted(
        (p for _, p in STUDENTS.items() if p.offline == preset.offline and p.params_m < preset.params_m),
        key=lambda p: (p.params_m, p.name.startswith(family)),
        reverse=True,
    )
    for p in smaller:
        s = settings(defaults, p, device)
        if estimate_gb(p, s, lora_r) <= device.free_gb:
            return f"; a smaller model: -S model={p.name}"
        fits = fitting_changes(p, s, device.free_gb, lora_r)
        if fits:
            return f"; a smaller model: -S model={p.name} {_flags(fits[0][0])}"
    return ""
