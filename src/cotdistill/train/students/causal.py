"""Build or load a decoder-only (causal LM) student and its tokenizer; save and reload it.

- From-config presets (llama-tiny): a LlamaForCausalLM built from `LlamaConfig`, with
  tokenizer.py's byte-level tokenizer plus a bos token (nothing downloaded).
- Package presets (smollm2-135m): the GGUF file a pip package ships, dequantized by
  transformers (`gguf_file=`).
- Hub presets (qwen2.5-*, smollm2-*, llama-3.2-1b, gpt2*): `from_pretrained` on a Hub id
  or a local folder in the Hub's layout, optionally with bitsandbytes 8-bit / 4-bit weights.

The student reads `prompt_text(question)` and writes `" " + target`, then EOS. Training
(batches.py) puts the loss on the completion tokens only; evaluation (decoding.py)
decodes from the same prompt, left-padded, and stops at EOS or at a newline.

Pad tokens: many causal tokenizers have none (GPT-2, Llama 3), and some pad with their
EOS (Qwen2.5). Where there is none, EOS pads. That is safe only because padding is
masked by position (attention mask 0, label -100 at padded positions), never by token
id: the EOS that ends every completion stays a trained label, so the student learns to stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from . import weights
from .batches import IGNORE, PadCollator
from .tokenizer import train_tokenizer

BOS = "<s>"
PROMPT = "{question}\nAnswer:"
# Every target is one line (targets.close_rationale joins a CoT's lines): a newline ends
# the completion as surely as EOS does, also for a student that has not learnt EOS yet.
STOP_STRINGS = ("\n",)


def prompt_text(question: str) -> str:
    """What a causal student reads; its completion follows the colon."""
    return PROMPT.format(question=question)


def completion_text(target: str) -> str:
    return " " + str(target)


def encode(tokenizer, sources: list[str], targets: list[str], max_source: int, max_target: int) -> list[dict]:
    """prompt + completion + EOS per example; labels: -100 on the prompt, the ids elsewhere.

    Prompt and completion are tokenized apart, as decoding sees them (the prompt alone,
    then generated tokens). The prompt keeps its last max_source tokens (the tokenizer
    truncates on the left), the completion its first max_target - 1 and EOS.
    """
    prompts = tokenizer([prompt_text(s) for s in sources], max_length=max_source, truncation=True)["input_ids"]
    completions = tokenizer([completion_text(t) for t in targets], add_special_tokens=False)["input_ids"]
    rows = []
    for p, c in zip(prompts, completions):
        c = c[: max_target - 1] + [tokenizer.eos_token_id]
        rows.append({"input_ids": p + c, "labels": [IGNORE] * len(p) + c})
    return rows


def collator(tokenizer, model) -> tuple[PadCollator, bool]:
    """One-task batches of encode's rows (the Trainer keeps every column: it does not drop any)."""
    return PadCollator(tokenizer.pad_token_id), False


def align(logits, labels):
    """Position t predicts token t + 1: each logit with the label it is scored against."""
    return logits[:, :-1], labels[:, 1:]


def prepare_tokenizer(tokenizer):
    """A causal tokenizer as training and decoding use it: EOS pads where there is no pad
    token; prompts are padded and truncated on the left (the end of a prompt, where the
    completion starts, is what must be kept)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer


def causal_tokenizer(texts: Iterable[str], vocab_size: int, kind: str = "bpe"):
    """tokenizer.py's byte-level tokenizer (pad, eos, unk; digits split or one token per byte)
    with a bos token that starts every encoded text, and no eos appended: the completion's
    EOS is added by the training data (batches.py), never to a prompt."""
    from tokenizers import processors

    tok = train_tokenizer(texts, vocab_size, kind)
    tok.add_special_tokens({"bos_token": BOS})
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tok.bos_token_id)]
    )
    return prepare_tokenizer(tok)


def build_from_config(preset, tokenizer, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **preset.config,
    )
    return LlamaForCausalLM(config)


def _pretrained(
    path: str, quantization: str | None = None, dtype: torch.dtype | None = None, gguf_file: str | None = None
):
    """weights.load_pretrained for a causal LM, with its tokenizer prepared as training and decoding use it."""
    model, tokenizer = weights.load_pretrained(path, AutoModelForCausalLM, quantization, dtype, gguf_file)
    return model, prepare_tokenizer(tokenizer)


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
    """(model, tokenizer) for a causal student preset, as t5.load_student does for T5.

    A from-config or GGUF student that is to be quantized or to carry adapters is first
    saved to `base_dir` and loaded from there (bitsandbytes quantizes while loading, and
    cannot read a GGUF file); that folder is the base the adapter folder keeps.
    """
    quantization = quantization or "none"
    path, gguf_file = weights.find_pretrained(preset, model_path)
    if path and not gguf_file:  # train.model_path or a Hub id
        return _pretrained(path, quantization, dtype)

    def build():
        if gguf_file:
            return _pretrained(path, "none", None, gguf_file)
        tok = causal_tokenizer(texts, preset.tokenizer_vocab_size, tokenizer or preset.tokenizer)
        return build_from_config(preset, tok, seed), tok

    return weights.through_base_dir(
        build, base_dir, quantization, lambda folder: _pretrained(folder, quantization, dtype)
    )


def apply_lora(model, r: int, alpha: int, dropout: float, gradient_checkpointing: bool):
    """LoRA adapters on the attention query and value projections (peft's default
    modules per architecture: q_proj / v_proj, GPT-2's fused c_attn)."""
    return weights.apply_lora(model, r, alpha, dropout, gradient_checkpointing, None, "CAUSAL_LM")


def save_trained(
    model, tokenizer, folder: Path, lora_save: str, base: str | None, dtype: torch.dtype | None = None
) -> str:
    return weights.save_trained(model, tokenizer, folder, lora_save, base, dtype, model_class=AutoModelForCausalLM)


def load_trained(folder: str | Path):
    """The trained causal student in `folder` (a full model or adapters on its base)."""
    return weights.load_trained(folder, AutoModelForCausalLM)


def load_tokenizer(folder: str | Path):
    return prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
