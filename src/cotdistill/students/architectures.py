"""Which code builds, saves and reloads each student architecture (a preset's
`architecture`, catalog.ARCHITECTURES): T5 encoder-decoders in model.py, decoder-only
causal LMs in causal.py.

The train stage (job.py) and the evaluate stage branch here and nowhere else; the
training batches (batches.py) and decoding (decoding.py) follow the model they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry
from . import causal, model


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

    @property
    def causal(self) -> bool:
        return self.name == "causal"


def _same(question: str) -> str:
    return question


def _t5_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


ARCHITECTURES: Registry[Architecture] = Registry("student architecture")
ARCHITECTURES.register("t5", Architecture("t5", model.load_student, model.apply_lora, model.save_trained,
                                          model.load_trained, _t5_tokenizer, _same, ()))
ARCHITECTURES.register("causal", Architecture("causal", causal.load_student, causal.apply_lora, causal.save_trained,
                                              causal.load_trained, causal.load_tokenizer, causal.prompt_text,
                                              causal.STOP_STRINGS))
