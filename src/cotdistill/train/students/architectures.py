"""Which code builds, saves and reloads each student architecture (a preset's
`architecture`): T5 encoder-decoders in t5.py, decoder-only
causal LMs in causal.py.

The train stage (job.py) and the evaluate stage branch here and nowhere else; the
training batches (batches.py) take the architecture's encoding, collator and label
alignment from here, and decoding (decoding.py) follows the model it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cotdistill.core.registry import Registry

from . import causal, t5
from .batches import seq2seq_encode


@dataclass(frozen=True)
class Architecture:
    name: str
    load_student: Callable[..., tuple[Any, Any]]  # (preset, texts, seed, quantization, dtype, base_dir, tokenizer)
    apply_lora: Callable[..., Any]  # (model, r, alpha, dropout, gradient_checkpointing)
    save_trained: Callable[..., str]  # (model, tokenizer, folder, lora_save, base, dtype) -> how it was saved
    load_trained: Callable[[Any], Any]  # model folder -> model, ready to decode
    load_tokenizer: Callable[[Any], Any]  # model folder -> tokenizer
    source: Callable[[str], str]  # a question -> the text the student reads
    stop_strings: tuple[str, ...]  # decoding also stops once one is written (T5: EOS only)
    encode: Callable[..., list[dict]]  # (tokenizer, sources, targets, max_source, max_target) -> token rows
    collator: Callable[..., tuple[Any, bool]]  # (tokenizer, model) -> one-task collator, remove_unused_columns
    align: Callable[[Any, Any], tuple[Any, Any]]  # (logits, labels) -> each logit with the label it predicts


def _same(question: str) -> str:
    return question


def _t5_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _t5_collator(tokenizer, model) -> tuple[Any, bool]:
    """transformers' seq2seq collator: it pads, and makes the decoder inputs from the labels
    (the Trainer then drops the columns the model does not take)."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, model=model, padding=True), True


def _aligned(logits, labels):
    return logits, labels  # an encoder-decoder's logit t predicts label t


ARCHITECTURES: Registry[Architecture] = Registry("student architecture")
ARCHITECTURES.register(
    "t5",
    Architecture(
        "t5",
        t5.load_student,
        t5.apply_lora,
        t5.save_trained,
        t5.load_trained,
        _t5_tokenizer,
        _same,
        (),
        seq2seq_encode,
        _t5_collator,
        _aligned,
    ),
)
ARCHITECTURES.register(
    "causal",
    Architecture(
        "causal",
        causal.load_student,
        causal.apply_lora,
        causal.save_trained,
        causal.load_trained,
        causal.load_tokenizer,
        causal.prompt_text,
        causal.STOP_STRINGS,
        causal.encode,
        causal.collator,
        causal.align,
    ),
)
