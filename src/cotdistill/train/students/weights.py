"""Find, load, save and reload a student's weights, the same way for every architecture
(t5.py, causal.py pass their model class).

- Pretrained weights: a Hub id, a local folder in the Hub's layout (train.model_path), or
  the GGUF file a pip package ships, optionally with bitsandbytes 8-bit / 4-bit weights.
- A student built here (from a config, or from a GGUF file) that is to be quantized or to
  carry adapters goes through `base_dir` first (`through_base_dir`).
- LoRA adapters through peft, saved as an adapter folder (with a built base beside it in
  `base/`) or merged; `load_trained` reads both, after `check_model_folder` has said in
  one line what is missing or damaged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoTokenizer

from cotdistill.core import hub
from cotdistill.core.errors import DataError
from cotdistill.core.io import read_json
from cotdistill.core.paths import shared_path
from cotdistill.core.quantization import dequantized, quantization_config, quiet_bitsandbytes

BASE_DIR = "base"  # inside an adapter folder: the built base model it adapts


def find_pretrained(preset, model_path: str | None = None) -> tuple[str | None, str | None]:
    """Where a student preset's pretrained weights are: (Hub id or folder, the GGUF file in
    that folder or None); (None, None) for a student built from its config.

    `model_path` (train.model_path: a local folder) stands in for the preset's weights. A
    Hub id that is neither cached nor reachable is a one-line ResourceError here, before
    transformers retries; a cached one with the Hub down is read offline at once."""
    if model_path:
        return str(shared_path(model_path)), None
    if preset.hub_id:
        hub.prepare_load(f"model {preset.name}", preset.hub_id, "student")
        return preset.hub_id, None
    if preset.package:
        folder = hub.package_folder(preset.package, "student weights", preset.gguf_file)
        return str(folder), preset.gguf_file
    return None, None


def load_pretrained(
    path: str,
    model_class: type,
    quantization: str | None = None,
    dtype: torch.dtype | None = None,
    gguf_file: str | None = None,
) -> tuple:
    """(model, tokenizer) from a Hub id, a local folder, or the GGUF file `gguf_file` in folder
    `path`; a GGUF model is dequantized by transformers and marked as the plain model it is."""
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    qc = quantization_config(quantization)
    model = model_class.from_pretrained(
        path,
        dtype=dtype or torch.float32,
        quantization_config=qc,
        device_map=quantized_device_map() if qc is not None else None,
        **kwargs,
    )
    if gguf_file:
        dequantized(model)
    return model, tokenizer


def quantized_device_map():
    """Where bitsandbytes puts quantized weights: this process's GPU under DDP (each rank
    holds a full replica), else spread over the visible GPUs; None on CPU."""
    import os

    if not torch.cuda.is_available():
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return "auto"


def through_base_dir(
    build: Callable[[], tuple], base_dir: Path | None, quantization: str, load: Callable[[str], tuple]
) -> tuple:
    """(model, tokenizer) of a student built here (from a config, or from a GGUF file) as
    training takes it. bitsandbytes quantizes while loading, so one that is to be quantized,
    or to carry adapters, is first saved to `base_dir` (that folder is also the base the
    adapter folder keeps), and a quantized one is loaded back from there by `load`, after
    the built one is let go (it would double the peak memory)."""
    model, tokenizer = build()
    if base_dir is None:
        if quantization != "none":
            raise ValueError("a quantized student built here needs a base_dir to load from")
        return model, tokenizer
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    if quantization == "none":
        return model, tokenizer
    del model
    return load(str(base_dir))


def apply_lora(
    model, r: int, alpha: int, dropout: float, gradient_checkpointing: bool, targets: list[str] | None, task_type: str
):
    """Wrap `model` with trainable LoRA adapters (peft); base weights stay frozen.
    `targets` None: peft's default modules for the model's architecture."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_8bit", False) or getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        # Checkpointed blocks need an input that requires grad when the embeddings are frozen.
        model.enable_input_require_grads()
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type=task_type)
    return get_peft_model(model, config)


