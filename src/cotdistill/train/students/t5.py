"""Build or load a T5-family (encoder-decoder) student; save and reload it.

- From-config presets (t5-tiny, t5-mini, t5-mini4): a T5 built from `T5Config` with
  tokenizer.py's byte-level tokenizer trained on the training text (nothing downloaded).
- Hub presets (t5-small ... t5-xxl: T5 v1.1; flan-t5-*): `from_pretrained` on a Hub id or a
  local folder in the Hub's layout, optionally with bitsandbytes 8-bit / 4-bit weights (weights.py).
- LoRA adapters through peft on T5's attention query and value projections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from . import weights
from .tokenizer import train_tokenizer

LORA_TARGETS = ["q", "v"]  # T5's attention query and value projections


def build_from_config(preset, tokenizer: PreTrainedTokenizerFast, seed: int) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **preset.config,
    )
    return T5ForConditionalGeneration(config)


def load_student(
    preset,
    texts: Iterable[str],
    seed: int,
    quantization: str = "none",
    dtype: torch.dtype | None = None,
    base_dir: Path | None = None,
    tokenizer: str | None = None,
    model_path: str | None = None,
):
    """(model, tokenizer) for a student preset; `texts` train the tokenizer if needed.

    A Hub student loads from `model_path` (train.model_path: a local folder) when given,
    else from its Hub id: the local cache, or the Hub; neither is a one-line ResourceError.

    bitsandbytes quantizes while loading, so a from-config student that is to be
    quantized (or to carry adapters) is first saved to `base_dir` and loaded from there;
    that folder is also the base an adapter folder points to. `tokenizer` (bpe | char)
    overrides the preset's tokenizer kind of a from-config student.
    """
    quantization = quantization or "none"
    if preset.offline:

        def build():
            tok = train_tokenizer(texts, preset.tokenizer_vocab_size, tokenizer or preset.tokenizer)
            return build_from_config(preset, tok, seed), tok

        return weights.through_base_dir(
            build,
            base_dir,
            quantization,
            lambda folder: weights.load_pretrained(folder, T5ForConditionalGeneration, quantization, dtype),
        )
    path, _ = weights.find_pretrained(preset, model_path)
    return weights.load_pretrained(path, T5ForConditionalGeneration, quantization, dtype)


def apply_lora(model, r: int, alpha: int, dropout: float, gradient_checkpointing: bool):
    """LoRA adapters on T5's attention query and value projections."""
    return weights.apply_lora(model, r, alpha, dropout, gradient_checkpointing, LORA_TARGETS, "SEQ_2_SEQ_LM")


def save_trained(
    model, tokenizer, folder: Path, lora_save: str, base: str | None, dtype: torch.dtype | None = None
) -> str:
    return weights.save_trained(
        model, tokenizer, folder, lora_save, base, dtype, model_class=T5ForConditionalGeneration
    )


def load_trained(folder: str | Path):
    """The trained T5 student in `folder` (a full model or adapters on its base)."""
    return weights.load_trained(folder, T5ForConditionalGeneration)
