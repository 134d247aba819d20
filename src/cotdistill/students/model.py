"""Build or load a T5-family student and its tokenizer.

- From-config presets (t5-tiny): a T5 built from `T5Config` with a byte-level BPE
  tokenizer trained on the training text with `tokenizers` (nothing downloaded).
- Hub presets: `from_pretrained` on a Hub id or a local folder in the Hub's layout,
  optionally with bitsandbytes 8-bit / 4-bit weights.
"""

from __future__ import annotations

from typing import Iterable

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE with T5's special tokens (pad=0, eos=1, unk=2), eos appended."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=1024
    )


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


def load_pretrained(path: str, quantization: str | None = None, dtype: torch.dtype | None = None):
    """(model, tokenizer) from a Hub id or a local folder in the Hub's layout."""
    from ..teachers.hf_local import quantization_config

    tokenizer = AutoTokenizer.from_pretrained(path)
    qc = quantization_config(quantization)
    model = T5ForConditionalGeneration.from_pretrained(
        path,
        dtype=dtype or torch.float32,
        quantization_config=qc,
        device_map="auto" if (qc is not None and torch.cuda.is_available()) else None,
    )
    return model, tokenizer


def load_student(preset, texts: Iterable[str], seed: int):
    """(model, tokenizer) for a student preset; `texts` train the tokenizer if needed."""
    if preset.offline:
        tokenizer = train_tokenizer(texts, preset.tokenizer_vocab_size)
        return build_from_config(preset, tokenizer, seed), tokenizer
    return load_pretrained(preset.hub_id)