def save_trained(
    model,
    tokenizer,
    folder: Path,
    lora_save: str,
    base: str | None,
    dtype: torch.dtype | None = None,
    *,
    model_class: type,
) -> str:
    """Write the trained student to `folder`; returns "full", "adapter" or "merged".

    `base` is the base model's folder or Hub id (for LoRA). A quantized base cannot take
    merged weights, so "merged" reloads the base unquantized and merges into that.
    """
    folder = Path(folder)
    is_peft = hasattr(model, "peft_config")
    if not is_peft:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return "full"
    if lora_save == "adapter":
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if base and Path(base).is_dir():
            import shutil

            shutil.copytree(base, folder / BASE_DIR)
        return "adapter"
    quantized = any(getattr(model.base_model.model, f"is_loaded_in_{b}", False) for b in ("8bit", "4bit"))
    if quantized:
        import tempfile

        from peft import PeftModel

        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            full = model_class.from_pretrained(base, dtype=dtype or torch.float32)
            merged = PeftModel.from_pretrained(full, tmp).merge_and_unload()
    else:
        merged = model.merge_and_unload()
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return "merged"


def check_model_folder(folder: str | Path) -> None:
    """Fail with one line naming the file when `folder` (and its `base/`) is not a whole
    saved student: a missing folder or weights file, a JSON file that does not parse, a
    safetensors file that is truncated or not one. transformers would raise a traceback."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    hint = "rerun its train stage, or `dvc checkout` it"
    if not folder.is_dir():
        raise DataError(f"{folder}: no model folder here ({hint})")
    for sub in (folder, folder / BASE_DIR):
        if not sub.is_dir():
            continue
        for path in sorted(sub.glob("*.json")):
            read_json(path)  # a DataError naming the file and line
        weights = sorted(sub.glob("*.safetensors"))
        if not weights and not (sub / "pytorch_model.bin").exists():
            raise DataError(f"{sub}: no weights file (*.safetensors) in the model folder ({hint})")
        for path in weights:
            try:
                with safe_open(str(path), "pt") as fh:
                    fh.keys()
            except SafetensorError as exc:
                raise DataError(f"{path}: not a readable safetensors file ({exc}); {hint}") from None
    if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
        raise DataError(f"{folder}: no config.json or adapter_config.json ({hint})")


def load_trained(folder: str | Path, model_class: type):
    """The trained student in `folder`, ready for generation on the best device.

    A full (or merged) model loads directly; an adapter folder loads its base (the
    `base/` folder beside it, else the Hub id peft recorded) with the quantization it
    was trained on (from run.json), then the adapters on top.
    """
    folder = Path(folder)
    cuda = torch.cuda.is_available()
    adapter_cfg = folder / "adapter_config.json"
    if not adapter_cfg.exists():
        model = model_class.from_pretrained(folder)
        return model.to("cuda") if cuda else model
    run_file = folder / "run.json"
    resolved = json.loads(run_file.read_text())["resolved_train"] if run_file.exists() else {}
    qc = quantization_config(resolved.get("quantization"))
    quiet_bitsandbytes(qc is not None)  # peft imports bitsandbytes
    from peft import PeftModel

    base = folder / BASE_DIR
    base_id = str(base) if base.is_dir() else json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
    if hub.is_hub_id(base_id):
        hub.prepare_load(f"{folder}: base model", base_id, "student")
    model = model_class.from_pretrained(
        base_id,
        dtype=torch.bfloat16 if (cuda and resolved.get("precision") == "bf16") else torch.float32,
        quantization_config=qc,
        device_map=quantized_device_map() if qc is not None else None,
    )
    if cuda and qc is None:
        model.to("cuda")
    return PeftModel.from_pretrained(model, str(folder))
