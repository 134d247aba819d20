"""bitsandbytes base-weight formats, shared by the `hf` teacher and the students, and
bitsandbytes' import-time noise kept out of runs that do not use it."""

from __future__ import annotations

import logging

from .catalog import QUANTIZATIONS

# bitsandbytes' CPU backend warns while it is imported (which peft, and so transformers'
# Trainer, do whenever bitsandbytes is installed) that an optional 4-bit kernel is missing.
BNB_IMPORT_LOGGER = "bitsandbytes.backends.cpu.ops"


def quiet_bitsandbytes(used: bool) -> None:
    """Silence bitsandbytes' import-time warning about its optional CPU 4-bit kernel where
    the run does not use bitsandbytes (`used`: quantized weights or a bitsandbytes
    optimizer), so that a stage prints only what concerns it. That one logger only; a run
    that uses bitsandbytes keeps the warning. Call it before peft or transformers' Trainer
    is imported: the warning comes once, at import."""
    if not used:
        logging.getLogger(BNB_IMPORT_LOGGER).setLevel(logging.ERROR)


def quantization_config(quantization: str | None):
    """transformers' BitsAndBytesConfig for 8bit / 4bit (NF4, double quantization), None for none."""
    if quantization in (None, "none"):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
    raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")


def dequantized(model):
    """`model` loaded from a GGUF file, marked as the plain full-precision model it is.

    transformers dequantizes GGUF weights while loading but leaves the quantizer's marks
    (`hf_quantizer`, `is_quantized`, `config.quantization_config`): the Trainer then refuses
    to finetune it ("purely quantized models") or fails on the missing quantizer, and
    `save_pretrained` writes a GGUF config that cannot be reloaded. The quantizer's own
    `remove_quantization_config` clears all of them.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model
