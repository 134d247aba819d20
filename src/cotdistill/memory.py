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

torch is imported only where a GPU device exists: the check stage runs on every
`dvc repro` and stays cheap on a CPU-only machine.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .errors import ResourceError

# The train keys that the estimate reads (the rest do not change the memory).
ESTIMATE_KEYS = ("precision", "batch_size", "gradient_checkpointing", "optimizer", "lora", "quantization")
# train.optimizer values that transformers runs on bitsandbytes' optimizers.
BNB_OPTIMIZERS = ("adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit")
# What a machine without a GPU takes instead of a bitsandbytes setting a preset chose for one.
CPU_INSTEAD = {"quantization": "none", "optimizer": "adamw_torch_fused"}
# Measured for issue 23: model=llama-3.2-1b (8-bit weights, paged_adamw_8bit) without a GPU.
CPU_COST = "52-60 s per step for llama-3.2-1b 8-bit on 2 CPU cores, measured"


@dataclass(frozen=True)
class Device:
    name: str  # "GPU 0 (NVIDIA H100 80GB HBM3)" or "host RAM (no GPU)"
    free_gb: float
    cuda: bool
    bf16: bool  # the device trains in bf16 (else bf16 falls back to fp32, as training.resolve does)


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
    return None if free is None else Device("host RAM (no GPU)", free, False, False)


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
    s = settings(train, preset, device)
    need = estimate_gb(preset, s, train.lora_r)
    if need <= device.free_gb:
        return None
    fits = fitting_changes(preset, s, device.free_gb, train.lora_r)
    if fits:
        ways = "; ".join(f"{_flags(c)} ({gb:.1f} GB)" for c, gb in fits)
        way_out = f"settings that fit: {ways}"
    else:
        way_out = (f"no setting of this model fits (at least {least_gb(preset, s, train.lora_r):.1f} GB at batch 1 "
                   f"with LoRA on 4bit weights)") + _smaller_model(preset, device, train.lora_r)
    raise ResourceError(f"{subject}: training needs about {need:.1f} GB ({_describe(s)}; an upper bound) but "
                        f"{device.name} has {device.free_gb:.1f} GB free; {way_out}; or -S train.memory_check=false "
                        "to try anyway")


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
