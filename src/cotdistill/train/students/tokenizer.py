"""The tokenizers of students built from a config, and how a run names a loaded one.

A from-config student (T5 here, causal.py adds a bos token) reads text through a
byte-level tokenizer trained on the training split with `tokenizers` (nothing
downloaded); `describe_tokenizer` names any loaded tokenizer for the run's record.
"""

from __future__ import annotations

import json
from typing import Iterable

from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def tokenizer_corpus(train_records: list[dict]) -> list[str]:
    """The text a from-config student's tokenizer is trained on: the train split's
    questions, answers and gold rationales. Never the teacher's output, so that every
    variant of one dataset and seed shares one tokenizer, and the answer-only baseline
    does not move when only the teacher, the hint or the filter changes."""
    texts = [r["question"] for r in train_records] + [str(r["answer"]) for r in train_records]
    return texts + [r["gold_rationale"] for r in train_records if r.get("gold_rationale")]


def train_tokenizer(texts: Iterable[str], vocab_size: int, kind: str = "bpe") -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with T5's special tokens (pad=0, eos=1, unk=2), eos appended.

    `bpe`: merges learned from `texts`, but every digit stays its own token (the first
    one may carry the space before it: " 12" is " 1", "2"), so that numbers are read and
    written digit by digit (a student can learn arithmetic per digit instead of one
    token per number). `char`: no merges at all, one token per byte, so that a student
    sees the letters inside words (last-letter tasks).
    Any text can be encoded either way (bytes are the fallback).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if kind not in ("bpe", "char"):
        raise ValueError(f"tokenizer kind must be 'bpe' or 'char', got {kind!r}")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size if kind == "bpe" else len(alphabet) + 3,  # char: the alphabet, no merges
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=1024
    )


def describe_tokenizer(tokenizer) -> str:
    """A loaded tokenizer's class and kind, as a run records it: 'T5Tokenizer (sentencepiece
    unigram)', 'TokenizersBackend (byte-level BPE)'; the class alone for a tokenizer without
    a `tokenizers` backend. The kind is the backend's model (BPE, Unigram, WordPiece,
    WordLevel) with how it reads text: bytes (byte-level) or SentencePiece's "▁" spaces and
    byte fallback (sentencepiece)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return type(tokenizer).__name__
    parts = set()
    for part in (backend.pre_tokenizer, backend.decoder):
        if part is not None:
            _types(json.loads(part.__getstate__()), parts)
    model = type(backend.model).__name__
    if "ByteLevel" in parts:
        reads = "byte-level "
    elif "Metaspace" in parts or getattr(backend.model, "byte_fallback", False):
        reads = "sentencepiece "
    else:
        reads = ""
    return f"{type(tokenizer).__name__} ({reads}{model if model in ('BPE', 'WordPiece') else model.lower()})"


def _types(node, out: set) -> None:
    """Every "type" in a serialized pre-tokenizer or decoder (a Sequence nests others)."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            out.add(node["type"])
        for value in node.values():
            _types(value, out)
    elif isinstance(node, list):
        for value in node:
            _types(value, out)
